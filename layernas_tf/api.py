"""Python API: LayerNAS over Keras candidates, trained on the caller's own tf.data pipelines.

```python
import layernas_tf, searchspaces
space = searchspaces.get_space("cifar_mobilenet_v2")
result = layernas_tf.run_search(space, train_ds, val_ds, layernas_tf.Target("madds", 6e6), max_trials=30,
                                epochs=3, search_dir="runs/my_search")
print(result.winner.encoding, result.winner.madds, result.winner.val_accuracy)
```

Each candidate is built by `searchspaces.builder`, compiled by `compile_fn(model)` (default:
`train.trainer.compile_model`), fitted on `train_data` and scored by its accuracy on `validation_data`.
Every finished trial is written to the store in `search_dir` before the searcher is told, so a
killed search resumes where it stopped: the stored trials are replayed into the searcher, and none
is trained again. A trial that fails (NaN loss, a build error, out of memory) is stored with its
error and the search goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
import zlib
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging

from layernas_tf.costs import candidate_costs, cost_function
from layernas_tf.search import Problem, make_searcher
from layernas_tf.search.base import Trial
from layernas_tf.store import COMPLETED, FAILED, TrialRecord, TrialStore, summary_counts
from searchspaces.space import SearchSpace

METRICS = ("madds", "params", "latency_ms")


@dataclasses.dataclass(frozen=True)
class Target:
    """Cost target: `metric` at most `max_value` and at least `min_value` (0: no lower bound)."""

    metric: str
    max_value: float
    min_value: float = 0.0

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"target metric {self.metric!r}; allowed: {', '.join(METRICS)}")
        if not self.max_value > 0 or self.min_value < 0 or self.min_value > self.max_value:
            raise ValueError(f"target {self.metric}: need 0 <= min ({self.min_value:g}) <= max ({self.max_value:g}), max > 0")

    def describe(self) -> str:
        low = f"{self.min_value:,.6g} <= " if self.min_value else ""
        return f"{low}{self.metric} <= {self.max_value:,.6g}"


@dataclasses.dataclass
class SearchResult:
    """What a search found: every trial, the winner and the searcher's final state."""

    space: SearchSpace
    target: Target
    trials: List[TrialRecord]
    winner: Optional[TrialRecord]
    searcher_state: dict
    store_seconds: List[float]
    resumed_trials: int

    @property
    def counts(self) -> Dict[str, int]:
        return summary_counts(self.trials)

    def bucket_winners(self, num_buckets: int = 4) -> List[TrialRecord]:
        """The best completed trial in each of `num_buckets` equal cost ranges of the target, costliest first."""
        low, high = self.target.min_value, self.target.max_value
        best: Dict[int, TrialRecord] = {}
        for t in self.trials:
            if t.status != COMPLETED or not low <= t.cost <= high:
                continue
            index = min(num_buckets - 1, int((t.cost - low) / max(high - low, 1e-12) * num_buckets))
            if index not in best or t.reward > best[index].reward:
                best[index] = t
        return [best[i] for i in sorted(best, reverse=True)]


def trial_seed(seed: int, encoding: str) -> int:
    """The seed a candidate is trained with: fixed by the search seed and the encoding, so a trial
    trained again after a crash starts from the same initial weights and data order."""
    return (seed * 1_000_003 + zlib.crc32(encoding.encode())) % (2 ** 31)


def make_problem(space: SearchSpace, target: Target, input_size: int, num_classes: int,
                 latency_fn: Optional[Callable[[Sequence[int]], float]] = None) -> Problem:
    """The search problem for `space` and `target`.

    Raises:
      InfeasibleTargetError: no candidate meets the target (the message names the smallest cost).
      ValueError: a latency target without `latency_fn`.
    """
    if target.metric == "latency_ms":
        if latency_fn is None:
            raise ValueError("a latency_ms target needs latency_fn (e.g. profiler.calibrate_latency_model)")
        cost = latency_fn
    else:
        cost = cost_function(space, target.metric, input_size, num_classes)
    return Problem(space.num_options, cost, target.max_value, target.min_value, default=space.default)


