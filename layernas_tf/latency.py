"""TFLite inference with the LiteRT interpreter: latency measurement and batched prediction.

Uses `ai_edge_litert` only (no TensorFlow import), so timing runs in a light process.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Optional

import numpy as np
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
