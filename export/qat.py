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
