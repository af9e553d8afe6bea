"""Write benchmark tables the searchers have never seen, in the formats `layernas_tf.benchmarks.tables` reads.

    python -m layernas_tf.benchmarks.make_table --kind=synthetic --seed=1 --out=runs/tables/synthetic_1.json
    python -m layernas_tf.benchmarks.make_table --kind=synthetic --seed=2 --layers=5 --options=8 --seeds=1 \
        --noise=0 --out=runs/tables/noise_free_2.json
    python -m layernas_tf.benchmarks.make_table --kind=reorder --source=../shared/benchmarks/nas-bench-macro_cifar10.json \
        --order=7,6,5,4,3,2,1,0 --out=runs/tables/nbm_reversed.json

`synthetic`: a made-up width search with interacting layers and noisy seeds (see
`tables.synthetic_records`); `reorder`: a real table with its layer positions permuted.
"""

from __future__ import annotations

import json
import pathlib

from absl import app, flags

from layernas_tf.search.tables import FORMATS, TableError, load_table, reordered_records, synthetic_records

FLAGS = flags.FLAGS
flags.DEFINE_enum("kind", "synthetic", ["synthetic", "reorder"], "What to write.")
flags.DEFINE_string("out", None, "Output JSON path.")
flags.DEFINE_integer("seed", 0, "synthetic: seed of the made-up space.")
flags.DEFINE_integer("layers", 6, "synthetic: searchable layers.", lower_bound=1, upper_bound=10)
flags.DEFINE_integer("options", 4, "synthetic: ordered width options per layer.", lower_bound=2, upper_bound=16)
flags.DEFINE_enum("format", "channel_bench_macro", list(FORMATS), "synthetic: record format.")
flags.DEFINE_float("noise", 0.2, "synthetic: per-seed accuracy noise (points).", lower_bound=0.0)
flags.DEFINE_integer("seeds", 3, "synthetic: accuracies per architecture (1 with --noise=0: a noise-free table, "
                     "one accuracy per architecture).", lower_bound=1, upper_bound=10)
flags.DEFINE_string("source", None, "reorder: the table to permute.")
flags.DEFINE_list("order", None, "reorder: new position i takes old position order[i].")


def main(argv):
    del argv
    if not FLAGS.out:
        raise app.UsageError("--out is required: the path of the JSON table to write")
    if FLAGS.kind == "synthetic":
        if FLAGS.options ** FLAGS.layers > 200_000:
            raise app.UsageError(f"--options ** --layers = {FLAGS.options ** FLAGS.layers}; at most 200,000 allowed")
        records = synthetic_records(FLAGS.layers, FLAGS.options, FLAGS.seed, FLAGS.format, FLAGS.noise, FLAGS.seeds)
    else:
        if not FLAGS.source or not FLAGS.order:
            raise app.UsageError("--kind=reorder needs --source (a table) and --order (a permutation, e.g. 2,1,0)")
        try:
            order = [int(i) for i in FLAGS.order]
            records = reordered_records(load_table(FLAGS.source), order)
        except (TableError, ValueError) as e:
            raise app.UsageError(f"--order/--source: {e}")
    out = pathlib.Path(FLAGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records))
    print(f"wrote {len(records)} records to {out}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
