"""Counts MAdds and trainable params on a built Keras model, layer by layer (independent of costs.py)."""

import numpy as np


def _shape(t):
    return tuple(t.shape)


def count_model(model):
    """(madds, params) of a Keras (3 or tf-keras) model, counted from its layers' weights and shapes."""
    madds = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, _ = _shape(layer.output)
            kh, kw, cin, cout = layer.kernel.shape
            madds += h * w * kh * kw * cin * cout
        elif kind == "DepthwiseConv2D":
            _, h, w, c = _shape(layer.output)
            kernel = getattr(layer, "depthwise_kernel", None) or layer.kernel
            kh, kw, _, _ = kernel.shape
            madds += h * w * kh * kw * c
        elif kind == "Dense":
            cin, cout = layer.kernel.shape
            madds += cin * cout
    params = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    return int(madds), params
