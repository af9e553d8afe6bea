"""MAdds and trainable parameters of any built Keras model, counted layer by layer.

The convention is the analytic profiler's (`layernas_tf.costs`) and the MobileNet papers': MAdds
count the multiply-adds of convolutions (Conv2D, DepthwiseConv2D, SeparableConv2D) and Dense
layers, without biases; batch norms, activations, pooling, additions, reshapes and dropout cost
none. Params are the trainable weights (moving batch-norm statistics are not trainable). On our
spaces the counts equal `costs.candidate_costs` exactly, and so keras.applications' MobileNets.

A layer this counter does not know but that carries a kernel (Conv1D, LSTM, attention, ...) is
refused by name instead of being counted as free: give the tuner a `cost_fn` for such models.
"""

from __future__ import annotations

import math
from typing import Iterable, List, Tuple

from layernas_tf.costs import Costs

# Layers that hold no multiply-add weights, or whose weights the convention does not count in MAdds.
FREE_LAYERS = frozenset({
    "InputLayer", "BatchNormalization", "LayerNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU",
    "Softmax", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dropout",
    "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "Flatten", "Reshape", "Permute", "Identity",
    "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Rescaling", "Normalization", "Resizing", "Lambda",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomCrop",
})
WEIGHTED_LAYERS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")


class UncountedLayerError(ValueError):
    """The model holds a layer whose multiply-adds this counter does not know."""


def _positions(shape) -> int:
    """Output positions a kernel is applied at: the product of the dimensions between batch and channels."""
    return math.prod(int(d) for d in tuple(shape)[1:-1])


def _layer_madds(layer) -> int:
    kind = type(layer).__name__
    if kind == "Conv2D":  # kernel (kh, kw, cin / groups, cout) at every output pixel
        return _positions(layer.output.shape) * math.prod(layer.kernel.shape)
    if kind == "DepthwiseConv2D":  # kernel (kh, kw, cin, multiplier)
        return _positions(layer.output.shape) * math.prod(layer.kernel.shape)
    if kind == "SeparableConv2D":  # depthwise then pointwise, both at the output resolution
        positions = _positions(layer.output.shape)
        return positions * (math.prod(layer.depthwise_kernel.shape) + math.prod(layer.pointwise_kernel.shape))
    if kind == "Dense":  # on rank > 2 inputs the kernel is applied at every position
        return _positions(layer.output.shape) * math.prod(layer.kernel.shape)
    return 0


def _layers(model) -> Iterable:
    """Every leaf layer of `model`, nested models and Sequentials opened."""
    for layer in model.layers:
        if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Sequential", "Model"):
            yield from _layers(layer)
        else:
            yield layer


def count_layers(model) -> List[Tuple[str, Costs]]:
    """(class name, MAdds and trainable params) of every leaf layer of a built Keras model, in order.

    Raises:
      UncountedLayerError: a layer with trainable weights of a kind not in WEIGHTED_LAYERS or
        FREE_LAYERS (the message names it and its class).
    """
    out = []
    for layer in _layers(model):
        kind = type(layer).__name__
        if kind not in WEIGHTED_LAYERS and kind not in FREE_LAYERS and layer.trainable_weights:
            raise UncountedLayerError(
                f"layer {layer.name!r} ({kind}) has weights whose multiply-adds are not counted; counted layers: "
                f"{', '.join(WEIGHTED_LAYERS)}. Pass cost_fn(values) -> float to cost such models")
        params = sum(math.prod(v.shape) for v in layer.trainable_weights)
        out.append((kind, Costs(int(_layer_madds(layer)), int(params))))
    return out


def count_model(model) -> Costs:
    """MAdds and trainable params of a built Keras model (Keras 3 or tf-keras).

    Raises:
      UncountedLayerError: see `count_layers`.
    """
    madds = sum(costs.madds for _, costs in count_layers(model))
    params = sum(math.prod(v.shape) for v in model.trainable_weights)
    return Costs(madds=int(madds), params=int(params))


def count_without_weights(build, count=None):
    """`count(build())` (default `count_model`) without initializing the model's weights.

    Inside a Keras 3 StatelessScope variables are created uninitialized and queued for a later
    initialization; the queue entries this build added are dropped again, so a model built only to
    be counted costs its graph (~0.1 s for a MobileNetV2) and not its random weights. Optimizers
    (whose variables start from values, which a StatelessScope refuses) are created outside it,
    and `Model.compile` does nothing meanwhile (counting needs no compiled model). A build that
    still creates a variable from a value (a custom layer) is run again normally.
    """
    import keras

    count = count or count_model
    try:
        from keras.src.backend.common import global_state
        from keras.src.optimizers.base_optimizer import BaseOptimizer
    except ImportError:  # another Keras layout: build normally
        return count(build())
    queue = global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)
    before = len(queue)
    compile_method, optimizer_init = keras.Model.compile, BaseOptimizer.__init__

    def init_outside_scope(self, *args, **kwargs):
        scope = global_state.get_global_attribute("stateless_scope")
        global_state.set_global_attribute("stateless_scope", None)
        try:
            optimizer_init(self, *args, **kwargs)
        finally:
            global_state.set_global_attribute("stateless_scope", scope)

    keras.Model.compile = lambda self, *args, **kwargs: None
    BaseOptimizer.__init__ = init_outside_scope
    try:
        with keras.StatelessScope(initialize_variables=False):
            return count(build())
    except ValueError as e:
        if "stateless scope" not in str(e):
            raise
    finally:
        keras.Model.compile, BaseOptimizer.__init__ = compile_method, optimizer_init
        del queue[before:]
    return count(build())