def search(space: SearchSpace, train_data, validation_data, target: Target, *, max_trials: int = 24,
           epochs: int = 3, search_dir: Optional[str] = None, compile_fn: Optional[Callable] = None,
           fit_kwargs: Optional[dict] = None, input_size: Optional[int] = None, num_classes: Optional[int] = None,
           bn_momentum: float = 0.9, seed: int = 0, searcher_settings: Optional[dict] = None,
           latency_fn: Optional[Callable[[Sequence[int]], float]] = None, config: Optional[dict] = None,
           on_trial: Optional[Callable[[TrialRecord, Optional[TrialRecord]], None]] = None,
           on_resume: Optional[Callable[[List[TrialRecord]], None]] = None) -> SearchResult:
    """Search `space` for the most accurate candidate within `target`.

    Args:
      space: a `SearchSpace` (`searchspaces.get_space(name)` or your own).
      train_data, validation_data: batched tf.data datasets of (images, integer labels).
      target: the cost target.
      max_trials: at most this many candidates are trained.
      epochs: proxy-training epochs per candidate.
      search_dir: where trials are stored (SQLite); rerunning with the same directory resumes. A
        temporary directory when None.
      compile_fn: `compile_fn(model)` compiles a fresh candidate (must add an 'accuracy' metric);
        default `train.trainer.compile_model` with `TrainSettings(epochs=epochs)`.
      fit_kwargs: extra `model.fit` keyword arguments (e.g. callbacks, class_weight).
      input_size, num_classes: image side and classes (default: the space's).
      bn_momentum: BatchNormalization momentum of the candidates (low for short proxy runs).
      seed: search seed; candidate `e` trains with `trial_seed(seed, e)`.
      searcher_settings: LayerNAS settings (see `layernas_tf.search.layernas.LayerNAS`).
      latency_fn: encoding -> latency (ms), needed for a latency_ms target.
      config: extra settings recorded in the store; a rerun with other values is refused.
      on_trial: called with each newly finished `TrialRecord` and the current best (or None).
      on_resume: called once with the stored trials (possibly none) before training starts.

    Returns:
      A `SearchResult`; `winner` is None only if no trial completed within the target.

    Raises:
      InfeasibleTargetError: the target is below the smallest candidate (the message names its cost).
      IncompatibleSearchError: `search_dir` holds a search with other settings (named in the message).
    """
    import keras

    from searchspaces.builder import build
    from train.trainer import TrainSettings, compile_model, fit_and_evaluate

    input_size = input_size or space.input_size
    num_classes = num_classes or space.num_classes
    problem = make_problem(space, target, input_size, num_classes, latency_fn)
    settings = dict(searcher_settings or {})
    searcher = make_searcher("layernas", problem, max_trials, seed, **settings)
    store_config = {"space": space.name, "target": dataclasses.asdict(target), "max_trials": max_trials,
                    "epochs": epochs, "input_size": input_size, "num_classes": num_classes,
                    "bn_momentum": bn_momentum, "seed": seed, "searcher": searcher.settings(), **(config or {})}
    search_dir = search_dir or tempfile.mkdtemp(prefix="layernas_")
    store = TrialStore(search_dir, store_config)
    stored = store.trials()
    searcher.replay(Trial(space.parse(t.encoding), t.cost, t.reward if t.status == COMPLETED else None) for t in stored)
    if stored:
        logging.info("resumed %s: %d stored trials replayed, none retrained", search_dir, len(stored))
    if on_resume is not None:
        on_resume(stored)
    by_encoding = {t.encoding: t for t in stored}
    default_compile = functools.partial(compile_model, settings=TrainSettings(epochs=epochs))
    store_seconds: List[float] = []
    queue = list(searcher.pending)  # handed out before a crash: evaluate these first
    while not searcher.done:
        encoding = queue.pop(0) if queue else next(iter(searcher.ask(1)), None)
        if encoding is None:
            break
        key = space.to_string(encoding)
        start = time.perf_counter()
        costs = candidate_costs(space, encoding, input_size, num_classes)
        cost = problem.cost_of(encoding)
        timings = {"profile": time.perf_counter() - start}
        record = TrialRecord(len(by_encoding), key, cost, costs.madds, costs.params, FAILED, timings=timings)
        try:
            keras.utils.set_random_seed(trial_seed(seed, key))
            start = time.perf_counter()
            model = build(space, encoding, (input_size, input_size, 3), num_classes, bn_momentum=bn_momentum)
            (compile_fn or _steps(default_compile, train_data))(model)
            timings["build"] = time.perf_counter() - start
            result = fit_and_evaluate(model, train_data, validation_data, epochs, fit_kwargs=fit_kwargs)
            timings.update(result.timings)
            record.status, record.reward = COMPLETED, result.val_accuracy
        except Exception as e:  # noqa: BLE001 - NaN, build, convert, OOM...: recorded, the search goes on
            record.error = f"{type(e).__name__}: {e}"
        finally:
            start = time.perf_counter()
            model = None
            keras.backend.clear_session()  # frees the candidate's graph; no gc.collect(), it costs ~1 s here
            timings["cleanup"] = time.perf_counter() - start
        if record.status == FAILED:
            logging.warning("trial %d %s failed: %s", record.number, key, record.error[:500])
        start = time.perf_counter()
        store.add(record)
        store_seconds.append(time.perf_counter() - start)
        searcher.tell(encoding, record.reward)
        by_encoding[key] = record
        if on_trial is not None:
            best = searcher.best()
            on_trial(record, by_encoding[space.to_string(best.encoding)] if best else None)
    trials = store.trials()
    best = searcher.best()
    winner = by_encoding[space.to_string(best.encoding)] if best else None
    result = SearchResult(space, target, trials, winner, searcher.get_state(), store_seconds, len(stored))
    store.close()
    return result


def _steps(compile_with_settings, train_data):
    """The default compile needs the steps per epoch for its learning-rate schedule."""
    cardinality = int(train_data.cardinality())
    steps = cardinality if cardinality > 0 else 100

    def compile_model(model):
        return compile_with_settings(model, steps_per_epoch=steps)

    return compile_model

