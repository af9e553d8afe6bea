"""Profile a candidate: analytic MAdds and params, optionally measured TFLite latency.

    python -m layernas_tf.profile --search_space=mobilenet_v3_large --arch=default --latency --quantize=int8
    python -m layernas_tf.profile --search_space=mobilenet_v3_large --random=20000 --seed=0

The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

import searchspaces  # noqa: E402
from layernas_tf import costs  # noqa: E402
from layernas_tf.profiler import measure_tflite_latency, profile_random  # noqa: E402

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


def main(argv):
    del argv
    space = searchspaces.get_space(FLAGS.search_space)
    input_size = FLAGS.input_size or space.input_size
    num_classes = FLAGS.num_classes or space.num_classes
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
    print(json.dumps(report))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
