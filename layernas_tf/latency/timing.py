"""Timing TFLite models with the LiteRT interpreter, and batched prediction with it.

The interpreter functions use `ai_edge_litert` only (no TensorFlow import), so timing runs in a light
process; `measure_tflite_latency` builds and converts a candidate first, so it loads TensorFlow.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Optional

import numpy as np
from absl import logging
from ai_edge_litert.interpreter import Interpreter


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    runs: int
    num_threads: int


def make_interpreter(tflite_model: bytes, num_threads: int = 1) -> Interpreter:
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    interpreter = Interpreter(model_content=tflite_model, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def _random_input(detail, rng: np.random.Generator) -> np.ndarray:
    shape, dtype = detail["shape"], detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def measure_latency(tflite_model: bytes, num_threads: int = 1, warmup: int = 5, runs: int = 30, seed: int = 0) -> LatencyStats:
    """Time single-image inference: `warmup` untimed invokes, then `runs` timed ones.

    Raises:
      ValueError: for runs < 1, warmup < 0 or num_threads < 1.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    interpreter = make_interpreter(tflite_model, num_threads)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], _random_input(detail, np.random.default_rng(seed)))
    for _ in range(warmup):
        interpreter.invoke()
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times_ms.append((time.perf_counter() - start) * 1e3)
    deciles = statistics.quantiles(times_ms, n=10) if runs > 1 else [times_ms[0]] * 9
    return LatencyStats(
        median_ms=statistics.median(times_ms),
        p10_ms=deciles[0],
        p90_ms=deciles[-1],
        mean_ms=statistics.fmean(times_ms),
        std_ms=statistics.pstdev(times_ms),
        runs=runs,
        num_threads=num_threads,
    )


def predict(tflite_model: bytes, images: np.ndarray, num_threads: int = 1, interpreter: Optional[Interpreter] = None) -> np.ndarray:
    """Class scores for `images` (NHWC, values as the model takes them: raw pixels 0-255 for an exported
    model), one image per invoke; quantizes integer (int8, uint8) inputs and dequantizes integer outputs."""
    interpreter = interpreter or make_interpreter(tflite_model, num_threads)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    scores = []
    for image in np.asarray(images, dtype=np.float32):
        x = image[None]
        if np.issubdtype(inp["dtype"], np.integer):
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / in_scale + in_zero), info.min, info.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        if np.issubdtype(out["dtype"], np.integer):
            y = (y.astype(np.float32) - out_zero) * out_scale
        scores.append(y)
    return np.stack(scores)


def measure_tflite_latency(space, encoding, input_size, num_classes, quantize, num_threads, runs, warmup) -> dict:
    """Median latency (ms) of the float model and, with quantize='int8', of the int8 model, built from
    `encoding` of `space` and converted in this process (which therefore loads TensorFlow)."""
    from export import tflite
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
