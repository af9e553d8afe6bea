"""Markdown tables of a benchmark's summary: results per budget, values at equal simulated time, paired
differences. Plain Python, no flags, so tests and other tools can import it."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

from layernas_tf.search.harness import paired_cell


def metric_of(summary: dict) -> str:
    """'mean_regret' where every cell has one (tables), else 'mean_score' (objectives)."""
    cells = [c for by_budget in summary.values() for c in by_budget.values()]
    return "mean_regret" if all(c["mean_regret"] is not None for c in cells) else "mean_score"


def markdown_table(summary: dict, budgets: List[int]) -> str:
    lines = ["| algorithm | " + " | ".join(f"{b} queries" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    metric = metric_of(summary)
    for algorithm, by_budget in summary.items():
        best_cells = []
        for b in budgets:
            s = by_budget[b]
            best_cells.append(f"{s[metric]:.3f} [{s['q25']:.2f}, {s['q75']:.2f}] ({s['mean_queries']:.0f}; "
                              f"{s['mean_wall_units']:.0f} units)")
        lines.append(f"| {algorithm} | " + " | ".join(best_cells) + " |")
    return "\n".join(lines)


def metric_at_time(by_budget: Dict[int, dict], units: float, metric: str = "mean_regret"):
    """The mean regret (or `metric`) an algorithm has reached after `units` of simulated time: interpolated
    between its checkpoints in log time, its last value after its last checkpoint, None before its first."""
    points = sorted((v["mean_wall_units"], v[metric]) for v in by_budget.values())
    if units < points[0][0] * (1 - 1e-9):
        return None
    for (t0, r0), (t1, r1) in zip(points, points[1:]):
        if t0 <= units <= t1:
            if t1 <= t0:
                return r1
            w = (math.log(units) - math.log(t0)) / (math.log(t1) - math.log(t0))
            return r0 + w * (r1 - r0)
    return points[-1][1] if units >= points[-1][0] else points[0][1]


def equal_time_table(summary: dict, reference: str, budgets: List[int]) -> Tuple[str, dict]:
    """Every algorithm's mean regret (tables) or mean score (objectives) at the simulated times `reference`
    needs for each budget: (markdown, {budget: {"units": time, "mean_regret" or "mean_score": {algorithm:
    value or None}}}), the key being the one the results' cells use for the same measure."""
    data = {}
    metric = metric_of(summary)
    best = min if metric == "mean_regret" else max
    for b in budgets:
        units = summary[reference][b]["mean_wall_units"]
        data[b] = {"units": units, metric: {a: metric_at_time(by, units, metric) for a, by in summary.items()}}
    lines = ["| algorithm | " + " | ".join(f"{data[b]['units']:.0f} units ({reference} @{b})" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for algorithm in summary:
        cells = []
        for b in budgets:
            values = {a: r for a, r in data[b][metric].items() if r is not None}
            r = data[b][metric][algorithm]
            cell = "n/a" if r is None else f"{r:.3f}"
            cells.append(f"**{cell}**" if r is not None and r == best(values.values()) else cell)
        lines.append(f"| {algorithm} | " + " | ".join(cells) + " |")
    return "\n".join(lines), {str(b): v for b, v in data.items()}


def paired_table(diffs: Dict[str, Dict[str, dict]], budgets: List[int]) -> str:
    """Markdown: one row per algorithm, its paired score difference ± standard error per budget."""
    lines = ["| algorithm | " + " | ".join(f"{b} queries" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for algorithm, by_budget in diffs.items():
        cells = [f"{by_budget[str(b)]['score_diff']:+.3f} ± {by_budget[str(b)]['se']:.3f}" if str(b) in by_budget
                 else "n/a" for b in budgets]
        lines.append(f"| {algorithm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scores_by_seed(runs) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Each run's score, per algorithm label, budget and seed (JSON keys: strings)."""
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for r in runs:
        out.setdefault(r.algorithm, {}).setdefault(str(r.budget), {})[str(r.seed)] = r.score
    return out


def paired_with(mine: dict, theirs: dict) -> Dict[str, Dict[str, dict]]:
    """Per label of `mine` and per budget, the paired difference of mean score from the same label in
    `theirs` (mine minus theirs, over the seeds both ran) with its standard error and the number of
    seeds. A label with settings that `theirs` lacks (`layernas[speculate=hedge]`) is paired with its
    algorithm's plain label there (`layernas`): a setting against the default."""
    out: Dict[str, Dict[str, dict]] = {}
    for label in mine:
        other = theirs.get(label, theirs.get(label.split("[")[0], {}))
        for budget in mine[label]:
            seeds = sorted(set(mine[label][budget]) & set(other.get(budget, {})), key=int)
            if not seeds:
                continue
            diffs = [mine[label][budget][s] - other[budget][s] for s in seeds]
            out.setdefault(label, {})[budget] = paired_cell(diffs)
    return out


def largest_setback(cells: Dict[int, dict], metric: str) -> tuple:
    """(setback, smaller budget, larger budget): the most a larger budget's mean is worse than a smaller
    budget's (mean regret higher, or mean score lower); 0 with the first two budgets when it never is."""
    sign = 1.0 if metric == "mean_regret" else -1.0
    budgets = sorted(cells)
    worst = (0.0, budgets[0], budgets[min(1, len(budgets) - 1)])
    for i, small in enumerate(budgets):
        for large in budgets[i + 1:]:
            setback = sign * (cells[large][metric] - cells[small][metric])
            if setback > worst[0]:
                worst = (setback, small, large)
    return worst
