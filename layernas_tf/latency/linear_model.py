"""The linear latency predictor: a + b * MAdds + c * params, fitted on a few timed whole candidates.

Kept beside the per-block table (`block_table`) for comparison (`--latency_predictor=linear`)."""

from __future__ import annotations

import random

from absl import logging

from layernas_tf import costs


class LatencyModel:
    """TFLite latency (ms) predicted from analytic costs: a + b * MAdds + c * params, fitted on
    measured candidates with non-negative coefficients (so a costlier option never predicts faster).

    Measuring every candidate would cost seconds each; a linear model calibrated on a dozen
    measurements predicts in microseconds, which lets the searcher prune by latency like by MAdds.
    `mean_abs_error_pct` is the leave-one-out error on the calibration set.
    """

    def __init__(self, space, input_size: int, num_classes: int, coefficients, samples, mean_abs_error_pct: float,
                 quantization: str, num_threads: int):
        self.space, self.input_size, self.num_classes = space, input_size, num_classes
        self.coefficients = tuple(float(c) for c in coefficients)
        self.samples = samples  # [(encoding string, measured ms)]
        self.mean_abs_error_pct = mean_abs_error_pct
        self.quantization, self.num_threads = quantization, num_threads

    @staticmethod
    def features(c: costs.Costs):
        return (1.0, c.madds / 1e6, c.params / 1e6)

    def __call__(self, encoding) -> float:
        x = self.features(costs.candidate_costs(self.space, encoding, self.input_size, self.num_classes))
        return sum(a * b for a, b in zip(self.coefficients, x))

    @classmethod
    def from_json(cls, space, input_size: int, num_classes: int, payload: dict) -> "LatencyModel":
        c = payload["coefficients_ms"]
        return cls(space, input_size, num_classes, (c["intercept"], c["per_madds_million"], c["per_params_million"]),
                   [tuple(s) for s in payload["samples"]], payload["mean_abs_error_pct"], payload["quantization"],
                   payload["num_threads"])

    def to_json(self) -> dict:
        return {"predictor": "linear", "coefficients_ms": dict(zip(("intercept", "per_madds_million", "per_params_million"), self.coefficients)),
                "samples": self.samples, "mean_abs_error_pct": self.mean_abs_error_pct,
                "quantization": self.quantization, "num_threads": self.num_threads}


def _fit_nonnegative(rows, targets):
    import numpy as np
    from scipy.optimize import nnls

    coefficients, _ = nnls(np.asarray(rows, dtype=float), np.asarray(targets, dtype=float))
    return coefficients


def linear_calibration_encodings(space, input_size: int, num_classes: int, samples: int = 10, seed: int = 0):
    """The candidates the linear model is fitted on: cheapest, default, costliest, then a spread by MAdds."""
    rng = random.Random(seed)
    madds_of = costs.cost_function(space, "madds", input_size, num_classes)
    by_madds = sorted({space.random(rng) for _ in range(200)} | {space.default}, key=madds_of)
    picks = [by_madds[0], space.default, by_madds[-1]]
    picks += [e for e in by_madds[:: max(1, len(by_madds) // samples)] if e not in picks]
    return picks[:max(3, samples)]


def fit_latency_model(space, input_size: int, num_classes: int, measured, quantization: str,
                      num_threads: int) -> LatencyModel:
    """A `LatencyModel` fitted on `measured` [(encoding, ms)], with its leave-one-out error."""
    rows = [LatencyModel.features(costs.candidate_costs(space, e, input_size, num_classes)) for e, _ in measured]
    ms = [m for _, m in measured]
    errors = []
    for i in range(len(rows)):
        coef = _fit_nonnegative(rows[:i] + rows[i + 1:], ms[:i] + ms[i + 1:])
        errors.append(abs(sum(a * b for a, b in zip(coef, rows[i])) - ms[i]) / ms[i])
    return LatencyModel(space, input_size, num_classes, _fit_nonnegative(rows, ms),
                        [(space.to_string(e), m) for e, m in measured], 100.0 * sum(errors) / len(errors),
                        quantization, num_threads)


def calibrate_latency_model(space, input_size: int, num_classes: int, quantization: str = "int8", samples: int = 10,
                            seed: int = 0, num_threads: int = 1, runs: int = 20) -> LatencyModel:
    """Measure `samples` candidates (cheapest, default, costliest, then a spread) and fit a `LatencyModel`."""
    from layernas_tf.latency.timing import measure_tflite_latency

    picks = linear_calibration_encodings(space, input_size, num_classes, samples, seed)
    measured = [(e, measure_tflite_latency(space, e, input_size, num_classes, quantization, num_threads, runs,
                                           3)["latency_ms"][quantization]) for e in picks]
    model = fit_latency_model(space, input_size, num_classes, measured, quantization, num_threads)
    logging.info("latency model (%s, %d thread(s)) from %d measured candidates: %s; leave-one-out error %.1f%%",
                 quantization, num_threads, len(picks), model.to_json()["coefficients_ms"], model.mean_abs_error_pct)
    return model
