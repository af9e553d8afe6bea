"""Keras functional builder: one model per candidate, from its resolved block table.

Every layer is named after its block (`block_3_expand`, `block_3_depthwise`, `block_3_se_squeeze`,
...), so a model summary, a TFLite op list and a profiler line can be matched by name. Only ops that
convert to TFLite builtins are used, and hard-swish / hard-sigmoid are real layers (not lambdas) so
that tensorflow-model-optimization can wrap the model for quantization-aware training. The same
builder produces a Keras 3 model or, with `keras_module=tf_keras`, a Keras 2 model for tfmot.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence, Tuple

from searchspaces.space import Architecture, BlockConfig, ConvSpec, SearchSpace

BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3


def _default_keras():
    import keras

    return keras


@functools.lru_cache(maxsize=None)
def activation_layers(keras_module):
    """HardSigmoid and HardSwish layer classes for `keras_module` (keras or tf_keras).

    hard_sigmoid(x) = relu6(x + 3) / 6 and hard_swish(x) = x * hard_sigmoid(x), as in MobileNetV3;
    the TFLite converter fuses the latter into its HARD_SWISH builtin.
    """
    layers = keras_module.layers
    package = "layernas_tf" if keras_module.__name__ == "keras" else "layernas_tf_tfkeras"
    relu6 = (lambda x: keras_module.ops.relu6(x)) if hasattr(keras_module, "ops") else None
    if relu6 is None:
        import tensorflow as tf

        relu6 = tf.nn.relu6

    class HardSigmoid(layers.Layer):
        def call(self, inputs):
            return relu6(inputs + 3.0) * (1.0 / 6.0)

    class HardSwish(layers.Layer):
        def call(self, inputs):
            return inputs * (relu6(inputs + 3.0) * (1.0 / 6.0))

    register = keras_module.utils.register_keras_serializable(package=package)
    return register(HardSigmoid), register(HardSwish)


def custom_objects(keras_module=None):
    """Objects needed to load a saved model built here."""
    hard_sigmoid, hard_swish = activation_layers(keras_module or _default_keras())
    return {"HardSigmoid": hard_sigmoid, "HardSwish": hard_swish}


def _activation(keras_module, name: Optional[str], layer_name: str):
    layers = keras_module.layers
    if name is None:
        return None
    if name == "relu":
        return layers.ReLU(name=layer_name)
    if name == "relu6":
        return layers.ReLU(6.0, name=layer_name)
    hard_sigmoid, hard_swish = activation_layers(keras_module)
    if name == "hard_swish":
        return hard_swish(name=layer_name)
    if name == "hard_sigmoid":
        return hard_sigmoid(name=layer_name)
    raise ValueError(f"unknown activation {name!r}; allowed: relu, relu6, hard_swish, hard_sigmoid")


def _apply(layer, x):
    return x if layer is None else layer(x)


def _bn(keras_module, name, momentum=BN_MOMENTUM):
    return keras_module.layers.BatchNormalization(momentum=momentum, epsilon=BN_EPSILON, name=name)


def _conv_bn_act(keras_module, x, spec: ConvSpec, momentum=BN_MOMENTUM):
    x = keras_module.layers.Conv2D(
        spec.filters, spec.kernel_size, strides=spec.strides, padding="same", use_bias=False, name=spec.name
    )(x)
    x = _bn(keras_module, f"{spec.name}_bn", momentum)(x)
    return _apply(_activation(keras_module, spec.activation, f"{spec.name}_{spec.activation}"), x)


def _block(keras_module, x, block: BlockConfig, momentum=BN_MOMENTUM):
    layers = keras_module.layers
    name = block.name
    if block.kind == "identity":
        return x
    if block.kind == "projection":
        x = layers.Conv2D(block.out_filters, 1, strides=block.strides, padding="same", use_bias=False, name=f"{name}_project")(x)
        return _bn(keras_module, f"{name}_project_bn", momentum)(x)
    shortcut = x
    if block.expanded_filters:
        x = layers.Conv2D(block.expanded_filters, 1, padding="same", use_bias=False, name=f"{name}_expand")(x)
        x = _bn(keras_module, f"{name}_expand_bn", momentum)(x)
        x = _activation(keras_module, block.activation, f"{name}_expand_{block.activation}")(x)
    x = layers.DepthwiseConv2D(block.kernel_size, strides=block.strides, padding="same", use_bias=False, name=f"{name}_depthwise")(x)
    x = _bn(keras_module, f"{name}_depthwise_bn", momentum)(x)
    x = _activation(keras_module, block.activation, f"{name}_depthwise_{block.activation}")(x)
    if block.se_filters:
        se = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
        se = layers.Conv2D(block.se_filters, 1, padding="same", name=f"{name}_se_squeeze")(se)
        se = layers.ReLU(name=f"{name}_se_relu")(se)
        se = layers.Conv2D(block.mid_filters, 1, padding="same", name=f"{name}_se_excite")(se)
        se = _activation(keras_module, "hard_sigmoid", f"{name}_se_hard_sigmoid")(se)
        x = layers.Multiply(name=f"{name}_se_multiply")([x, se])
    x = layers.Conv2D(block.out_filters, 1, padding="same", use_bias=False, name=f"{name}_project")(x)
    x = _bn(keras_module, f"{name}_project_bn", momentum)(x)
    if block.residual:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def build_architecture(arch: Architecture, keras_module=None, name: str = "candidate", classifier_activation: str = "softmax",
                       bn_momentum: float = BN_MOMENTUM):
    """A Keras functional model for a resolved architecture (input: float images, NHWC).

    `bn_momentum` is the BatchNormalization moving-average momentum: the published 0.99 suits long
    training; a short proxy run of a few dozen steps needs a lower one (e.g. 0.9) for its moving
    statistics, and so its validation accuracy, to mean anything.
    """
    if not 0.0 <= bn_momentum < 1.0:
        raise ValueError(f"bn_momentum={bn_momentum!r} must lie in [0, 1)")
    keras_module = keras_module or _default_keras()
    layers = keras_module.layers
    inputs = keras_module.Input(shape=(arch.input_size, arch.input_size, 3), name="image")
    x = _conv_bn_act(keras_module, inputs, arch.stem, bn_momentum)
    for block in arch.blocks:
        x = _block(keras_module, x, block, bn_momentum)
    outputs = _head(keras_module, x, arch.head_conv, arch.head_point_filters, arch.head_point_activation,
                    arch.dropout_rate, arch.num_classes, classifier_activation, bn_momentum)
    return keras_module.Model(inputs, outputs, name=name)


def _head(keras_module, x, head_conv: Optional[ConvSpec], point_filters: int, point_activation: str,
          dropout_rate: float, num_classes: int, classifier_activation: str, bn_momentum: float = BN_MOMENTUM):
    layers = keras_module.layers
    if head_conv is not None:
        x = _conv_bn_act(keras_module, x, head_conv, bn_momentum)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    if point_filters:
        x = layers.Dense(point_filters, name="head_point")(x)
        x = _activation(keras_module, point_activation, f"head_point_{point_activation}")(x)
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name="dropout")(x)
    return layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)


def build_part(part, keras_module=None):
    """A one-part Keras model (stem, block or head) at the input shape the part gets inside a candidate,
    for timing it alone (see `layernas_tf.latency.block_table.Part`)."""
    keras_module = keras_module or _default_keras()
    inputs = keras_module.Input(shape=(part.input_size, part.input_size, part.in_filters), name="image")
    if part.kind == "stem":
        x = _conv_bn_act(keras_module, inputs, ConvSpec("stem", part.out_filters, part.kernel_size, part.strides,
                                                        part.activation or None))
    elif part.kind in ("block", "projection"):
        kind = "mbconv" if part.kind == "block" else "projection"
        x = _block(keras_module, inputs, BlockConfig("block", kind, part.in_filters, part.out_filters,
                                                     part.expanded_filters, part.kernel_size or 1, part.strides,
                                                     part.se_filters, part.activation or "relu"))
    elif part.kind == "head":
        head_conv = ConvSpec("head_conv", part.out_filters, 1, 1, part.activation or None) if part.out_filters else None
        # Dropout is the identity at inference, so the head's cost does not depend on its rate.
        x = _head(keras_module, inputs, head_conv, part.head_point_filters, "hard_swish", 0.0, part.num_classes,
                  "softmax")
    else:
        raise ValueError(f"unknown part kind {part.kind!r}; allowed: stem, block, projection, head")
    return keras_module.Model(inputs, x, name=part.kind)


def build(
    space: SearchSpace,
    encoding: Sequence[int] | str,
    input_shape: Optional[Tuple[int, int, int]] = None,
    num_classes: Optional[int] = None,
    keras_module=None,
    classifier_activation: str = "softmax",
    bn_momentum: float = BN_MOMENTUM,
):
    """Build the candidate `encoding` of `space` as a `keras.Model`.

    Args:
      space: a `SearchSpace` (see `searchspaces.get_space`).
      encoding: option index per layer, or its string form ('3-0-1-...', a table key, 'default').
      input_shape: (height, width, 3) with height == width; defaults to the space's input size.
      num_classes: classifier width; defaults to the space's.
      keras_module: `keras` (default) or `tf_keras` (for tensorflow-model-optimization).
      bn_momentum: BatchNormalization momentum (see `build_architecture`).
    Raises:
      ValueError: for a bad encoding, a non-square / non-RGB input shape or bn_momentum outside [0, 1).
    """
    if input_shape is not None:
        if len(input_shape) != 3 or input_shape[0] != input_shape[1] or input_shape[2] != 3:
            raise ValueError(f"input_shape must be (size, size, 3), got {tuple(input_shape)}")
    encoding = space.parse(encoding) if isinstance(encoding, str) else space.validate(encoding)
    arch = space.resolve(encoding, input_shape[0] if input_shape else None, num_classes)
    return build_architecture(
        arch, keras_module, name=f"{space.name}_{space.to_string(encoding)}", classifier_activation=classifier_activation,
        bn_momentum=bn_momentum,
    )
