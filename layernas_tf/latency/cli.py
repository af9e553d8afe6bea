"""Profile a candidate: analytic MAdds and params, optionally measured TFLite latency.

    python -m layernas_tf.latency.cli --search_space=mobilenet_v3_large --arch=default --latency --quantize=int8
    python -m layernas_tf.latency.cli --search_space=mobilenet_v3_large --random=20000 --seed=0
    layernas-profile --latency_kit=kit_v3s --search_space=mobilenet_v3_small --input_size=224 --quantize=int8

With --latency the candidate is converted and timed, and its latency is also predicted from the
per-block table of this machine (or --latency_table). --latency_kit writes every part of the space
(and the calibration whole models) as .tflite files to time on a device with benchmark_model.

The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

import searchspaces  # noqa: E402
from layernas_tf import costs  # noqa: E402
from layernas_tf.costs import profile_random  # noqa: E402
from layernas_tf.latency.timing import measure_tflite_latency  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("search_space", "mobilenet_v3_large", list(searchspaces.SPACE_NAMES), "Search space to profile.")
flags.DEFINE_string("arch", "default", "Candidate: 'default' or an encoding string such as 4-4-4-7-...")
flags.DEFINE_integer("input_size", 0, "Input height = width in pixels; 0 = the space's own (224 or 32).", lower_bound=0)
flags.DEFINE_integer("num_classes", 0, "Classifier width; 0 = the space's own.", lower_bound=0)
flags.DEFINE_bool("latency", False, "Also convert to TFLite and time it with the LiteRT interpreter.")
flags.DEFINE_enum("quantize", "none", ["none", "int8"], "With --latency: also time an int8 post-training-quantized model.")
flags.DEFINE_integer("num_threads", 1, "Interpreter threads for --latency.", lower_bound=1)
flags.DEFINE_integer("runs", 50, "Timed interpreter runs for --latency.", lower_bound=1)
flags.DEFINE_integer("warmup", 10, "Untimed warm-up runs for --latency.", lower_bound=0)
flags.DEFINE_integer("random", 0, "Profile this many random candidates (analytic costs) and report throughput.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed for --random.")
flags.DEFINE_string("latency_kit", None, "Write a latency kit for --search_space at --input_size and --quantize "
                    "(int8, or none: float) into this directory and exit.")
flags.DEFINE_string("latency_table", None, "With --latency: predict from this table (JSON, CSV or benchmark_model "
                    "logs) instead of the table of this machine.")
flags.DEFINE_integer("workers", 2, "Conversion processes for latency kits.", lower_bound=1)


def main(argv):
    del argv
    space = searchspaces.get_space(FLAGS.search_space)
    input_size = FLAGS.input_size or space.input_size
    num_classes = FLAGS.num_classes or space.num_classes
    if FLAGS.latency_kit:
        from layernas_tf.latency.kit import write_kit

        quantization = "int8" if FLAGS.quantize == "int8" else "float"
        manifest = write_kit(FLAGS.latency_kit, quantization, [(space, input_size, num_classes)], workers=FLAGS.workers)
        print(f"wrote {len(manifest['files'])} {quantization} .tflite files ({manifest['converted']} converted now, in "
              f"{manifest['convert_seconds']:.0f} s) and {FLAGS.latency_kit}/manifest.json; time each with "
              "benchmark_model and pass the logs back as --latency_table")
        print(json.dumps({k: v for k, v in manifest.items() if k != "files"}))
        return
    if FLAGS.random:
        print(json.dumps(profile_random(space, FLAGS.random, FLAGS.seed, input_size, num_classes)))
        return
    try:
        encoding = space.parse(FLAGS.arch)
    except ValueError as e:
        raise app.UsageError(f"--arch: {e}")
    cost = costs.candidate_costs(space, encoding, input_size, num_classes)
    report = {
        "search_space": space.name,
        "encoding": space.to_string(encoding),
        "input_size": input_size,
        "num_classes": num_classes,
        "madds": cost.madds,
        "params": cost.params,
    }
    print(f"{space.name} {report['encoding']}: {cost.madds / 1e6:.2f}M MAdds, {cost.params:,} params")
    print(space.describe(encoding))
    if FLAGS.latency:
        report.update(measure_tflite_latency(space, encoding, input_size, num_classes, FLAGS.quantize,
                                             FLAGS.num_threads, FLAGS.runs, FLAGS.warmup))
        report["predicted_latency_ms"] = _predicted(space, encoding, input_size, num_classes, report["latency_ms"])
        for q, predicted in report["predicted_latency_ms"].items():
            measured = report["latency_ms"][q]
            print(f"{q}: measured {measured:.3f} ms, predicted {predicted:.3f} ms by the latency table "
                  f"({100 * (predicted - measured) / measured:+.1f}%), {FLAGS.num_threads} thread(s)")
    print(json.dumps(report))


def _predicted(space, encoding, input_size, num_classes, formats) -> dict:
    from layernas_tf.latency import kit as latency_kit
    from layernas_tf.latency.block_table import TableLatency, load_table, model_id

    spaces = [(space, input_size, num_classes)]
    predicted = {}
    if FLAGS.latency_table:  # a table holds one format: the one --quantize names
        formats = ["int8" if FLAGS.quantize == "int8" else "float"]
    for quantization in formats:
        if FLAGS.latency_table:
            table = load_table(FLAGS.latency_table, quantization, FLAGS.num_threads,
                               {model_id(*spaces[0]): spaces[0]})
        else:
            table = latency_kit.cached_table(spaces, quantization, FLAGS.num_threads, workers=FLAGS.workers)
        predicted[quantization] = round(TableLatency(table, space, input_size, num_classes)(encoding), 3)
    return predicted


def run():
    app.run(main)


if __name__ == "__main__":
    run()
