"""Run searchers on a tabular benchmark under the noisy-query protocol and score them.

Protocol: a query returns one randomly chosen seed's accuracy (a simulated noisy training run); a run
is scored by the *mean* accuracy of the architecture it returns; regret is the best feasible mean
accuracy minus that score. A run that returns no feasible architecture scores the worst feasible mean
accuracy. Anytime searchers (whose behaviour does not depend on the budget) run once to the largest
budget and are scored after each smaller budget's number of queries; the others run once per budget.
Pure Python.
"""

from __future__ import annotations

import dataclasses
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


def _regret(table: Table, problem: Problem, best, oracle_acc: float, worst_acc: float) -> float:
    if best is None or not problem.feasible(best.encoding):
        return oracle_acc - worst_acc
    return oracle_acc - table.mean_accuracy[best.encoding]


def run_searcher(factory: Callable[[Problem, int, int], object], algorithm: str, table: Table, problem: Problem,
                 budgets: Sequence[int], seed: int) -> List[RunResult]:
    """One run (or one per budget, for budget-dependent searchers) with query noise seeded by `seed`."""
    _, oracle_acc = table.oracle(problem)
    worst_acc = min(a for e, a in table.mean_accuracy.items() if problem.feasible(e))
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
        while pending and not searcher.done:
            asked = searcher.ask(1)
            if not asked:
                break
            searcher.tell(asked[0], table.query(asked[0], noise))
            while pending and len(searcher.trials) >= pending[0]:
                results.append(_result(algorithm, seed, pending.pop(0), searcher, table, problem, oracle_acc, worst_acc))
        for budget in pending:  # the searcher finished before using these budgets
            results.append(_result(algorithm, seed, budget, searcher, table, problem, oracle_acc, worst_acc))
    return results


def _result(algorithm, seed, budget, searcher, table, problem, oracle_acc, worst_acc) -> RunResult:
    best = searcher.best()  # once: LayerNAS's pick refits its model
    return RunResult(algorithm, seed, budget, len(searcher.trials),
                     _regret(table, problem, best, oracle_acc, worst_acc), best.encoding if best else ())


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
            }
    return summary
