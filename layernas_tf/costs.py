"""Analytic cost model: multiply-adds and trainable parameters of a candidate, without TensorFlow.

MAdds count the multiply-adds of convolutions, depthwise convolutions and dense layers, as the
MobileNet papers do (no biases, batch norms, activations, pooling or additions). Params count
trainable weights: conv kernels, biases, and batch-norm gamma and beta (moving statistics are not
trainable). Both match what `searchspaces.builder` builds, exactly.
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Callable, List, Optional, Sequence, Tuple

from searchspaces.space import Architecture, SearchSpace

COST_METRICS = ("madds", "params")


@dataclasses.dataclass(frozen=True)
class Costs:
    madds: int
    params: int


def _out_size(size: int, strides: int) -> int:
    # 'same' padding: ceil(size / strides).
    return -(-size // strides)


def part_costs(arch: Architecture) -> List[Costs]:
    """MAdds and trainable params of each part: the stem, every block (identity: 0), the head."""
    size = _out_size(arch.input_size, arch.stem.strides)
    stem = arch.stem
    parts = [Costs(size * size * stem.kernel_size * stem.kernel_size * 3 * stem.filters,
                   stem.kernel_size * stem.kernel_size * 3 * stem.filters + 2 * stem.filters)]
    channels = stem.filters
    for block in arch.blocks:
        if block.kind == "identity":
            parts.append(Costs(0, 0))
            continue
        in_area = size * size
        size = _out_size(size, block.strides)
        area = size * size
        madds = params = 0
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
        parts.append(Costs(madds, params))
        channels = block.out_filters
    madds = params = 0
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
    parts.append(Costs(madds, params))
    return parts


def architecture_costs(arch: Architecture) -> Costs:
    """MAdds and trainable params of a resolved architecture."""
    parts = part_costs(arch)
    return Costs(madds=sum(p.madds for p in parts), params=sum(p.params for p in parts))


class PairwiseTerms:
    """A cost written as a sum of per-layer terms that each depend on one layer's option and its
    predecessor's: cost = T_0[o_0] + sum_i T_i[o_{i-1}][o_i] (stem folded into T_0, head into the last).

    MobileNet blocks have this shape (a block's shapes follow from its option and the channels the
    previous block outputs), so a cost is L list lookups instead of a resolution: ~20x faster, which
    is what the searcher's feasibility checks over thousands of neighbours need.
    """

    def __init__(self, first: List[float], pairs: List[List[List[float]]]):
        self.first, self.pairs = first, pairs

    def __call__(self, encoding: Sequence[int]) -> float:
        total = self.first[encoding[0]]
        previous = encoding[0]
        for terms, option in zip(self.pairs, encoding[1:]):
            total += terms[previous][option]
            previous = option
        return total


def pairwise_terms(space: SearchSpace, input_size: int, num_classes: int,
                   values: Callable[[Architecture], Sequence[float]], exact=None,
                   checks: int = 64) -> Optional[PairwiseTerms]:
    """`PairwiseTerms` for the cost `exact(encoding)`, whose per-part values `values(arch)` are
    (stem, one per layer, head); None when the space does not decompose that way (blocks not one per
    layer, or a check on `checks` random candidates finds a difference from `exact`)."""

    n = space.num_options
    default = list(space.default)

    def resolved(encoding):
        return space.resolve_unchecked(tuple(encoding), input_size, num_classes)

    first_parts = values(resolved(default))
    if len(first_parts) != space.num_layers + 2 or space.num_layers < 1:
        return None
    last = space.num_layers - 1
    first, pairs = [], []
    for o in range(n[0]):
        encoding = list(default)
        encoding[0] = o
        parts = values(resolved(encoding))
        first.append(parts[0] + parts[1] + (parts[-1] if last == 0 else 0))
    for i in range(1, space.num_layers):
        table = []
        for a in range(n[i - 1]):
            row = []
            for b in range(n[i]):
                encoding = list(default)
                encoding[i - 1], encoding[i] = a, b
                parts = values(resolved(encoding))
                row.append(parts[i + 1] + (parts[-1] if i == last else 0))
            table.append(row)
        pairs.append(table)
    terms = PairwiseTerms(first, pairs)
    rng = random.Random(0)
    for _ in range(checks):
        encoding = space.random(rng)
        want = exact(encoding)
        if abs(terms(encoding) - want) > 1e-9 * max(1.0, abs(want)):
            return None
    return terms


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
    terms: Optional[PairwiseTerms] = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "terms", pairwise_terms(
            self.space, self.input_size, self.num_classes,
            lambda arch: [getattr(c, self.metric) for c in part_costs(arch)], self.exact))

    @property
    def pairwise(self) -> bool:
        """True when the cost is a sum of per-layer terms on a layer's and its predecessor's options."""
        return self.terms is not None

    def exact(self, encoding: Tuple[int, ...]) -> int:
        """The cost from the resolved architecture (what `__call__` returns, more slowly)."""
        arch = self.space.resolve_unchecked(tuple(encoding), self.input_size, self.num_classes)
        return getattr(architecture_costs(arch), self.metric)

    def __call__(self, encoding: Tuple[int, ...]) -> int:
        if self.terms is not None:
            return self.terms(encoding)
        return self.exact(encoding)


def cost_function(space: SearchSpace, metric: str, input_size: int = 0, num_classes: int = 0) -> CostFunction:
    """A fast `encoding tuple -> cost` callable for the searcher (encodings assumed valid).

    Raises:
      ValueError: `metric` is not one of COST_METRICS.
    """
    if metric not in COST_METRICS:
        raise ValueError(f"unknown cost metric {metric!r}; allowed: {', '.join(COST_METRICS)}")
    return CostFunction(space, metric, input_size or space.input_size, num_classes or space.num_classes)


def profile_random(space, num: int, seed: int, input_size: int, num_classes: int) -> dict:
    """Analytic costs of `num` random candidates; returns throughput and cost ranges."""
    rng = random.Random(seed)
    encodings = [space.random(rng) for _ in range(num)]
    madds_of = cost_function(space, "madds", input_size, num_classes)
    start = time.perf_counter()
    madds = [madds_of(e) for e in encodings]
    elapsed = time.perf_counter() - start
    return {
        "search_space": space.name,
        "candidates": num,
        "seconds": elapsed,
        "candidates_per_second": num / elapsed if elapsed > 0 else float("inf"),
        "madds_min": min(madds),
        "madds_max": max(madds),
    }
