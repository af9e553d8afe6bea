"""MobileNetV2 / V3 search spaces: the published block tables plus per-block options.

Each table row is (kernel_size, strides, filters, expand_ratio, se, activation), in the order of the
published networks (Sandler et al. 2018; Howard et al. 2019) as keras.applications builds them. The
default option of every layer reproduces the row, so the default candidate is the published model.
"""

from __future__ import annotations

import collections
import functools
import itertools
from typing import List, Sequence, Tuple

from searchspaces.space import (
    Architecture,
    BlockConfig,
    ConvSpec,
    Encoding,
    Option,
    SearchableLayer,
    SearchSpace,
    make_divisible,
    without_duplicate_options,
)

BlockRow = collections.namedtuple("BlockRow", "kernel_size strides filters expand_ratio se activation")

# MobileNetV2 (keras.applications.MobileNetV2): 17 inverted-residual blocks.
MOBILENET_V2_BLOCKS: Tuple[BlockRow, ...] = tuple(
    BlockRow(3, s, f, e, False, "relu6")
    for f, s, e in [
        (16, 1, 1),
        (24, 2, 6), (24, 1, 6),
        (32, 2, 6), (32, 1, 6), (32, 1, 6),
        (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
        (96, 1, 6), (96, 1, 6), (96, 1, 6),
        (160, 2, 6), (160, 1, 6), (160, 1, 6),
        (320, 1, 6),
    ]
)

# MobileNetV3-Large: 15 blocks.
MOBILENET_V3_LARGE_BLOCKS: Tuple[BlockRow, ...] = tuple(
    BlockRow(*row)
    for row in [
        (3, 1, 16, 1, False, "relu"),
        (3, 2, 24, 4, False, "relu"),
        (3, 1, 24, 3, False, "relu"),
        (5, 2, 40, 3, True, "relu"),
        (5, 1, 40, 3, True, "relu"),
        (5, 1, 40, 3, True, "relu"),
        (3, 2, 80, 6, False, "hard_swish"),
        (3, 1, 80, 2.5, False, "hard_swish"),
        (3, 1, 80, 2.3, False, "hard_swish"),
        (3, 1, 80, 2.3, False, "hard_swish"),
        (3, 1, 112, 6, True, "hard_swish"),
        (3, 1, 112, 6, True, "hard_swish"),
        (5, 2, 160, 6, True, "hard_swish"),
        (5, 1, 160, 6, True, "hard_swish"),
        (5, 1, 160, 6, True, "hard_swish"),
    ]
)

# MobileNetV3-Small: 11 blocks.
MOBILENET_V3_SMALL_BLOCKS: Tuple[BlockRow, ...] = tuple(
    BlockRow(*row)
    for row in [
        (3, 2, 16, 1, True, "relu"),
        (3, 2, 24, 72.0 / 16, False, "relu"),
        (3, 1, 24, 88.0 / 24, False, "relu"),
        (5, 2, 40, 4, True, "hard_swish"),
        (5, 1, 40, 6, True, "hard_swish"),
        (5, 1, 40, 6, True, "hard_swish"),
        (5, 1, 48, 3, True, "hard_swish"),
        (5, 1, 48, 3, True, "hard_swish"),
        (5, 2, 96, 6, True, "hard_swish"),
        (5, 1, 96, 6, True, "hard_swish"),
        (5, 1, 96, 6, True, "hard_swish"),
    ]
)

# A MobileNetV2 for 32x32 inputs: stride-1 stem, three stride-2 stages, narrow widths.
CIFAR_MOBILENET_V2_BLOCKS: Tuple[BlockRow, ...] = tuple(
    BlockRow(3, s, f, e, False, "relu6")
    for f, s, e in [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6)]
)

FILTERS_MULTIPLIERS = (0.75, 1.0, 1.25)
KERNEL_SIZES = (3, 5)
V2_EXPAND_RATIOS = (3, 6)
SE_CHOICES = (False, True)
SE_RATIO = 0.25


def _v2_layers(rows: Sequence[BlockRow]) -> Tuple[SearchableLayer, ...]:
    """Options: filters x kernel x expansion; a block without expansion (ratio 1) keeps it."""
    layers = []
    for i, row in enumerate(rows):
        expands = (row.expand_ratio,) if row.expand_ratio == 1 else V2_EXPAND_RATIOS
        options = tuple(
            Option(filters_multiplier=m, kernel_size=k, expand_ratio=e)
            for m, k, e in itertools.product(FILTERS_MULTIPLIERS, KERNEL_SIZES, expands)
        )
        default = options.index(Option(1.0, row.kernel_size, row.expand_ratio))
        layers.append(SearchableLayer(f"block_{i}", options, default))
    return tuple(layers)


def _v3_layers(rows: Sequence[BlockRow]) -> Tuple[SearchableLayer, ...]:
    """Options: filters x kernel x squeeze-excite; expansion stays at the published ratio."""
    layers = []
    for i, row in enumerate(rows):
        options = tuple(
            Option(filters_multiplier=m, kernel_size=k, se=se)
            for m, k, se in itertools.product(FILTERS_MULTIPLIERS, KERNEL_SIZES, SE_CHOICES)
        )
        default = options.index(Option(1.0, row.kernel_size, se=row.se))
        layers.append(SearchableLayer(f"block_{i}", options, default))
    return tuple(layers)


