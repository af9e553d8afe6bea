"""A local stand-in for TensorFlow Lite's `benchmark_model`: time one `.tflite` file with the LiteRT
interpreter and print the same summary lines, so `--latency_command` can be tried without a device.

    python -m layernas_tf.latency.benchmark_model --graph=model.tflite --num_threads=1 --num_runs=50
    layernas --target_latency_ms=2 --latency_command='python -m layernas_tf.latency.benchmark_model --graph={tflite}'

Like `benchmark_model`, it reports the mean of the timed runs in microseconds.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import statistics  # noqa: E402
import time  # noqa: E402

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("graph", None, "The .tflite file to time.", required=True)
flags.DEFINE_integer("num_threads", 1, "Interpreter threads.", lower_bound=1)
flags.DEFINE_integer("num_runs", 50, "Timed runs.", lower_bound=1)
flags.DEFINE_integer("warmup_runs", 5, "Untimed warm-up runs.", lower_bound=0)


def main(argv):
    del argv
    import numpy as np

    from layernas_tf import quiet
    from layernas_tf.latency.timing import _random_input, make_interpreter

    print("INFO: STARTING!")
    print(f"INFO: Graph: [{FLAGS.graph}]")
    print(f"INFO: Num threads: [{FLAGS.num_threads}]")
    start = time.perf_counter()
    with open(FLAGS.graph, "rb") as f:
        content = f.read()
    with quiet.native_output_captured():
        interpreter = make_interpreter(content, FLAGS.num_threads)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], _random_input(detail, np.random.default_rng(0)))
    init_us = (time.perf_counter() - start) * 1e6
    print(f"INFO: Loaded model {FLAGS.graph}")

    def timed(count):
        times = []
        for _ in range(count):
            t = time.perf_counter()
            interpreter.invoke()
            times.append((time.perf_counter() - t) * 1e6)
        return times

    first = timed(1)[0]
    warm = timed(FLAGS.warmup_runs) or [first]
    runs = timed(FLAGS.num_runs)
    mean = statistics.fmean(runs)
    print(f"INFO: count={len(runs)} first={runs[0]:.0f} curr={runs[-1]:.0f} min={min(runs):.0f} max={max(runs):.0f} "
          f"avg={mean:.1f} std={statistics.pstdev(runs):.0f}")
    print(f"INFO: Inference timings in us: Init: {init_us:.0f}, First inference: {first:.0f}, "
          f"Warmup (avg): {statistics.fmean(warm):.1f}, Inference (avg): {mean:.1f}")


if __name__ == "__main__":
    app.run(main)
