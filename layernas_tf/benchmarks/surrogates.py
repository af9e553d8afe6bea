"""Two product-scale surrogate objectives: made-up accuracies over real MobileNet spaces.

    layernas-benchmark --objective=layernas_tf.benchmarks.surrogates:mobilenet_v3_large_224 ...
    layernas-benchmark --objective=layernas_tf.benchmarks.surrogates:cifar_mobilenet_v2_32 ...

They are surrogates, not measurements: no model is trained, and no figure computed from them says
anything about the accuracy of a real network. They exist to test searchers on the spaces, option
counts and analytic costs that users search, at budgets no tabular benchmark covers. Each one is
fixed by its seed and was written before any search was run on it:

    accuracy = top - span * exp(-rate * x)          x = log(MAdds / cheapest) / log(costliest / cheapest)
             + sum_i effect[i][option_i]            a seeded effect per option of each layer
             + sum_i pair[i][option_i][option_i+1]  seeded interactions of neighbouring layers
    a query  = accuracy + N(0, noise)               noise about 0.2 points

so accuracy saturates in log MAdds, and at a fixed cost it still depends on which layers spend it.
Pure Python.
"""

from __future__ import annotations

import math
import random
from typing import List, Sequence


class SurrogateObjective:
    """Accuracy (%) of a candidate of `search_space` as the formula above; see the module docstring.

    Args:
      search_space, input_size, num_classes: the space and its resolution (costs are its analytic MAdds).
      seed: draws the option effects and the neighbour interactions.
      top, span, rate: the saturating curve in log MAdds (points, points, per unit of x).
      effect_sd, pair_sd: standard deviations of option effects and neighbour interactions (points).
      noise: standard deviation of one query (points).
    """

    def __init__(self, search_space: str, input_size: int, num_classes: int, seed: int, top: float, span: float,
                 rate: float, effect_sd: float, pair_sd: float, noise: float = 0.2):
        self.search_space, self.input_size, self.num_classes = search_space, input_size, num_classes
        self.seed, self.top, self.span, self.rate = seed, top, span, rate
        self.effect_sd, self.pair_sd, self.noise = effect_sd, pair_sd, noise
        self._built = False

    def _build(self) -> None:
        import searchspaces
        from layernas_tf.benchmarks.objectives import madds_range

        space = searchspaces.get_space(self.search_space)
        cheapest, costliest = madds_range(space, self.input_size, self.num_classes)
        self._log_low = math.log(cheapest)
        self._log_span = math.log(costliest) - self._log_low
        rng = random.Random(self.seed)
        options = space.num_options
        self.effects: List[List[float]] = [[rng.gauss(0.0, self.effect_sd) for _ in range(n)] for n in options]
        self.pairs: List[List[List[float]]] = [[[rng.gauss(0.0, self.pair_sd) for _ in range(b)] for _ in range(a)]
                                               for a, b in zip(options, options[1:])]
        self._built = True

    def mean(self, encoding: Sequence[int], cost: float) -> float:
        if not self._built:
            self._build()
        x = (math.log(cost) - self._log_low) / self._log_span if self._log_span > 0 else 1.0
        accuracy = self.top - self.span * math.exp(-self.rate * x)
        accuracy += sum(self.effects[i][o] for i, o in enumerate(encoding))
        accuracy += sum(self.pairs[i][a][b] for i, (a, b) in enumerate(zip(encoding, encoding[1:])))
        return accuracy

    def sample(self, encoding: Sequence[int], cost: float, rng: random.Random) -> float:
        return self.mean(encoding, cost) + rng.gauss(0.0, self.noise)

    def __getstate__(self):  # pickled to benchmark workers without the drawn tables
        state = dict(self.__dict__)
        for name in ("effects", "pairs", "_log_low", "_log_span"):
            state.pop(name, None)
        state["_built"] = False
        return state


# ImageNet-like: about 68.5% for the cheapest MobileNetV3-Large candidate at 224, saturating near 78%.
mobilenet_v3_large_224 = SurrogateObjective("mobilenet_v3_large", 224, 1000, seed=20261201, top=78.5, span=10.0,
                                            rate=3.0, effect_sd=0.3, pair_sd=0.15)
# CIFAR-like: about 87% for the cheapest 32x32 MobileNetV2 candidate, saturating near 95%.
cifar_mobilenet_v2_32 = SurrogateObjective("cifar_mobilenet_v2", 32, 10, seed=20261202, top=95.0, span=8.0,
                                           rate=2.5, effect_sd=0.25, pair_sd=0.12)
