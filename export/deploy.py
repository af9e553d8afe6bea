"""Export a trained winner for phones and check what was exported.

`export_winner` writes a SavedModel, a `.keras` file, a float `.tflite` and an int8 `.tflite` (full
integer, post-training quantization calibrated on train images, or the learned ranges of a
quantization-aware-trained model), then evaluates each `.tflite` with the LiteRT interpreter on the
test images and times it.

Both `.tflite` files take raw RGB pixel values 0-255 (float32 for the float model, uint8 for the int8
model) and scale them inside the graph; resizing stays with the caller. The float model returns float
class probabilities, the int8 model uint8 ones (quantized, scale 1/256). They carry TFLite Model
Metadata (name, version, description, input normalization, the class names as a packed labels file),
so MediaPipe Tasks' `ImageClassifier` loads them as they are; `labels.txt` is written beside them.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from absl import logging

from export import metadata, tflite
from layernas_tf.latency.timing import make_interpreter, measure_latency, predict

INT8_DROP_WARNING_POINTS = 2.0
LABELS_FILE = "labels.txt"
FORMATS = ("float", "int8")


@dataclasses.dataclass
class ExportReport:
    """What was written and how it scores.

    Attributes:
      saved_model, keras_file: paths of the SavedModel and `.keras` file (they take [-1, 1] inputs).
      tflite: format ('float', 'int8') -> `.tflite` path (raw-pixel inputs, with metadata).
      accuracy: test accuracy (fraction) of 'keras', 'tflite_float' and 'tflite_int8'.
      latency_ms: format -> median interpreter latency of one image (ms) with `num_threads` threads.
      size_bytes: format -> file size.
      labels: the class names, in output order; labels_file: `labels.txt`.
      input_spec: format -> {"shape", "dtype", "value_range"} of the `.tflite` input.
      num_threads: interpreter threads of the latency figures.
      test_images: how many test images the accuracies are measured on.
      metadata: whether the `.tflite` files carry TFLite Model Metadata.
    """

    saved_model: str
    keras_file: str
    tflite: Dict[str, str]
    accuracy: Dict[str, float]
    latency_ms: Dict[str, float]
    size_bytes: Dict[str, int]
    labels: List[str] = dataclasses.field(default_factory=list)
    labels_file: str = ""
    input_spec: Dict[str, dict] = dataclasses.field(default_factory=dict)
    num_threads: int = 1
    test_images: int = 0
    metadata: bool = True

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


def class_labels(labels: Optional[Sequence[str]], num_classes: int) -> List[str]:
    """The class names of a `num_classes`-way classifier: `labels`, or "0".."N-1" when None (logged).

    Raises:
      ValueError: `labels` does not hold one name per class (naming both counts), or a name is empty or
        spans lines (the labels file holds one name per line).
    """
    if labels is None:
        logging.info("no class names given: the exported labels are the class indices 0..%d", num_classes - 1)
        return [str(i) for i in range(num_classes)]
    labels = [str(label) for label in labels]
    if len(labels) != num_classes:
        raise ValueError(f"labels: {len(labels)} class names for a model with {num_classes} classes; give one name "
                         "per class, in label order")
    bad = [label for label in labels if not label.strip() or "\n" in label or "\r" in label]
    if bad:
        raise ValueError(f"labels: class names must be non-empty single lines, got {bad[:3]!r}")
    return labels


def describe(about: Mapping[str, object], accuracy: float, test_images: int, kind: str) -> str:
    """The metadata description: `about` as 'key: value' parts, then the format's test accuracy."""
    parts = [f"{key}: {value}" for key, value in about.items()]
    parts.append(f"test accuracy: {accuracy:.4f} ({kind} model, {test_images} test images)")
    parts.append("input: RGB pixel values 0-255, resized to the input size by the caller")
    return "; ".join(parts)


