"""Profiling functions behind the profiler CLI: analytic throughput and measured TFLite latency."""

from __future__ import annotations

import random
import time

from absl import logging

from layernas_tf import costs


def profile_random(space, num: int, seed: int, input_size: int, num_classes: int) -> dict:
    """Analytic costs of `num` random candidates; returns throughput and cost ranges."""
    rng = random.Random(seed)
    encodings = [space.random(rng) for _ in range(num)]
    madds_of = costs.cost_function(space, "madds", input_size, num_classes)
    start = time.perf_counter()
    madds = [madds_of(e) for e in encodings]
    elapsed = time.perf_counter() - start
    return {
        "search_space": space.name,
        "candidates": num,
        "seconds": elapsed,
        "candidates_per_second": num / elapsed if elapsed > 0 else float("inf"),
        "madds_min": min(madds),
        "madds_max": max(madds),
    }


def measure_tflite_latency(space, encoding, input_size, num_classes, quantize, num_threads, runs, warmup) -> dict:
    """Median latency (ms) of the float model and, with quantize='int8', of the int8 model."""
    import numpy as np

    from export import tflite
    from layernas_tf.latency import measure_latency
    from searchspaces.builder import build

    model = build(space, encoding, (input_size, input_size, 3), num_classes)
    variants = {"float": tflite.convert(model, "float")}
    if quantize == "int8":
        # Latency does not depend on the calibration data, so random images in [-1, 1] serve.
        calibration = np.random.default_rng(0).uniform(-1, 1, (8, input_size, input_size, 3)).astype(np.float32)
        variants["int8"] = tflite.convert(model, "int8", calibration)
    result, spread = {}, {}
    for name, flatbuffer in variants.items():
        stats = measure_latency(flatbuffer, num_threads=num_threads, warmup=warmup, runs=runs)
        result[name] = round(stats.median_ms, 3)
        spread[name] = {"p10": round(stats.p10_ms, 3), "p90": round(stats.p90_ms, 3), "size_bytes": len(flatbuffer)}
        logging.info("%s: median %.3f ms (p10 %.3f, p90 %.3f) over %d runs, %d thread(s), %d bytes",
                     name, stats.median_ms, stats.p10_ms, stats.p90_ms, runs, num_threads, len(flatbuffer))
    return {"latency_ms": result, "latency_spread_ms": spread, "num_threads": num_threads}
