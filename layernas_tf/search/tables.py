"""Tabular NAS benchmarks: every architecture's trained accuracies, looked up instead of trained.

Reads JSON tables keyed by architecture strings (one character per searchable layer), in either of
the two formats of NAS-Bench-Macro (`test_acc`, `mean_acc`, `flops`, `params`) and Channel-Bench-Macro
(`acc`, `mean`, `flops`, `params`); the format is detected from the fields. Pure Python.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import pathlib
import random
import statistics
from typing import Dict, List, Sequence, Tuple

from layernas_tf.search.problem import Encoding, Problem

# field names of each format: (per-seed accuracies, mean accuracy)
FORMATS = {"nas_bench_macro": ("test_acc", "mean_acc"), "channel_bench_macro": ("acc", "mean")}


class TableError(ValueError):
    """A benchmark table is missing, empty or malformed."""


@dataclasses.dataclass
class Table:
    """A loaded table: per-layer alphabets, and per encoding its seed accuracies, mean and FLOPs."""

    path: str
    format: str
    alphabets: Tuple[str, ...]  # characters of each position, sorted: option i is alphabets[layer][i]
    seed_accuracies: Dict[Encoding, Tuple[float, ...]]
    mean_accuracy: Dict[Encoding, float]
    flops: Dict[Encoding, float]

    @property
    def num_options(self) -> Tuple[int, ...]:
        return tuple(len(a) for a in self.alphabets)

    @property
    def max_flops(self) -> float:
        return max(self.flops.values())

    def key(self, encoding: Encoding) -> str:
        return "".join(alphabet[i] for alphabet, i in zip(self.alphabets, encoding))

    def problem(self, flops_fraction: float, min_fraction: float = 0.0) -> Problem:
        """A search problem over this table with target FLOPs <= flops_fraction * max FLOPs; deterministic
        when the table holds one accuracy per architecture (every query returns it)."""
        if not 0 < flops_fraction <= 1:
            raise ValueError(f"flops_fraction must be in (0, 1], got {flops_fraction}")
        default = tuple(len(a) // 2 for a in self.alphabets)
        return Problem(self.num_options, self.flops.__getitem__, flops_fraction * self.max_flops,
                       min_fraction * self.max_flops, default=default,
                       deterministic=seeds_per_architecture(self) == 1)

    def oracle(self, problem: Problem) -> Tuple[Encoding, float]:
        """The feasible encoding with the best mean accuracy."""
        feasible = [e for e in self.mean_accuracy if problem.feasible(e)]
        best = max(feasible, key=lambda e: (self.mean_accuracy[e], e))
        return best, self.mean_accuracy[best]

    def query(self, encoding: Encoding, rng: random.Random) -> float:
        """One noisy evaluation: a randomly chosen seed's accuracy."""
        return rng.choice(self.seed_accuracies[encoding])

    def mean_score(self, encoding: Encoding) -> float:
        """What a returned architecture is worth: its mean accuracy over seeds."""
        return self.mean_accuracy[encoding]

    def worst_score(self, problem: Problem) -> float:
        """The score of a run that returns nothing feasible: the worst feasible mean accuracy."""
        return min(a for e, a in self.mean_accuracy.items() if problem.feasible(e))

    def unit_cost(self, problem: Problem) -> float:
        """One unit of simulated time: the median cost of the table's models."""
        return statistics.median(problem.cost_of(e) for e in self.mean_accuracy)


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TableError(f"{where}: expected a number, got {value!r}")
    return float(value)


