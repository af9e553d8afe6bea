"""The networks behind the two tabular NAS benchmarks, so a table's winner can be built and exported.

Encodings use the tables' own keys: NAS-Bench-Macro keys are 8 characters from '012', Channel-Bench-
Macro (MobileNet) keys are 7 characters from '1234'. Structure follows the benchmark authors' training
code as summarized in the benchmarks' README; their `flops` field is reproduced by the cost model.
"""

from __future__ import annotations

from typing import List

from searchspaces.space import Architecture, BlockConfig, ConvSpec, Encoding, Option, SearchableLayer, SearchSpace

# NAS-Bench-Macro: 8 searchable layers in 3 stages (2, 3, 3); each stage starts with stride 2 and
# doubles the channels.
NAS_BENCH_MACRO_FILTERS = (64, 64, 128, 128, 128, 256, 256, 256)
NAS_BENCH_MACRO_STRIDES = (2, 1, 2, 1, 1, 2, 1, 1)
NAS_BENCH_MACRO_OPTIONS = (
    Option(kind="identity"),
    Option(kernel_size=3, expand_ratio=3),
    Option(kernel_size=5, expand_ratio=6),
)

# Channel-Bench-Macro MobileNet: 7 searchable widths, each 0.25/0.5/0.75/1.0 of its maximum.
CHANNEL_BENCH_MAX_WIDTHS = (128, 768, 768, 768, 256, 1536, 1024)
CHANNEL_BENCH_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def _resolve_nas_bench_macro(space: SearchSpace, encoding: Encoding, input_size: int, num_classes: int) -> Architecture:
    stem = ConvSpec("stem", 32, 3, 1, "relu")
    in_filters = stem.filters
    blocks: List[BlockConfig] = []
    for i, (index, filters, strides) in enumerate(zip(encoding, NAS_BENCH_MACRO_FILTERS, NAS_BENCH_MACRO_STRIDES)):
        option = space.layers[i].options[index]
        name = f"block_{i}"
        if option.kind == "identity":
            kind = "identity" if strides == 1 and in_filters == filters else "projection"
            blocks.append(BlockConfig(name, kind, in_filters, filters, strides=strides))
        else:
            blocks.append(
                BlockConfig(
                    name, "mbconv", in_filters, filters, expanded_filters=int(in_filters * option.expand_ratio),
                    kernel_size=option.kernel_size, strides=strides, activation="relu6",
                )
            )
        in_filters = filters
    return Architecture(input_size, num_classes, stem, tuple(blocks), ConvSpec("head_conv", 1280, 1, 1, "relu"))


def _resolve_channel_bench(space: SearchSpace, encoding: Encoding, input_size: int, num_classes: int) -> Architecture:
    w = [int(m * CHANNEL_BENCH_FRACTIONS[i]) for m, i in zip(CHANNEL_BENCH_MAX_WIDTHS, encoding)]
    stem = ConvSpec("stem", w[0], 3, 2, "relu")
    blocks = (
        BlockConfig("block_0", "mbconv", w[0], w[0], expanded_filters=w[1], kernel_size=3, strides=1, activation="relu"),
        BlockConfig("block_1", "mbconv", w[0], w[0], expanded_filters=w[2], kernel_size=3, strides=1, activation="relu"),
        BlockConfig("block_2", "mbconv", w[0], w[4], expanded_filters=w[3], kernel_size=3, strides=2, activation="relu"),
        BlockConfig("block_3", "mbconv", w[4], w[4], expanded_filters=w[5], kernel_size=3, strides=1, activation="relu"),
    )
    return Architecture(input_size, num_classes, stem, blocks, ConvSpec("head_conv", w[6], 1, 1, "relu"))


def nas_bench_macro() -> SearchSpace:
    layers = tuple(SearchableLayer(f"layer_{i}", NAS_BENCH_MACRO_OPTIONS, 1) for i in range(8))
    return SearchSpace(
        "nas_bench_macro", layers, 32, 10, _resolve_nas_bench_macro,
        description="NAS-Bench-Macro: 8 layers x {skip, MB k3 e3, MB k5 e6}, CIFAR-10", key_alphabet="012",
    )


def channel_bench_macro_mobilenet() -> SearchSpace:
    layers = tuple(
        SearchableLayer(
            f"width_{i}", tuple(Option(filters_multiplier=f) for f in CHANNEL_BENCH_FRACTIONS), len(CHANNEL_BENCH_FRACTIONS) - 1
        )
        for i in range(len(CHANNEL_BENCH_MAX_WIDTHS))
    )
    return SearchSpace(
        "channel_bench_macro_mobilenet", layers, 32, 10, _resolve_channel_bench,
        description="Channel-Bench-Macro MobileNet: 7 widths x {0.25, 0.5, 0.75, 1.0}, CIFAR-10", key_alphabet="1234",
    )
