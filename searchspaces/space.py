"""The search-space model: searchable layers with options, encodings, resolved architectures.

Pure Python on purpose: the searcher and the analytic cost model use it without TensorFlow.
A search space is a block table (the published network) plus, for each searchable row, a list of
options. An encoding picks one option per searchable layer; `SearchSpace.resolve` turns it into an
`Architecture`, the concrete list of convolutions that both the Keras builder and the cost model read.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Callable, Optional, Sequence, Tuple

Encoding = Tuple[int, ...]


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round channels to a multiple of `divisor`, never below 90% of `value` (MobileNet rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


# ---------------------------------------------------------------------------------------------
# Resolved architecture: what a candidate concretely is.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A plain convolution + batch norm + activation (stem, head, projection shortcut)."""

    name: str
    filters: int
    kernel_size: int = 1
    strides: int = 1
    activation: Optional[str] = "relu"  # None: linear (BN only)


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """One inverted-residual (MBConv) block, or an identity/projection, with concrete channels.

    kind: 'mbconv' (expand 1x1 -> depthwise kxk -> [SE] -> project 1x1), 'identity' (no-op) or
    'projection' (1x1 conv + BN; used where an identity must change stride or channels).
    expanded_filters == 0 means no expansion conv (MobileNet's first block): the depthwise conv
    then runs on the input channels.
    """

    name: str
    kind: str
    in_filters: int
    out_filters: int
    expanded_filters: int = 0
    kernel_size: int = 3
    strides: int = 1
    se_filters: int = 0  # squeeze channels of the SE block; 0 = no SE
    activation: str = "relu6"

    @property
    def mid_filters(self) -> int:
        """Channels of the depthwise conv."""
        return self.expanded_filters or self.in_filters

    @property
    def residual(self) -> bool:
        return self.kind == "mbconv" and self.strides == 1 and self.in_filters == self.out_filters


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A fully resolved network: stem conv, blocks, head."""

    input_size: int
    num_classes: int
    stem: ConvSpec
    blocks: Tuple[BlockConfig, ...]
    head_conv: Optional[ConvSpec]  # 1x1 conv + BN + act before pooling
    head_point_filters: int = 0  # V3: 1x1 conv with bias + act after pooling; 0 = none
    head_point_activation: str = "hard_swish"
    dropout_rate: float = 0.0


# ---------------------------------------------------------------------------------------------
# Search space: layers, options, encodings.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Option:
    """One choice for a searchable layer. Fields left as None keep the published value."""

    filters_multiplier: float = 1.0
    kernel_size: Optional[int] = None
    expand_ratio: Optional[float] = None
    se: Optional[bool] = None
    kind: Optional[str] = None

    @property
    def label(self) -> str:
        """Short readable form, e.g. 'c1.25_k5_e6_se'."""
        if self.kind == "identity":
            return "skip"
        parts = [f"c{self.filters_multiplier:g}"]
        if self.kernel_size is not None:
            parts.append(f"k{self.kernel_size}")
        if self.expand_ratio is not None:
            parts.append(f"e{self.expand_ratio:g}")
        if self.se is not None:
            parts.append("se" if self.se else "nose")
        return "_".join(parts)


@dataclasses.dataclass(frozen=True)
class SearchableLayer:
    name: str
    options: Tuple[Option, ...]
    default: int

    def __post_init__(self):
        if not 0 <= self.default < len(self.options):
            raise ValueError(f"layer {self.name}: default {self.default} outside 0..{len(self.options) - 1}")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """An ordered list of searchable layers plus the fixed parts, resolved by `resolver`.

    key_alphabet: when set, the string form of an encoding is one character per layer taken from
    this alphabet (used by the tabular-benchmark spaces, whose table keys look like '01220112').
    Otherwise the string form is dash-joined option indices, e.g. '3-0-1-2'.
    """

    name: str
    layers: Tuple[SearchableLayer, ...]
    input_size: int
    num_classes: int
    resolver: Callable[["SearchSpace", Encoding, int, int], Architecture] = dataclasses.field(repr=False)
    description: str = ""
    key_alphabet: Optional[str] = None

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_options(self) -> Tuple[int, ...]:
        return tuple(len(layer.options) for layer in self.layers)

    @property
    def num_candidates(self) -> int:
        total = 1
        for n in self.num_options:
            total *= n
        return total

    @property
    def default(self) -> Encoding:
        return tuple(layer.default for layer in self.layers)

    def option_attributes(self) -> Tuple[Tuple[Tuple[Tuple[str, object], ...], ...], ...]:
        """Per layer, per option: the (attribute, value) pairs that vary among the layer's options, in
        the order width, kernel, expansion, squeeze-excite. Plain data for the searcher, which may
        search a layer's attributes as successive steps. A layer whose options are not every
        combination of its attributes' values (e.g. one with a skip option) gets no attributes: its
        options are searched as one step."""
        fields = (("width", "filters_multiplier"), ("kernel", "kernel_size"), ("expansion", "expand_ratio"),
                  ("se", "se"), ("kind", "kind"))
        out = []
        for layer in self.layers:
            varying = [(name, field) for name, field in fields
                       if len({getattr(o, field) for o in layer.options}) > 1]
            pairs = [tuple((name, getattr(o, field)) for name, field in varying) for o in layer.options]
            combinations = 1
            for _, field in varying:
                combinations *= len({getattr(o, field) for o in layer.options})
            if any(field == "kind" for _, field in varying) or combinations != len(set(pairs)):
                pairs = [()] * len(layer.options)
            out.append(tuple(pairs))
        return tuple(out)

    def validate(self, encoding: Sequence[int]) -> Encoding:
        """Return `encoding` as a tuple of ints; raise ValueError naming the bad layer."""
        if isinstance(encoding, str):
            return self.parse(encoding)
        encoding = tuple(encoding)
        if len(encoding) != self.num_layers:
            raise ValueError(
                f"encoding for search space '{self.name}' must have {self.num_layers} layers, got {len(encoding)}: {encoding}"
            )
        for i, (index, layer) in enumerate(zip(encoding, self.layers)):
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(layer.options):
                raise ValueError(
                    f"search space '{self.name}', layer {i} ({layer.name}): option {index!r} is out of range; "
                    f"allowed 0..{len(layer.options) - 1}"
                )
        return encoding

    def to_string(self, encoding: Sequence[int]) -> str:
        encoding = self.validate(encoding)
        if self.key_alphabet:
            return "".join(self.key_alphabet[i] for i in encoding)
        return "-".join(str(i) for i in encoding)

    def parse(self, text: str) -> Encoding:
        """Parse the string form of an encoding ('default' is accepted too)."""
        text = text.strip()
        if text == "default":
            return self.default
        if self.key_alphabet:
            bad = [c for c in text if c not in self.key_alphabet]
            if bad or not text:
                raise ValueError(
                    f"malformed encoding {text!r} for search space '{self.name}': expected {self.num_layers} "
                    f"characters from '{self.key_alphabet}'"
                )
            return self.validate([self.key_alphabet.index(c) for c in text])
        if not re.fullmatch(r"\d+(-\d+)*", text):
            raise ValueError(
                f"malformed encoding {text!r} for search space '{self.name}': expected {self.num_layers} "
                "dash-separated option indices, e.g. " + "-".join(str(d) for d in self.default)
            )
        return self.validate([int(part) for part in text.split("-")])

    def describe(self, encoding: Sequence[int]) -> str:
        """Readable per-layer labels, e.g. 'block_1:c1_k5_e6 block_2:...'."""
        encoding = self.validate(encoding)
        return " ".join(f"{layer.name}:{layer.options[i].label}" for layer, i in zip(self.layers, encoding))

    def random(self, rng: random.Random) -> Encoding:
        return tuple(rng.randrange(n) for n in self.num_options)

    def resolve(self, encoding: Sequence[int], input_size: Optional[int] = None, num_classes: Optional[int] = None) -> Architecture:
        """The concrete architecture of a candidate (validated)."""
        encoding = self.validate(encoding)
        return self.resolver(self, encoding, input_size or self.input_size, num_classes or self.num_classes)

    def resolve_unchecked(self, encoding: Encoding, input_size: int, num_classes: int) -> Architecture:
        """`resolve` without validation, for hot loops over encodings already known to be valid."""
        return self.resolver(self, encoding, input_size, num_classes)


def without_duplicate_options(space: SearchSpace) -> SearchSpace:
    """`space` with every option that builds the same network as a sibling option removed.

    Width multipliers can round to the same channel count (0.75x and 1.0x of a 16-channel block are
    both 16 channels under the MobileNet rounding rule), so two encodings would name one network and a
    search would train it twice. Two options of a layer are duplicates when substituting either one
    gives the same resolved architecture with the other layers at their default, at option 0 and at
    their last option. Of each group of duplicates the layer keeps the default, else the option closest
    to the default (fewest differing fields), else the first.
    """
    contexts = [list(space.default), [0] * space.num_layers, [n - 1 for n in space.num_options]]
    layers = []
    for i, layer in enumerate(space.layers):
        def signature(option: int):
            archs = []
            for context in contexts:
                encoding = list(context)
                encoding[i] = option
                archs.append(space.resolve_unchecked(tuple(encoding), space.input_size, space.num_classes))
            return tuple(archs)

        groups: dict = {}
        for option in range(len(layer.options)):
            groups.setdefault(signature(option), []).append(option)
        default_option = layer.options[layer.default]

        def distance(option: int):
            fields = dataclasses.astuple(layer.options[option])
            return (option != layer.default,
                    sum(a != b for a, b in zip(fields, dataclasses.astuple(default_option))), option)

        keep = sorted(min(group, key=distance) for group in groups.values())
        options = tuple(layer.options[o] for o in keep)
        layers.append(SearchableLayer(layer.name, options, options.index(default_option)))
    return dataclasses.replace(space, layers=tuple(layers))
