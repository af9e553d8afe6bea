"""Run searchers on a benchmark under the noisy-query protocol and score them.

A benchmark is a tabular NAS benchmark (`tables.Table`) or any object with the same five methods
(`benchmarks.objectives.ObjectiveBenchmark` wraps a user's objective): `query(encoding, rng)`,
`mean_score(encoding)`, `oracle(problem)` ((None, None) when the optimum is unknown),
`worst_score(problem)` and `unit_cost(problem)`.

Protocol: a query returns one noisy evaluation (a table: one randomly chosen seed's accuracy, a
simulated training run); a run is scored by the *mean* score of the architecture it returns
(`score`); where the optimum is known, regret is the best feasible mean score minus that score. A
run that returns no feasible architecture scores the benchmark's worst feasible score. Paired
noise: the k-th query of an encoding in run `seed` draws from a generator seeded by (seed,
encoding, k), so every algorithm sees the same noisy value for the same candidate in the same run,
and differences between algorithms are paired. Anytime searchers (whose behaviour does not depend on
the budget) run once to the largest budget and are scored after each smaller budget's number of
queries; the others run once per budget.

Parallel form (`parallel=N`): N simulated workers. A query takes simulated time proportional to the
candidate's cost (FLOPs), normalised so that the table's median model takes 1 unit; the searcher is
asked for as many candidates as workers are free, and results are told in completion order. A run's
`wall_units` at a budget is the simulated time when its last result came in. With N = 1 that is
exactly the sum of the queried candidates' normalised times.
Pure Python.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

from layernas_tf.search.problem import Problem


@dataclasses.dataclass
class RunResult:
    algorithm: str
    seed: int
    budget: int
    queries: int
    regret: Optional[float]  # None where the optimum is unknown
    encoding: tuple
    seconds: float = 0.0
    wall_units: float = 0.0
    score: float = 0.0  # mean score of the returned architecture


def query_noise(seed: int, encoding: Sequence[int], repeat: int) -> random.Random:
    """The generator of the `repeat`-th query of `encoding` in run `seed` (paired across algorithms)."""
    return random.Random(f"{seed}:{','.join(map(str, encoding))}:{repeat}")


def run_searcher(factory: Callable[[Problem, int, int], object], algorithm: str, table, problem: Problem,
                 budgets: Sequence[int], seed: int, parallel: int = 1) -> List[RunResult]:
    """One run (or one per budget, for budget-dependent searchers) of a searcher on benchmark `table`
    with query noise seeded by `seed`, on `parallel` simulated workers."""
    _, oracle = table.oracle(problem)
    worst = table.worst_score(problem)
    unit = table.unit_cost(problem)
    budgets = sorted(budgets)
    searcher = factory(problem, budgets[-1], seed)
    if getattr(searcher, "anytime", True):
        plans = [(searcher, budgets)]
    else:
        plans = [(factory(problem, b, seed), [b]) for b in budgets]
    results: List[RunResult] = []
    for searcher, checkpoints in plans:
        repeats: Dict[tuple, int] = {}
        pending = list(checkpoints)
        flying: list = []  # (finish time, hand-out number, encoding)
        clock, handed = 0.0, 0
        while pending and not searcher.done or (pending and flying):
            free = parallel - len(flying)
            asked = searcher.ask(free) if free > 0 and not searcher.done else []
            for encoding in asked:
                heapq.heappush(flying, (clock + problem.cost_of(encoding) / unit, handed, encoding))
                handed += 1
            if not flying:
                break
            clock, _, encoding = heapq.heappop(flying)
            repeat = repeats[encoding] = repeats.get(encoding, -1) + 1
            searcher.tell(encoding, table.query(encoding, query_noise(seed, encoding, repeat)))
            while pending and len(searcher.trials) >= pending[0]:
                results.append(_result(algorithm, seed, pending.pop(0), searcher, table, problem, oracle,
                                       worst, clock))
        for budget in pending:  # the searcher finished before using these budgets
            results.append(_result(algorithm, seed, budget, searcher, table, problem, oracle, worst, clock))
    return results


def _result(algorithm, seed, budget, searcher, table, problem, oracle, worst, clock=0.0) -> RunResult:
    best = searcher.best()  # once: LayerNAS's pick refits its model
    feasible = best is not None and problem.feasible(best.encoding)
    score = table.mean_score(best.encoding) if feasible else worst
    return RunResult(algorithm, seed, budget, len(searcher.trials), None if oracle is None else oracle - score,
                     best.encoding if best else (), wall_units=clock, score=score)


def _quartiles(values: List[float]) -> List[float]:
    values = sorted(values)
    return statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3


def summarize(results: Sequence[RunResult]) -> Dict[str, Dict[int, dict]]:
    """Per algorithm and budget: mean score and its standard error, mean regret and its 25/75%
    quantiles (None where the optimum is unknown), mean queries used, mean simulated time, runs."""
    grouped: Dict[str, Dict[int, List[RunResult]]] = {}
    for r in results:
        grouped.setdefault(r.algorithm, {}).setdefault(r.budget, []).append(r)
    summary: Dict[str, Dict[int, dict]] = {}
    for algorithm, by_budget in grouped.items():
        summary[algorithm] = {}
        for budget in sorted(by_budget):
            runs = by_budget[budget]
            scores = [r.score for r in runs]
            cell = {"mean_score": statistics.fmean(scores), "score_se": _standard_error(scores),
                    "mean_regret": None, "q25": None, "q75": None,
                    "mean_queries": statistics.fmean(r.queries for r in runs), "runs": len(runs),
                    "mean_wall_units": statistics.fmean(r.wall_units for r in runs)}
            if all(r.regret is not None for r in runs):
                regrets = [r.regret for r in runs]
                q = _quartiles(regrets)
                cell.update(mean_regret=statistics.fmean(regrets), q25=q[0], q75=q[2])
            else:  # the quartiles of the score instead
                q = _quartiles(scores)
                cell.update(q25=q[0], q75=q[2])
            summary[algorithm][budget] = cell
    return summary


def _standard_error(values: Sequence[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def paired_differences(results: Sequence[RunResult], reference: str) -> Dict[str, Dict[int, dict]]:
    """Per algorithm and budget, the paired difference of mean score from `reference`'s (other minus
    reference, over the seeds both ran: the same query noise) with its standard error."""
    by_key = {(r.algorithm, r.budget, r.seed): r.score for r in results}
    out: Dict[str, Dict[int, dict]] = {}
    for algorithm in sorted({r.algorithm for r in results} - {reference}):
        out[algorithm] = {}
        for budget in sorted({r.budget for r in results if r.algorithm == algorithm}):
            diffs = [by_key[(algorithm, budget, s)] - by_key[(reference, budget, s)]
                     for (a, b, s) in by_key if a == algorithm and b == budget and (reference, budget, s) in by_key]
            if diffs:
                out[algorithm][budget] = paired_cell(diffs)
    return out


def paired_cell(diffs: Sequence[float]) -> dict:
    """Mean of per-seed score differences, its standard error and the number of seeds."""
    return {"score_diff": statistics.fmean(diffs), "se": _standard_error(diffs), "runs": len(diffs)}


def own_time(searcher, benchmark, seed: int, batch: int) -> float:
    """Seconds `searcher` spends in ask, tell and best over one run."""
    spent, repeats = 0.0, {}
    while not searcher.done:
        start = time.perf_counter()
        asked = searcher.ask(batch)
        spent += time.perf_counter() - start
        if not asked:
            break
        values = []
        for encoding in asked:
            repeats[encoding] = repeats.get(encoding, -1) + 1
            values.append(benchmark.query(encoding, query_noise(seed, encoding, repeats[encoding])))
        start = time.perf_counter()
        for encoding, value in zip(asked, values):
            searcher.tell(encoding, value)
        searcher.best()
        spent += time.perf_counter() - start
    return spent
