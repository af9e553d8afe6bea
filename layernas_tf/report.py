"""What the user sees of a search: TensorBoard logs, a summary table, plots and results.json."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Dict, List, Optional, Sequence

from layernas_tf.store import COMPLETED, RUNNING, TrialRecord


class TensorBoardLogger:
    """Per-trial scalars (`search/` run) and the HParams dashboard (one run per trial) under `logdir`."""

    def __init__(self, logdir: str, space, target_metric: str):
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        self.tf, self.hp, self.logdir, self.space = tf, hp, pathlib.Path(logdir), space
        self.layer_params = [hp.HParam(f"layer_{i:02d}_{layer.name}", hp.Discrete([o.label for o in layer.options]))
                             for i, layer in enumerate(space.layers)]
        self.cost_param = hp.HParam(target_metric, hp.RealInterval(0.0, float("inf")))
        self.target_metric = target_metric
        self.writer = tf.summary.create_file_writer(str(self.logdir / "search"))
        with tf.summary.create_file_writer(str(self.logdir / "trials")).as_default():
            hp.hparams_config(hparams=self.layer_params,
                              metrics=[hp.Metric("val_accuracy", display_name="validation accuracy"),
                                       hp.Metric("madds"), hp.Metric("params")])

    def log(self, record: TrialRecord, best: Optional[TrialRecord]) -> None:
        tf, hp = self.tf, self.hp
        with self.writer.as_default(step=record.number):
            tf.summary.scalar("trial/madds", record.madds)
            tf.summary.scalar("trial/params", record.params)
            tf.summary.scalar(f"trial/cost_{self.target_metric}", record.cost)
            tf.summary.scalar("trial/failed", float(record.status != COMPLETED))
            if record.reward is not None:
                tf.summary.scalar("trial/val_accuracy", record.reward)
            for name, seconds in record.timings.items():
                tf.summary.scalar(f"seconds/{name}", seconds)
            if best is not None:
                tf.summary.scalar("best/val_accuracy", best.reward)
                tf.summary.scalar(f"best/cost_{self.target_metric}", best.cost)
        if record.reward is None:
            return
        encoding = self.space.parse(record.encoding)
        values = {p: layer.options[o].label for p, layer, o in zip(self.layer_params, self.space.layers, encoding)}
        with tf.summary.create_file_writer(str(self.logdir / "trials" / f"trial_{record.number:04d}")).as_default():
            hp.hparams(values, trial_id=record.encoding)
            tf.summary.scalar("val_accuracy", record.reward, step=0)
            tf.summary.scalar("madds", record.madds, step=0)
            tf.summary.scalar("params", record.params, step=0)
        self.writer.flush()


def progress_bar(total: int):
    """A tqdm bar over `total` trials (count, elapsed and remaining time, then a postfix), on stderr."""
    from tqdm import tqdm

    return tqdm(total=total, desc="trials", unit="trial", dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}")


class SearchProgress:
    """The progress of a search on one bar: trials finished of `total`, trials running, and the best
    trial's validation accuracy and cost. Its methods take the search's callbacks
    (`on_resume`, `on_trial`, `on_running`); `close()` ends the bar."""

    def __init__(self, total: int):
        self.bar = progress_bar(total)
        self.status: Dict[str, object] = {}

    def on_resume(self, stored: Sequence[TrialRecord]) -> None:
        self.bar.update(sum(t.status != RUNNING for t in stored))

    def on_trial(self, record: TrialRecord, best: Optional[TrialRecord]) -> None:
        if best is not None:
            self.status.update(best=f"{best.reward:.4f}", cost=f"{best.cost:,.4g}")
        self.bar.set_postfix(self.status, refresh=False)
        self.bar.update(1)

    def on_running(self, count: int) -> None:
        self.status["running"] = count
        self.bar.set_postfix(self.status)

    def close(self) -> None:
        self.bar.close()


def best_so_far(trials: Sequence[TrialRecord], low: float, high: float,
                scores: Optional[Dict[str, float]] = None) -> List[Optional[float]]:
    """After each trial, the validation accuracy of the best completed trial so far within [low, high]
    (None before the first), "best" in the searcher's ranking: by `scores` (encoding -> selection
    score, as in `SearchResult.scores`) where given, else by validation accuracy."""
    out, best, best_key = [], None, None
    for t in trials:
        if t.status == COMPLETED and low <= t.cost <= high:
            key = ((scores or {}).get(t.encoding, t.reward), t.reward)
            if best_key is None or key > best_key:
                best, best_key = t.reward, key
        out.append(best)
    return out


def summary_table(trials: Sequence[TrialRecord], winner: Optional[TrialRecord], cost_name: str, low: float,
                  high: float, top: int = 10, scores: Optional[Dict[str, float]] = None) -> str:
    """A text table of the best `top` completed trials within [low, high], then every failed trial.

    Trials are ranked as the searcher ranks them (`scores`: encoding -> selection score, e.g.
    `SearchResult.scores`; the reward when absent). The target metric is shown once: MAdds and params
    always, and a third cost column only for another metric (latency). The winner is marked `*`.
    """
    scores = scores or {}

    def score(t: TrialRecord) -> float:
        return scores.get(t.encoding, t.reward)

    trained = [t for t in trials if t.repeat_of is None]
    completed = sorted((t for t in trained if t.status == COMPLETED and low <= t.cost <= high),
                       key=lambda t: (-score(t), -t.reward, t.number))[:top]
    failed = [t for t in trained if t.status != COMPLETED]
    extra_cost = cost_name not in ("madds", "params")
    header = f"{'#':>4}  {'encoding':<30} {'val_acc':>8} {'score':>8} {'MAdds':>12} {'params':>10}"
    lines = [header + (f" {cost_name:>12}" if extra_cost else "") + f" {'seconds':>8}"]
    for t in completed + failed:
        mark = "*" if winner is not None and t.number == winner.number else " "
        acc = f"{t.reward:.4f}" if t.reward is not None else "FAILED"
        line = f"{t.number:>3}{mark}  {t.encoding:<30} {acc:>8} "
        line += f"{score(t):>8.4f}" if t.reward is not None else f"{'':>8}"
        line += f" {t.madds:>12,} {t.params:>10,}" + (f" {t.cost:>12,.4g}" if extra_cost else "")
        lines.append(line + f" {sum(t.timings.values()):>8.1f}")
        if t.error:
            lines.append(f"      error: {t.error[:160]}")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, ax, xlabel: str, path: str, legend_size: int) -> None:
    """Label, grid and legend a validation-accuracy plot, then write it to `path`."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pareto(trials: Sequence[TrialRecord], winner: Optional[TrialRecord], low: float, high: float,
                cost_name: str, path: str) -> None:
    """Reward against cost for every completed trial, with the target range shaded and the winner marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    done = [t for t in trials if t.status == COMPLETED]
    ax.scatter([t.cost for t in done], [t.reward for t in done], s=18, alpha=0.7, label="trials")
    costs = [t.cost for t in done] or [high]
    left = min(min(costs), high) * 0.95 if not low else low * 0.95
    right = max(max(costs), high) * 1.03
    ax.axvspan(max(low, left), high, color="tab:green", alpha=0.08, label="target range")
    ax.axvline(high, color="tab:green", linewidth=1)
    if winner is not None:
        ax.scatter([winner.cost], [winner.reward], s=120, marker="*", color="tab:red", zorder=5,
                   label=f"winner {winner.encoding}")
    ax.set_xlim(left, right)
    _finish(plt, fig, ax, cost_name, path, legend_size=7)


def plot_search(trials: Sequence[TrialRecord], low: float, high: float, path: str,
                scores: Optional[Dict[str, float]] = None) -> None:
    """Best-so-far validation accuracy (within the target, ranked by `scores`) against trials, over each
    trial's own."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    xs = [t.number for t in trials]
    ax.scatter([t.number for t in trials if t.reward is not None], [t.reward for t in trials if t.reward is not None],
               s=12, alpha=0.5, color="grey", label="trial")
    best = best_so_far(trials, low, high, scores)
    ax.step(xs, [b if b is not None else math.nan for b in best], where="post", linewidth=2, label="best within target")
    _finish(plt, fig, ax, "trial", path, legend_size=8)