def _resolve_v2(rows, alpha, stem_strides=2, stem_filters=None, head_filters=None):
    """The V2 resolver for `rows`; a partial of a module-level function, so spaces can be pickled."""
    stem_filters = stem_filters or make_divisible(32 * alpha, 8)
    head_filters = head_filters or (1280 if alpha <= 1.0 else make_divisible(1280 * alpha, 8))
    return functools.partial(_resolve_v2_rows, rows, alpha, stem_strides, stem_filters, head_filters)


def _resolve_v2_rows(rows, alpha, stem_strides, stem_filters, head_filters, space: SearchSpace, encoding: Encoding,
                     input_size: int, num_classes: int) -> Architecture:
    stem = ConvSpec("stem", stem_filters, 3, stem_strides, "relu6")
    in_filters = stem.filters
    blocks: List[BlockConfig] = []
    for i, (row, layer, index) in enumerate(zip(rows, space.layers, encoding)):
        option = layer.options[index]
        out_filters = make_divisible(int(row.filters * alpha * option.filters_multiplier), 8)
        expand = option.expand_ratio
        blocks.append(
            BlockConfig(
                f"block_{i}", "mbconv", in_filters, out_filters,
                expanded_filters=0 if expand == 1 else int(in_filters * expand),
                kernel_size=option.kernel_size, strides=row.strides, activation=row.activation,
            )
        )
        in_filters = out_filters
    head = ConvSpec("head_conv", head_filters, 1, 1, "relu6")
    return Architecture(input_size, num_classes, stem, tuple(blocks), head)


def _resolve_v3(rows, last_point_filters):
    """The V3 resolver for `rows` (picklable, like `_resolve_v2`)."""
    return functools.partial(_resolve_v3_rows, rows, last_point_filters)


def _resolve_v3_rows(rows, last_point_filters, space: SearchSpace, encoding: Encoding, input_size: int,
                     num_classes: int) -> Architecture:
    stem = ConvSpec("stem", 16, 3, 2, "hard_swish")
    in_filters = stem.filters
    blocks: List[BlockConfig] = []
    for i, (row, layer, index) in enumerate(zip(rows, space.layers, encoding)):
        option = layer.options[index]
        out_filters = make_divisible(row.filters * option.filters_multiplier)
        expanded = 0 if row.expand_ratio == 1 else make_divisible(in_filters * row.expand_ratio)
        mid = expanded or in_filters
        blocks.append(
            BlockConfig(
                f"block_{i}", "mbconv", in_filters, out_filters, expanded_filters=expanded,
                kernel_size=option.kernel_size, strides=row.strides,
                se_filters=make_divisible(mid * SE_RATIO) if option.se else 0, activation=row.activation,
            )
        )
        in_filters = out_filters
    head = ConvSpec("head_conv", make_divisible(in_filters * 6), 1, 1, "hard_swish")
    return Architecture(
        input_size, num_classes, stem, tuple(blocks), head,
        head_point_filters=last_point_filters, head_point_activation="hard_swish", dropout_rate=0.2,
    )


def mobilenet_v2(alpha: float = 1.0, name: str = "mobilenet_v2") -> SearchSpace:
    return without_duplicate_options(SearchSpace(
        name, _v2_layers(MOBILENET_V2_BLOCKS), 224, 1000, _resolve_v2(MOBILENET_V2_BLOCKS, alpha),
        description=f"MobileNetV2 (alpha {alpha:g}), 17 blocks x (filters x kernel x expansion)",
    ))


def mobilenet_v3_large() -> SearchSpace:
    return without_duplicate_options(SearchSpace(
        "mobilenet_v3_large", _v3_layers(MOBILENET_V3_LARGE_BLOCKS), 224, 1000,
        _resolve_v3(MOBILENET_V3_LARGE_BLOCKS, 1280),
        description="MobileNetV3-Large, 15 blocks x (filters x kernel x squeeze-excite)",
    ))


def mobilenet_v3_small() -> SearchSpace:
    return without_duplicate_options(SearchSpace(
        "mobilenet_v3_small", _v3_layers(MOBILENET_V3_SMALL_BLOCKS), 224, 1000,
        _resolve_v3(MOBILENET_V3_SMALL_BLOCKS, 1024),
        description="MobileNetV3-Small, 11 blocks x (filters x kernel x squeeze-excite)",
    ))


def cifar_mobilenet_v2() -> SearchSpace:
    return without_duplicate_options(SearchSpace(
        "cifar_mobilenet_v2", _v2_layers(CIFAR_MOBILENET_V2_BLOCKS), 32, 10,
        _resolve_v2(CIFAR_MOBILENET_V2_BLOCKS, 1.0, stem_strides=1, stem_filters=16, head_filters=256),
        description="MobileNetV2 for 32x32 inputs (stride-1 stem, 7 blocks), for demos and tests",
    ))
