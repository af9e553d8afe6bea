"""Run searchers on a tabular benchmark under the noisy-query protocol and score them.

Protocol: a query returns one randomly chosen seed's accuracy (a simulated noisy training run); a run
is scored by the *mean* accuracy of the architecture it returns; regret is the best feasible mean
accuracy minus that score. A run that returns no feasible architecture scores the worst feasible mean
accuracy. Anytime searchers (whose behaviour does not depend on the budget) run once to the largest
budget and are scored after each smaller budget's number of queries; the others run once per budget.

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
import random
import statistics
from typing import Callable, Dict, List, Sequence

from layernas_tf.search.problem import Problem
from layernas_tf.search.tables import Table


@dataclasses.dataclass
class RunResult:
    algorithm: str
    seed: int
    budget: int
    queries: int
    regret: float
    encoding: tuple
    seconds: float = 0.0
    wall_units: float = 0.0


def _regret(table: Table, problem: Problem, best, oracle_acc: float, worst_acc: float) -> float:
    if best is None or not problem.feasible(best.encoding):
        return oracle_acc - worst_acc
    return oracle_acc - table.mean_accuracy[best.encoding]


def median_cost(table: Table, problem: Problem) -> float:
    """The median cost of the table's models: one unit of simulated time."""
    return statistics.median(problem.cost_of(e) for e in table.mean_accuracy)


def run_searcher(factory: Callable[[Problem, int, int], object], algorithm: str, table: Table, problem: Problem,
                 budgets: Sequence[int], seed: int, parallel: int = 1) -> List[RunResult]:
    """One run (or one per budget, for budget-dependent searchers) with query noise seeded by `seed`,
    on `parallel` simulated workers."""
    _, oracle_acc = table.oracle(problem)
    worst_acc = min(a for e, a in table.mean_accuracy.items() if problem.feasible(e))
    unit = median_cost(table, problem)
    budgets = sorted(budgets)
    searcher = factory(problem, budgets[-1], seed)
    if getattr(searcher, "anytime", True):
        plans = [(searcher, budgets)]
    else:
        plans = [(factory(problem, b, seed), [b]) for b in budgets]
    results: List[RunResult] = []
    for searcher, checkpoints in plans:
        noise = random.Random(seed * 7919 + 17)
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
            searcher.tell(encoding, table.query(encoding, noise))
            while pending and len(searcher.trials) >= pending[0]:
                results.append(_result(algorithm, seed, pending.pop(0), searcher, table, problem, oracle_acc,
                                       worst_acc, clock))
        for budget in pending:  # the searcher finished before using these budgets
            results.append(_result(algorithm, seed, budget, searcher, table, problem, oracle_acc, worst_acc, clock))
    return results


def _result(algorithm, seed, budget, searcher, table, problem, oracle_acc, worst_acc, clock=0.0) -> RunResult:
    best = searcher.best()  # once: LayerNAS's pick refits its model
    return RunResult(algorithm, seed, budget, len(searcher.trials),
                     _regret(table, problem, best, oracle_acc, worst_acc), best.encoding if best else (),
                     wall_units=clock)


def summarize(results: Sequence[RunResult]) -> Dict[str, Dict[int, dict]]:
    """Per algorithm and budget: mean regret, its 25/75% quantiles, mean queries used, runs."""
    grouped: Dict[str, Dict[int, List[RunResult]]] = {}
    for r in results:
        grouped.setdefault(r.algorithm, {}).setdefault(r.budget, []).append(r)
    summary: Dict[str, Dict[int, dict]] = {}
    for algorithm, by_budget in grouped.items():
        summary[algorithm] = {}
        for budget in sorted(by_budget):
            runs = by_budget[budget]
            regrets = sorted(r.regret for r in runs)
            q = statistics.quantiles(regrets, n=4, method="inclusive") if len(regrets) > 1 else [regrets[0]] * 3
            summary[algorithm][budget] = {
                "mean_regret": statistics.fmean(regrets), "q25": q[0], "q75": q[2],
                "mean_queries": statistics.fmean(r.queries for r in runs), "runs": len(runs),
                "mean_wall_units": statistics.fmean(r.wall_units for r in runs),
            }
    return summary
