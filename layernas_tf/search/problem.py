"""A search problem as plain data: options per layer, a cost function and a cost target.

Pure Python: no TensorFlow. Costs are free to query (analytic MAdds/params, a table's FLOPs, a latency
predictor); rewards are what a search spends its budget on.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Optional, Sequence, Tuple

Encoding = Tuple[int, ...]


class InfeasibleTargetError(ValueError):
    """No candidate of the space meets the cost target."""


@dataclasses.dataclass
class Problem:
    """Layerwise search problem.

    Attributes:
      num_options: options per searchable layer (|S_i|).
      cost: encoding -> cost (float); assumed not to decrease when one layer takes a costlier option,
        which holds for MAdds, params and latency of the spaces here.
      max_cost: upper bound of the cost target (inclusive).
      min_cost: optional lower bound of the target (inclusive); 0 for none.
      default: the default candidate (the published network, or any anchor); defaults to all zeros.
      option_attributes: optional, per layer, per option, the option's (attribute, value) pairs, e.g.
        (("width", 1.25), ("kernel", 5), ("se", True)): plain data that lets LayerNAS search a layer's
        attributes as successive steps. None: options are opaque.
      deterministic: evaluations are exact: the same network always gets the same reward (a lookup
        table with one accuracy per network, a closed-form proxy). A searcher then has no noise to
        average, and may trust each reward as it is. Training runs are not deterministic.

    `pairwise_cost` is True when `cost` says (attribute `pairwise`) that it is a sum of terms that
    each depend on one layer's option and its predecessor's, as the MobileNet spaces' analytic costs
    and latency tables are: moves on layers two or more apart then change the cost by the sum of
    their own changes, which lets LayerNAS's refinement skip neighbours that cannot meet the target.
    """

    num_options: Tuple[int, ...]
    cost: Callable[[Encoding], float]
    max_cost: float
    min_cost: float = 0.0
    default: Optional[Encoding] = None
    option_attributes: Optional[Tuple[Tuple[Tuple[Tuple[str, object], ...], ...], ...]] = None
    deterministic: bool = False

    def __post_init__(self):
        self.num_options = tuple(int(n) for n in self.num_options)
        if not self.num_options or any(n < 1 for n in self.num_options):
            raise ValueError(f"num_options must be a non-empty list of positive counts, got {self.num_options}")
        if self.option_attributes is not None:
            self.option_attributes = tuple(tuple(tuple((str(k), v) for k, v in option) for option in layer)
                                           for layer in self.option_attributes)
            shape = tuple(len(layer) for layer in self.option_attributes)
            if shape != self.num_options:
                raise ValueError(f"option_attributes has {shape} options per layer, num_options {self.num_options}")
            for i, layer in enumerate(self.option_attributes):
                names = {tuple(k for k, _ in option) for option in layer}
                if len(names) > 1 or (names != {()} and len(set(layer)) != len(layer)):  # () for all: opaque
                    raise ValueError(f"option_attributes of layer {i}: every option needs the same attribute "
                                     f"names and distinct values, got {layer}")
        self.default = tuple(self.default) if self.default is not None else (0,) * len(self.num_options)
        if len(self.default) != len(self.num_options):
            raise ValueError(f"default has {len(self.default)} layers, num_options has {len(self.num_options)}")
        if self.min_cost > self.max_cost:
            raise ValueError(f"target lower bound {self.min_cost:g} is above the upper bound {self.max_cost:g}")
        self._cost_cache = {}
        self.pairwise_cost = bool(getattr(self.cost, "pairwise", False))
        # The cheapest and costliest option of each layer, found around the default.
        self.cheapest = tuple(self._extreme_option(i, min) for i in range(self.num_layers))
        self.costliest = tuple(self._extreme_option(i, max) for i in range(self.num_layers))
        smallest = self.cost_of(self.cheapest)
        if smallest > self.max_cost:
            raise InfeasibleTargetError(
                f"cost target <= {self.max_cost:g} is impossible: the smallest achievable cost is {smallest:g}"
            )
        largest = self.cost_of(self.costliest)
        if largest < self.min_cost:
            raise InfeasibleTargetError(
                f"cost target >= {self.min_cost:g} is impossible: the largest achievable cost is {largest:g}"
            )

    @property
    def num_layers(self) -> int:
        return len(self.num_options)

    def cost_of(self, encoding: Sequence[int]) -> float:
        encoding = tuple(encoding)
        value = self._cost_cache.get(encoding)
        if value is None:
            value = self._cost_cache[encoding] = float(self.cost(encoding))
        return value

    def _extreme_option(self, layer: int, pick) -> int:
        base = list(self.default)

        def cost_with(option):
            base[layer] = option
            return self.cost_of(base)

        return pick(range(self.num_options[layer]), key=lambda o: (cost_with(o), o))

    def attribute_names(self, layer: int) -> Tuple[str, ...]:
        """The attributes of `layer`'s options (empty without option_attributes)."""
        if self.option_attributes is None or not self.option_attributes[layer]:
            return ()
        return tuple(k for k, _ in self.option_attributes[layer][0])

    def same_except(self, layer: int, option: int, other: int, attributes: Iterable[str]) -> bool:
        """True if options `option` and `other` of `layer` agree on every attribute not in `attributes`."""
        skip = set(attributes)
        a, b = self.option_attributes[layer][option], self.option_attributes[layer][other]
        return all(x == y for x, y in zip(a, b) if x[0] not in skip)

    def feasible(self, encoding: Sequence[int]) -> bool:
        """True if `encoding` meets the cost target."""
        return self.min_cost <= self.cost_of(encoding) <= self.max_cost

    def filled(self, encoding: Sequence[int], free: Iterable[int], options: Sequence[int]) -> Encoding:
        """`encoding` with each `free` layer set to its entry in `options`."""
        filled = list(encoding)
        for layer in free:
            filled[layer] = options[layer]
        return tuple(filled)

    def committed_cost(self, encoding: Sequence[int], free: Iterable[int]) -> float:
        """Cost with the `free` layers at their cheapest options: what the other layers already spend."""
        return self.cost_of(self.filled(encoding, free, self.cheapest))

    def completable(self, encoding: Sequence[int], free: Iterable[int]) -> bool:
        """True if the `free` layers can still be set so the candidate meets the target."""
        free = tuple(free)
        if self.committed_cost(encoding, free) > self.max_cost:
            return False
        if self.min_cost > 0:
            return self.cost_of(self.filled(encoding, free, self.costliest)) >= self.min_cost
        return True

    def validate(self, encoding: Sequence[int]) -> Encoding:
        encoding = tuple(encoding)
        if len(encoding) != self.num_layers or any(not 0 <= o < n for o, n in zip(encoding, self.num_options)):
            raise ValueError(f"encoding {encoding} does not fit num_options {self.num_options}")
        return encoding