def load_table(path: str) -> Table:
    """Load a benchmark table from `path`, detecting its format.

    Raises:
      TableError: the file is missing, not JSON, empty, has keys of unequal length, lacks a field, or
        does not cover every combination of the characters it uses.
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise TableError(f"benchmark table not found: {path}")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise TableError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not data:
        raise TableError(f"{path}: expected a non-empty JSON object mapping architecture keys to records")
    first = next(iter(data.values()))
    if not isinstance(first, dict):
        raise TableError(f"{path}: records must be objects, got {type(first).__name__}")
    fmt = next((name for name, (seeds, mean) in FORMATS.items() if seeds in first and mean in first), None)
    if fmt is None:
        allowed = "; ".join(f"{name}: {seeds!r} and {mean!r}" for name, (seeds, mean) in FORMATS.items())
        raise TableError(f"{path}: unknown table format, records need accuracy fields ({allowed}) and 'flops'")
    seeds_field, mean_field = FORMATS[fmt]
    length = len(next(iter(data)))
    if length == 0 or any(len(k) != length for k in data):
        raise TableError(f"{path}: architecture keys must all have the same non-zero length")
    alphabets = tuple("".join(sorted({k[i] for k in data})) for i in range(length))
    seed_acc, mean_acc, flops = {}, {}, {}
    for key, record in data.items():
        where = f"{path}: record {key!r}"
        for field in (seeds_field, mean_field, "flops"):
            if not isinstance(record, dict) or field not in record:
                raise TableError(f"{where} lacks field {field!r}")
        seeds = record[seeds_field]
        if not isinstance(seeds, list) or not seeds:
            raise TableError(f"{where}: field {seeds_field!r} must be a non-empty list of accuracies")
        encoding = tuple(alphabet.index(c) for alphabet, c in zip(alphabets, key))
        seed_acc[encoding] = tuple(_number(a, f"{where} field {seeds_field!r}") for a in seeds)
        mean_acc[encoding] = _number(record[mean_field], f"{where} field {mean_field!r}")
        flops[encoding] = _number(record["flops"], f"{where} field 'flops'")
    expected = 1
    for a in alphabets:
        expected *= len(a)
    if len(data) != expected:
        raise TableError(f"{path}: {len(data)} records, but the per-layer characters {alphabets} make {expected} "
                         "architectures; a table must cover its whole space")
    return Table(str(file), fmt, alphabets, seed_acc, mean_acc, flops)


def noise_level(table: Table) -> float:
    """Median standard deviation across seeds: the noise of one query (0.0 for a table that holds one
    accuracy per architecture, whose queries all return that value)."""
    spreads = [statistics.pstdev(v) for v in table.seed_accuracies.values() if len(v) > 1]
    return statistics.median(spreads) if spreads else 0.0


def seeds_per_architecture(table: Table) -> int:
    """The most accuracies any architecture holds (1: a noise-free table)."""
    return max(len(v) for v in table.seed_accuracies.values())


def describe(table: Table) -> List[str]:
    seeds = seeds_per_architecture(table)
    noise = ("1 seed, no query noise" if seeds == 1
             else f"{seeds} seeds, noise (median seed std) {noise_level(table):.3f}")
    return [f"{table.path}: {table.format}, {len(table.mean_accuracy)} architectures, "
            f"{len(table.alphabets)} layers x {table.num_options} options, {noise}"]


def synthetic_records(num_layers: int = 6, num_options: int = 4, seed: int = 0, fmt: str = "channel_bench_macro",
                      noise: float = 0.2, seeds: int = 3) -> Dict[str, dict]:
    """A table of the given format for a made-up width search, for testing searchers on unseen tables.

    Layer i picks a width w_i = option + 1. FLOPs sum products of adjacent widths (as in a conv
    stack), so cost is not additive. Mean accuracy saturates in a weighted capacity with a penalty
    for bottlenecks (a layer much narrower than its input), so rewards interact across layers; the
    per-layer weights, saturation and bottleneck strength are drawn from `seed`. Each record holds
    `seeds` accuracies with Gaussian noise of `noise` points.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    rng = random.Random(seed)
    weights = [rng.uniform(0.3, 1.5) for _ in range(num_layers)]
    scale = rng.uniform(0.15, 0.35) * num_layers / sum(weights)
    bottleneck = rng.uniform(0.3, 1.0)
    costs = [rng.uniform(0.5, 2.0) for _ in range(num_layers)]
    seeds_field, mean_field = FORMATS[fmt]
    records = {}
    for key in itertools.product(range(num_options), repeat=num_layers):
        widths = [k + 1 for k in key]
        inputs = [2] + widths[:-1]
        flops = 1e6 * sum(c * a * b for c, a, b in zip(costs, inputs, widths))
        capacity = sum(w * math.log(width) for w, width in zip(weights, widths))
        squeeze = sum(max(0.0, math.log(a / b)) for a, b in zip(widths[:-1], widths[1:]))
        mean = 94.0 - 12.0 * math.exp(-scale * capacity) - bottleneck * squeeze
        accs = [round(mean + rng.gauss(0.0, noise), 4) for _ in range(seeds)]
        records["".join(str(k) for k in key)] = {
            seeds_field: accs, mean_field: statistics.fmean(accs), "flops": flops, "params": flops / 100.0}
    return records


def reordered_records(table: Table, order: Sequence[int]) -> Dict[str, dict]:
    """The records of `table` with its layer positions permuted (`order[i]` = old position of new i).

    The same accuracies under another layer order: a layerwise searcher sees a different problem.
    """
    if sorted(order) != list(range(len(table.alphabets))):
        raise ValueError(f"order must be a permutation of 0..{len(table.alphabets) - 1}, got {list(order)}")
    seeds_field, mean_field = FORMATS[table.format]
    records = {}
    for encoding, accs in table.seed_accuracies.items():
        key = table.key(encoding)
        records["".join(key[i] for i in order)] = {
            seeds_field: list(accs), mean_field: table.mean_accuracy[encoding], "flops": table.flops[encoding]}
    return records