def results_payload(winner: Optional[TrialRecord], export: Optional[object], counts: Dict[str, int],
                    extra: Optional[dict] = None) -> dict:
    """The results.json document: {"winner": {...}, "trials": {"completed", "failed"}, ...extra}."""
    payload: dict = {"winner": None, "trials": dict(counts)}
    if winner is not None:
        payload["winner"] = {"encoding": winner.encoding, "madds": winner.madds, "params": winner.params,
                             "val_accuracy": winner.reward}
        if export is not None:
            payload["winner"].update({"accuracy": export.accuracy, "latency_ms": export.latency_ms,
                                      "tflite": export.tflite, "saved_model": export.saved_model,
                                      "size_bytes": export.size_bytes})
    payload.update(extra or {})
    return payload


def phase_rates(trials: Sequence[TrialRecord], sweep_trials: int, started_at: float) -> Dict[str, dict]:
    """Trials per minute of a LayerNAS search's two phases, from the stored finish times.

    The sweep is the first `sweep_trials` hand-outs (trial numbers follow hand-out order; the searcher's
    `_sweep_asked`); it runs from `started_at` (the search's start, seconds since the epoch) to its last
    trial's finish, and the refinement from there to the last finish of the rest. Repeats and trials
    still running are left out. Returns {"sweep": {...}, "refine": {...}}, each with "trials",
    "minutes" and "trials_per_min" (None for a phase with no trial or no time).
    """
    done = [t for t in trials if t.status != RUNNING and t.repeat_of is None and t.finished_at]
    sweep = [t for t in done if t.number < sweep_trials]
    refine = [t for t in done if t.number >= sweep_trials]
    sweep_end = max((t.finished_at for t in sweep), default=started_at)
    phases = {}
    for name, group, start in (("sweep", sweep, started_at), ("refine", refine, sweep_end)):
        minutes = (max((t.finished_at for t in group), default=start) - start) / 60.0
        phases[name] = {"trials": len(group), "minutes": round(minutes, 2),
                        "trials_per_min": round(len(group) / minutes, 2) if group and minutes > 0 else None}
    return phases


def write_json(payload: dict, path: str) -> None:
    tmp = pathlib.Path(f"{path}.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)
