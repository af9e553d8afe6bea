"""Benchmark the cost profiler: analytic throughput per space, TFLite latency of the published defaults.

    python -m layernas_tf.benchmarks.profile --out=runs/profile_benchmark

Prints a markdown table and writes DIR/profile_benchmark.json.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

import searchspaces  # noqa: E402
from layernas_tf.costs import candidate_costs  # noqa: E402
from layernas_tf.costs import profile_random  # noqa: E402
from layernas_tf.latency.timing import measure_tflite_latency  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/profile_benchmark", "Output folder.")
flags.DEFINE_list("spaces", ["mobilenet_v2", "mobilenet_v2_140", "mobilenet_v3_large", "mobilenet_v3_small"], "Spaces to profile.")
flags.DEFINE_integer("candidates", 20000, "Random candidates for the throughput measurement.", lower_bound=1)
flags.DEFINE_integer("num_threads", 1, "Interpreter threads.", lower_bound=1)
flags.DEFINE_integer("runs", 50, "Timed interpreter runs.", lower_bound=1)
flags.DEFINE_bool("latency", True, "Measure TFLite latency of each default.")


def main(argv):
    del argv
    rows = []
    for name in FLAGS.spaces:
        space = searchspaces.get_space(name)
        row = {"search_space": name}
        row.update(profile_random(space, FLAGS.candidates, 0, space.input_size, space.num_classes))
        cost = candidate_costs(space, space.default)
        row.update(default_madds=cost.madds, default_params=cost.params)
        if FLAGS.latency:
            row.update(measure_tflite_latency(space, space.default, space.input_size, space.num_classes, "int8",
                                              FLAGS.num_threads, FLAGS.runs, 10))
        rows.append(row)
    print("| space | default MAdds | params | float ms (p10-p90) | int8 ms (p10-p90) | analytic candidates/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        lat = r.get("latency_ms", {})
        spread = r.get("latency_spread_ms", {})
        cells = [
            f"{lat[q]:.2f} ({spread[q]['p10']:.2f}-{spread[q]['p90']:.2f})" if q in lat else "-" for q in ("float", "int8")
        ]
        print(f"| `{r['search_space']}` | {r['default_madds'] / 1e6:.2f}M | {r['default_params']:,} | {cells[0]} | {cells[1]} | "
              f"{r['candidates_per_second']:,.0f} |")
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
               "num_threads": FLAGS.num_threads, "rows": rows}
    (out / "profile_benchmark.json").write_text(json.dumps(payload, indent=2))
    print(f"wrote {out / 'profile_benchmark.json'}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
