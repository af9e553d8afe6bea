"""Convert Keras models to TFLite (float or full-integer int8) and run them with the LiteRT interpreter."""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

QUANTIZATIONS = ("float", "int8")


def _concrete_function(model):
    # Trace a batch-1 serving function ourselves: fixed shapes convert to static TFLite tensors,
    # and it avoids Keras' export path, which prints the whole signature.
    spec = tf.TensorSpec((1,) + tuple(model.inputs[0].shape[1:]), tf.float32, name="image")
    fn = tf.function(lambda images: model(images, training=False), input_signature=[spec])
    # Freeze the weights into constants so the converter and its calibrator see no variables.
    return convert_variables_to_constants_v2(fn.get_concrete_function())


def representative_dataset(images: np.ndarray, num_samples: int = 100) -> Callable[[], Iterable]:
    """A representative-dataset generator over the first `num_samples` float images (NHWC)."""
    images = np.asarray(images, dtype=np.float32)[:num_samples]
    if len(images) == 0:
        raise ValueError("representative dataset is empty: int8 quantization needs calibration images")

    def generator():
        for image in images:
            yield [image[None]]

    return generator


def convert(model, quantization: str = "float", calibration_images: Optional[np.ndarray] = None) -> bytes:
    """Convert a Keras model to a `.tflite` flatbuffer.

    Args:
      model: a Keras 3 or tf-keras model with one image input.
      quantization: 'float' (float32) or 'int8' (full-integer post-training quantization, int8 input
        and output; for a quantization-aware-trained model it uses the learned ranges).
      calibration_images: float images (NHWC) for the int8 representative dataset.
    Raises:
      ValueError: unknown quantization, or int8 without calibration images.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; allowed: {', '.join(QUANTIZATIONS)}")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_concrete_function(model)])
    if quantization == "int8":
        if calibration_images is None:
            raise ValueError("quantization='int8' needs calibration_images for the representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()
