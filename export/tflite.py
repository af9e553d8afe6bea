"""Convert Keras models to TFLite (float or full-integer int8) and run them with the LiteRT interpreter.

With `pixel_max`, the flatbuffer takes raw pixel values 0-255 (float32 for the float model, uint8 for
the int8 model) and scales them to the model's [-1, 1] inside the graph, as a phone app feeds them.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

QUANTIZATIONS = ("float", "int8")
PIXEL_RANGE = (0.0, 255.0)  # what a raw-pixel input accepts


def _concrete_function(model, pixel_max: Optional[float] = None):
    # Trace a batch-1 serving function ourselves: fixed shapes convert to static TFLite tensors,
    # and it avoids Keras' export path, which prints the whole signature.
    spec = tf.TensorSpec((1,) + tuple(model.inputs[0].shape[1:]), tf.float32, name="image")
    if pixel_max is None:
        fn = tf.function(lambda images: model(images, training=False), input_signature=[spec])
    else:
        scale = 2.0 / pixel_max  # the training pipeline's scaling (train.data.Dataset.normalize)
        fn = tf.function(lambda pixels: model(pixels * scale - 1.0, training=False), input_signature=[spec])
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


def _spanning_pixel_range(images: np.ndarray) -> np.ndarray:
    """`images` with two pixels of the first set to 0 and 255, so the calibrated input range is exactly
    [0, 255] and the uint8 input takes pixel values as they are (scale 1, zero point 0)."""
    images = np.array(images, dtype=np.float32)
    images[0, 0, 0, :], images[0, 0, -1, :] = PIXEL_RANGE
    return images


def convert(model, quantization: str = "float", calibration_images: Optional[np.ndarray] = None,
            pixel_max: Optional[float] = None) -> bytes:
    """Convert a Keras model to a `.tflite` flatbuffer.

    Args:
      model: a Keras 3 or tf-keras model with one image input (scaled to [-1, 1]).
      quantization: 'float' (float32) or 'int8' (full-integer post-training quantization; for a
        quantization-aware-trained model it uses the learned ranges).
      calibration_images: images (NHWC) for the int8 representative dataset, as the flatbuffer takes
        them: raw pixels with `pixel_max`, else model inputs.
      pixel_max: the pixel value the training pipeline maps to 1.0. Given, the flatbuffer takes raw
        pixels 0-255 (float32 input, or uint8 input and output for int8) and scales them inside the
        graph; None, it takes the model's own input (float32, or int8 input and output for int8).
    Raises:
      ValueError: unknown quantization, or int8 without calibration images.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; allowed: {', '.join(QUANTIZATIONS)}")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_concrete_function(model, pixel_max)])
    if quantization == "int8":
        if calibration_images is None:
            raise ValueError("quantization='int8' needs calibration_images for the representative dataset")
        if pixel_max is not None:
            calibration_images = _spanning_pixel_range(calibration_images)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Raw pixels: uint8 in and out, the convention of quantized image classifiers (MediaPipe Tasks
        # takes uint8 or float32 tensors only); inside, every op stays int8.
        io_type = tf.int8 if pixel_max is None else tf.uint8
        converter.inference_input_type = converter.inference_output_type = io_type
    flatbuffer = converter.convert()
    if quantization == "int8" and pixel_max is not None:
        _check_raw_pixel_input(flatbuffer)
    return flatbuffer


def _check_raw_pixel_input(flatbuffer: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_content=flatbuffer).get_input_details()[0]
    scale, zero_point = detail["quantization"]
    if detail["dtype"] != np.uint8 or not np.isclose(scale, 1.0) or zero_point != 0:
        raise RuntimeError(f"the int8 model's input is {detail['dtype'].__name__} with scale {scale} and zero "
                           f"point {zero_point}, not raw uint8 pixels (scale 1, zero point 0)")
