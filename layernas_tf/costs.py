"""Analytic cost model: multiply-adds and trainable parameters of a candidate, without TensorFlow.

MAdds count the multiply-adds of convolutions, depthwise convolutions and dense layers, as the
MobileNet papers do (no biases, batch norms, activations, pooling or additions). Params count
trainable weights: conv kernels, biases, and batch-norm gamma and beta (moving statistics are not
trainable). Both match what `searchspaces.builder` builds, exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

from searchspaces.space import Architecture, SearchSpace

COST_METRICS = ("madds", "params")


@dataclasses.dataclass(frozen=True)
class Costs:
    madds: int
    params: int


def _out_size(size: int, strides: int) -> int:
    # 'same' padding: ceil(size / strides).
    return -(-size // strides)


def architecture_costs(arch: Architecture) -> Costs:
    """MAdds and trainable params of a resolved architecture."""
    size = _out_size(arch.input_size, arch.stem.strides)
    stem = arch.stem
    madds = size * size * stem.kernel_size * stem.kernel_size * 3 * stem.filters
    params = stem.kernel_size * stem.kernel_size * 3 * stem.filters + 2 * stem.filters
    channels = stem.filters
    for block in arch.blocks:
        if block.kind == "identity":
            continue
        in_area = size * size
        size = _out_size(size, block.strides)
        area = size * size
        if block.kind == "projection":
            madds += area * block.in_filters * block.out_filters
            params += block.in_filters * block.out_filters + 2 * block.out_filters
        else:
            mid = block.mid_filters
            if block.expanded_filters:
                madds += in_area * block.in_filters * mid
                params += block.in_filters * mid + 2 * mid
            k2 = block.kernel_size * block.kernel_size
            madds += area * k2 * mid
            params += k2 * mid + 2 * mid
            if block.se_filters:
                squeeze = block.se_filters
                madds += 2 * mid * squeeze
                params += 2 * mid * squeeze + squeeze + mid
            madds += area * mid * block.out_filters
            params += mid * block.out_filters + 2 * block.out_filters
        channels = block.out_filters
    if arch.head_conv is not None:
        head = arch.head_conv.filters
        madds += size * size * channels * head
        params += channels * head + 2 * head
        channels = head
    if arch.head_point_filters:
        madds += channels * arch.head_point_filters
        params += channels * arch.head_point_filters + arch.head_point_filters
        channels = arch.head_point_filters
    madds += channels * arch.num_classes
    params += channels * arch.num_classes + arch.num_classes
    return Costs(madds=madds, params=params)


def candidate_costs(space: SearchSpace, encoding: Sequence[int], input_size: int = 0, num_classes: int = 0) -> Costs:
    """MAdds and params of `encoding` in `space` (validated) at the given input size and classes."""
    return architecture_costs(space.resolve(encoding, input_size or None, num_classes or None))


@dataclasses.dataclass(frozen=True)
class CostFunction:
    """A fast, picklable `encoding tuple -> cost` callable for the searcher (encodings assumed valid)."""

    space: SearchSpace
    metric: str
    input_size: int
    num_classes: int

    def __call__(self, encoding: Tuple[int, ...]) -> int:
        arch = self.space.resolve_unchecked(encoding, self.input_size, self.num_classes)
        return getattr(architecture_costs(arch), self.metric)


def cost_function(space: SearchSpace, metric: str, input_size: int = 0, num_classes: int = 0) -> CostFunction:
    """A fast `encoding tuple -> cost` callable for the searcher (encodings assumed valid).

    Raises:
      ValueError: `metric` is not one of COST_METRICS.
    """
    if metric not in COST_METRICS:
        raise ValueError(f"unknown cost metric {metric!r}; allowed: {', '.join(COST_METRICS)}")
    return CostFunction(space, metric, input_size or space.input_size, num_classes or space.num_classes)
