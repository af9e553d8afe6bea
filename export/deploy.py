"""Export a trained winner for phones and check what was exported.

`export_winner` writes a SavedModel, a `.keras` file, a float `.tflite` and an int8 `.tflite` (full
integer, post-training quantization calibrated on train images, or the learned ranges of a
quantization-aware-trained model), then evaluates each `.tflite` with the LiteRT interpreter on the
test images and times it.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Dict

import numpy as np

from export import tflite
from layernas_tf.latency.timing import make_interpreter, measure_latency, predict

INT8_DROP_WARNING_POINTS = 2.0


@dataclasses.dataclass
class ExportReport:
    """Paths of what was written, test accuracy (fraction) of each format and interpreter latency (ms)."""

    saved_model: str
    keras_file: str
    tflite: Dict[str, str]
    accuracy: Dict[str, float]
    latency_ms: Dict[str, float]
    size_bytes: Dict[str, int]

    @property
    def int8_drop_points(self) -> float:
        """Accuracy points the int8 model loses against the Keras model."""
        return 100.0 * (self.accuracy["keras"] - self.accuracy["tflite_int8"])

    def warnings(self) -> list:
        drop = self.int8_drop_points
        if drop > INT8_DROP_WARNING_POINTS:
            return [f"int8 TFLite loses {drop:.1f} accuracy points against Keras (more than "
                    f"{INT8_DROP_WARNING_POINTS:g}); try --qat or more calibration images"]
        return []


def accuracy_of(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(scores, axis=-1) == np.asarray(labels).reshape(-1)))


def export_winner(model, out_dir: str, calibration_images: np.ndarray, test_images: np.ndarray,
                  test_labels: np.ndarray, int8_model=None, name: str = "winner", num_threads: int = 1,
                  latency_runs: int = 50) -> ExportReport:
    """Write `model` (Keras 3) as SavedModel, .keras, float and int8 .tflite into `out_dir`, and check them.

    Args:
      model: the trained Keras model.
      out_dir: output folder (created).
      calibration_images: float train images for the int8 representative dataset.
      test_images, test_labels: the held-out split the formats are compared on.
      int8_model: a quantization-aware-trained (tf-keras) model to convert to int8 instead of `model`.
      num_threads, latency_runs: interpreter threads and timed runs per format.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved_model = out / f"{name}_saved_model"
    model.export(str(saved_model), verbose=False)
    keras_file = out / f"{name}.keras"
    model.save(keras_file)
    flatbuffers = {
        "float": tflite.convert(model, "float"),
        "int8": tflite.convert(int8_model if int8_model is not None else model, "int8", calibration_images),
    }
    keras_scores = model.predict(test_images, batch_size=256, verbose=0)
    accuracy = {"keras": accuracy_of(keras_scores, test_labels)}
    paths, latency, sizes = {}, {}, {}
    for kind, flatbuffer in flatbuffers.items():
        path = out / f"{name}_{kind}.tflite"
        path.write_bytes(flatbuffer)
        paths[kind], sizes[kind] = str(path), len(flatbuffer)
        interpreter = make_interpreter(flatbuffer, num_threads)
        accuracy[f"tflite_{kind}"] = accuracy_of(predict(flatbuffer, test_images, interpreter=interpreter), test_labels)
        latency[kind] = measure_latency(flatbuffer, num_threads=num_threads, runs=latency_runs).median_ms
    return ExportReport(str(saved_model), str(keras_file), paths, accuracy, latency, sizes)

