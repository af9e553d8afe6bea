"""Quantization-aware training wrap through tensorflow-model-optimization (tf-keras models).

tfmot quantizes the layers it knows (conv, depthwise, dense, BN folding, ReLU, add, multiply, ...).
Layers tfmot has no rule for (our HardSwish / HardSigmoid, and Multiply of the squeeze-excite gate)
carry no weights; they are annotated with a config that fake-quantizes their output, which is how
the int8 TFLite kernels treat those ops.
"""

from __future__ import annotations

import tensorflow_model_optimization as tfmot
import tf_keras

from searchspaces.builder import activation_layers

_quantizers = tfmot.quantization.keras.quantizers


class ActivationOutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """Quantize only the output of a weightless activation layer (8-bit, asymmetric)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


def quantize_scope():
    """The custom-object scope needed to apply, save or load a QAT model built here."""
    hard_sigmoid, hard_swish = activation_layers(tf_keras)
    return tfmot.quantization.keras.quantize_scope(
        {"ActivationOutputQuantizeConfig": ActivationOutputQuantizeConfig, "HardSigmoid": hard_sigmoid, "HardSwish": hard_swish}
    )


def quantize_model(model):
    """Wrap a tf-keras model (from `searchspaces.builder.build(..., keras_module=tf_keras)`) for QAT.

    Raises:
      TypeError: if `model` is not a tf-keras model (tfmot does not accept Keras 3 models).
    """
    if not isinstance(model, tf_keras.Model):
        raise TypeError(
            f"quantization-aware training needs a tf-keras model, got {type(model).__module__}.{type(model).__name__}; "
            "build it with keras_module=tf_keras"
        )
    output_only = activation_layers(tf_keras) + (tf_keras.layers.Multiply,)
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    def annotate_layer(layer):
        if isinstance(layer, output_only):
            return annotate(layer, quantize_config=ActivationOutputQuantizeConfig())
        return annotate(layer)

    with quantize_scope():
        annotated = tf_keras.models.clone_model(model, clone_function=annotate_layer)
        return tfmot.quantization.keras.quantize_apply(annotated)


def copy_weights_by_name(source, target) -> int:
    """Copy the weights of every layer of `source` into the layer of `target` with the same name.

    The builder names every layer after its block, so a Keras 3 candidate and its tf-keras twin line
    up. Returns the number of layers copied. Raises ValueError if a weighted layer has no twin or
    its weight shapes differ.
    """
    by_name = {layer.name: layer for layer in target.layers}
    copied = 0
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        twin = by_name.get(layer.name)
        if twin is None:
            raise ValueError(f"layer {layer.name!r} has no twin in the target model")
        if [w.shape for w in twin.get_weights()] != [w.shape for w in weights]:
            raise ValueError(f"layer {layer.name!r}: weight shapes differ between the two models")
        twin.set_weights(weights)
        copied += 1
    return copied


def qat_finetune(model, space, encoding, train_data, epochs: int = 2, learning_rate: float = 1e-4,
                 input_size=None, num_classes=None):
    """Quantization-aware fine-tuning of a trained Keras 3 candidate; returns the tf-keras QAT model.

    The candidate is rebuilt with tf-keras (which tfmot needs), takes the trained weights by layer
    name, is wrapped by `quantize_model` and fitted for `epochs` on batched `train_data` (images,
    integer labels) at a low learning rate. Convert the result with `tflite.convert(qat, "int8", ...)`.
    """
    from searchspaces.builder import build

    input_size = input_size or space.input_size
    twin = build(space, encoding, (input_size, input_size, 3), num_classes or space.num_classes, keras_module=tf_keras)
    copy_weights_by_name(model, twin)
    qat = quantize_model(twin)
    qat.compile(tf_keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(train_data, epochs=epochs, verbose=0)
    return qat
