"""Objectives beyond tables: a user's score function over a real search space, as a benchmark.

An objective is any importable object (named `MODULE:NAME`) with two methods:
- `mean(encoding, cost) -> float`: the score of a candidate (what a returned model is worth);
- `sample(encoding, cost, rng) -> float`: one noisy query, `rng` a `random.Random`.
`encoding` is a tuple of option indices of the search space, `cost` the candidate's analytic MAdds.
It may name its space with `search_space`, `input_size` and `num_classes` attributes.

`ObjectiveBenchmark` gives it the methods the harness asks of a table (`layernas_tf.search.harness`).
The optimum is unknown, so runs are compared by mean score, not regret. Pure Python.
"""

from __future__ import annotations

import importlib
import math
import random
import statistics
from typing import Dict, Optional, Sequence, Tuple

from layernas_tf.costs import cost_function
from layernas_tf.search.problem import Problem

REFERENCE_SAMPLES = 1000  # seeded random candidates for the time unit and the worst feasible score


class ObjectiveError(ValueError):
    """An objective cannot be imported or lacks the interface."""


def load_objective(spec: str):
    """The object named by `spec` ('MODULE:NAME'), checked for callable `mean` and `sample`.

    Raises:
      ObjectiveError: a malformed spec, a module or name that does not import, or a missing method.
    """
    module_name, sep, name = (spec or "").partition(":")
    if not sep or not module_name or not name:
        raise ObjectiveError(f"--objective={spec!r}: expected MODULE:NAME, e.g. "
                             "layernas_tf.benchmarks.surrogates:mobilenet_v3_large_224")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ObjectiveError(f"--objective={spec!r}: cannot import module {module_name!r} ({e})") from None
    objective = getattr(module, name, None)
    if objective is None:
        raise ObjectiveError(f"--objective={spec!r}: module {module_name!r} has no {name!r}")
    missing = [m for m in ("mean", "sample") if not callable(getattr(objective, m, None))]
    if missing:
        raise ObjectiveError(f"--objective={spec!r}: lacks {' and '.join(missing)}; an objective needs "
                             "mean(encoding, cost) and sample(encoding, cost, rng)")
    return objective


def madds_range(space, input_size: int, num_classes: int) -> Tuple[float, float]:
    """Analytic MAdds of the candidates with every layer at its cheapest and at its costliest option."""
    unbounded = Problem(space.num_options, cost_function(space, "madds", input_size, num_classes), math.inf,
                        default=space.default)
    return unbounded.cost_of(unbounded.cheapest), unbounded.cost_of(unbounded.costliest)


class ObjectiveBenchmark:
    """An objective over `space` at `input_size`/`num_classes`, costed by analytic MAdds.

    `--flops_fraction` targets are fractions of `max_cost`: the MAdds of the candidate with every
    layer at its costliest option. A run that returns nothing feasible scores the lowest mean among
    `REFERENCE_SAMPLES` seeded random feasible candidates; one unit of simulated time is the median
    cost of as many random candidates.
    """

    def __init__(self, objective, space, input_size: int, num_classes: int, name: str = ""):
        self.objective, self.space = objective, space
        self.input_size, self.num_classes = input_size, num_classes
        self.name = name or type(objective).__name__
        self.cost = cost_function(space, "madds", input_size, num_classes)
        self.max_cost = madds_range(space, input_size, num_classes)[1]
        self.attributes = space.option_attributes()
        self._references: Dict[Tuple[float, float], Tuple[float, float]] = {}

    def problem(self, flops_fraction: float) -> Problem:
        if not 0 < flops_fraction <= 1:
            raise ValueError(f"flops_fraction must be in (0, 1], got {flops_fraction}")
        return Problem(self.space.num_options, self.cost, flops_fraction * self.max_cost, default=self.space.default,
                       option_attributes=self.attributes,
                       deterministic=bool(getattr(self.objective, "deterministic", False)))

    def query(self, encoding: Sequence[int], rng: random.Random) -> float:
        encoding = tuple(encoding)
        return float(self.objective.sample(encoding, self.cost(encoding), rng))

    def mean_score(self, encoding: Sequence[int]) -> float:
        encoding = tuple(encoding)
        return float(self.objective.mean(encoding, self.cost(encoding)))

    def oracle(self, problem: Problem) -> Tuple[Optional[tuple], Optional[float]]:
        return None, None  # unknown

    def _reference(self, problem: Problem) -> Tuple[float, float]:
        key = (problem.min_cost, problem.max_cost)
        if key not in self._references:
            rng = random.Random(0)
            samples = [tuple(rng.randrange(n) for n in problem.num_options) for _ in range(REFERENCE_SAMPLES)]
            feasible = [e for e in samples if problem.feasible(e)] or [problem.cheapest]
            self._references[key] = (min(self.mean_score(e) for e in feasible),
                                     statistics.median(problem.cost_of(e) for e in samples))
        return self._references[key]

    def worst_score(self, problem: Problem) -> float:
        return self._reference(problem)[0]

    def unit_cost(self, problem: Problem) -> float:
        return self._reference(problem)[1]


def objective_benchmark(spec: str, search_space: str = "", input_size: int = 0,
                        num_classes: int = 0) -> ObjectiveBenchmark:
    """The benchmark of objective `spec` over `search_space` (default: the objective's own
    `search_space` attribute) at `input_size` and `num_classes` (0: the objective's, else the space's).

    Raises:
      ObjectiveError: the objective does not load, or no search space is named.
    """
    import searchspaces

    objective = load_objective(spec)
    name = search_space or getattr(objective, "search_space", "")
    if not name:
        raise ObjectiveError(f"--objective={spec!r} names no search space: pass --search_space "
                             f"(one of {', '.join(searchspaces.SPACE_NAMES)})")
    if name not in searchspaces.SPACE_NAMES:
        raise ObjectiveError(f"--search_space={name!r}; allowed: {', '.join(searchspaces.SPACE_NAMES)}")
    space = searchspaces.get_space(name)
    input_size = input_size or getattr(objective, "input_size", 0) or space.input_size
    num_classes = num_classes or getattr(objective, "num_classes", 0) or space.num_classes
    return ObjectiveBenchmark(objective, space, input_size, num_classes, name=spec)