def export_winner(model, out_dir: str, calibration_images: np.ndarray, test_images: np.ndarray,
                  test_labels: np.ndarray, int8_model=None, name: str = "winner", num_threads: int = 1,
                  latency_runs: int = 50, labels: Optional[Sequence[str]] = None, pixel_max: float = 255.0,
                  about: Optional[Mapping[str, object]] = None, version: Optional[str] = None) -> ExportReport:
    """Write `model` (Keras 3) as SavedModel, .keras, float and int8 .tflite into `out_dir`, and check them.

    Args:
      model: the trained Keras model; it takes images scaled to [-1, 1] (`pixel * 2 / pixel_max - 1`).
      out_dir: output folder (created).
      calibration_images: raw-pixel train images (0-255, NHWC) for the int8 representative dataset.
      test_images, test_labels: the held-out split (raw pixels) the formats are compared on.
      int8_model: a quantization-aware-trained (tf-keras) model to convert to int8 instead of `model`.
      num_threads, latency_runs: interpreter threads and timed runs per format.
      labels: class names in label order (e.g. `Dataset.class_names`); None: "0".."N-1".
      pixel_max: the pixel value the model's training pipeline mapped to 1.0 (255 for 8-bit images).
      about: what the metadata description says of the model (space, encoding, MAdds, ...).
      version: the metadata's model version (default: layernas_tf's version).
    Raises:
      ValueError: `labels` does not name every class (before anything is written).

    Without MediaPipe's metadata writer the files are written without metadata, with one warning.
    """
    import layernas_tf

    num_classes = int(model.outputs[0].shape[-1])
    labels = class_labels(labels, num_classes)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved_model = out / f"{name}_saved_model"
    model.export(str(saved_model), verbose=False)
    keras_file = out / f"{name}.keras"
    model.save(keras_file)
    test_images = np.asarray(test_images, dtype=np.float32)
    keras_scores = model.predict(test_images * (2.0 / pixel_max) - 1.0, batch_size=256, verbose=0)
    accuracy = {"keras": accuracy_of(keras_scores, test_labels)}
    flatbuffers = {
        "float": tflite.convert(model, "float", pixel_max=pixel_max),
        "int8": tflite.convert(int8_model if int8_model is not None else model, "int8", calibration_images,
                               pixel_max=pixel_max),
    }
    paths, latency, sizes, input_spec = {}, {}, {}, {}
    for kind, flatbuffer in flatbuffers.items():
        interpreter = make_interpreter(flatbuffer, num_threads)
        detail = interpreter.get_input_details()[0]
        input_spec[kind] = {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
                            "value_range": list(tflite.PIXEL_RANGE)}
        accuracy[f"tflite_{kind}"] = accuracy_of(predict(flatbuffer, test_images, interpreter=interpreter), test_labels)
        latency[kind] = measure_latency(flatbuffer, num_threads=num_threads, runs=latency_runs).median_ms
        description = describe(about or {}, accuracy[f"tflite_{kind}"], len(test_images), kind)
        flatbuffer, with_metadata = _with_metadata(flatbuffer, labels, f"{name} ({kind})",
                                                   version or layernas_tf.__version__, description)
        path = out / f"{name}_{kind}.tflite"
        path.write_bytes(flatbuffer)
        paths[kind], sizes[kind] = str(path), len(flatbuffer)
    labels_file = out / LABELS_FILE
    labels_file.write_text("\n".join(labels) + "\n")
    return ExportReport(str(saved_model), str(keras_file), paths, accuracy, latency, sizes, labels, str(labels_file),
                        input_spec, num_threads, len(test_images), with_metadata)


_WARNED: set = set()


def _with_metadata(flatbuffer: bytes, labels, name: str, version: str, description: str):
    """(flatbuffer with metadata, True), or (flatbuffer, False) with one warning per process when
    MediaPipe's writer cannot be imported here (e.g. OpenCV, which it loads, misses a system library)."""
    try:
        return metadata.with_metadata(flatbuffer, labels, name, version, description), True
    except metadata.MetadataUnavailableError as e:
        if "metadata" not in _WARNED:
            _WARNED.add("metadata")
            logging.warning("the exported .tflite files carry no metadata, so MediaPipe's ImageClassifier refuses "
                            "them (labels.txt is written beside them): %s", e)
        return flatbuffer, False
