"""Two more surrogate objectives, written after LayerNAS's settings were frozen, to check its results
on objectives it was never developed against (see `surrogates` for the formula; they are surrogates,
not measurements):

- `mobilenet_v3_small_224_interacting`: neighbour interactions larger than the option effects, and
  noisier queries (0.3 points);
- `mobilenet_v2_224_saturated`: accuracy that saturates early in MAdds, so that which layers spend
  the cost matters more than how much is spent.

    layernas-benchmark --objective=layernas_tf.benchmarks.check_objectives:mobilenet_v2_224_saturated ...
"""

from layernas_tf.benchmarks.surrogates import SurrogateObjective

mobilenet_v3_small_224_interacting = SurrogateObjective("mobilenet_v3_small", 224, 1000, seed=7, top=68.0, span=12.0,
                                                        rate=2.0, effect_sd=0.2, pair_sd=0.3, noise=0.3)
mobilenet_v2_224_saturated = SurrogateObjective("mobilenet_v2", 224, 1000, seed=11, top=74.0, span=6.0, rate=4.0,
                                                effect_sd=0.4, pair_sd=0.1, noise=0.2)
