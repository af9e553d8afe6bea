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
error and the search goes on, until `max_consecutive_failures` fail in a row (then it stops with
`TooManyFailuresError`: a broken compile_fn or dataset would otherwise burn the whole budget).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
import time
import zlib
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging

from layernas_tf.costs import candidate_costs, cost_function
from layernas_tf.search import Problem, make_searcher
from layernas_tf.search.base import Trial
from layernas_tf.store import COMPLETED, FAILED, TrialRecord, TrialStore, summary_counts
from searchspaces.space import SearchSpace

METRICS = ("madds", "params", "latency_ms")
# Searchers that propose only candidates within the target: the ones a real search can afford.
SEARCHERS = ("layernas", "random", "evolution", "ppo", "optuna_tpe", "pyglove_evolution")


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
    """What a search found: every trial, the winner and the searcher's final state.

    `scores` holds the searcher's own ranking of each completed trial (encoding -> selection score,
    higher is better): the winner is the feasible trial with the highest score, and `bucket_winners`
    and the report rank by the same scores. For LayerNAS it is the noise-aware score (the mean of a
    trial's reward and the additive model's prediction); for the other searchers, the reward.
    """

    space: SearchSpace
    target: Target
    trials: List[TrialRecord]
    winner: Optional[TrialRecord]
    searcher_state: dict
    store_seconds: List[float]
    resumed_trials: int
    scores: Dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def counts(self) -> Dict[str, int]:
        return summary_counts(self.trials)

    def score(self, record: TrialRecord) -> float:
        """The searcher's selection score of `record` (its reward when the searcher gave none)."""
        return self.scores.get(record.encoding, record.reward if record.reward is not None else float("-inf"))

    def bucket_winners(self, num_buckets: int = 4) -> List[TrialRecord]:
        """The best-scored completed trial in each of `num_buckets` equal cost ranges of the target,
        costliest first."""
        low, high = self.target.min_value, self.target.max_value
        best: Dict[int, TrialRecord] = {}
        for t in self.trials:
            if t.status != COMPLETED or t.repeat_of is not None or not low <= t.cost <= high:
                continue
            index = min(num_buckets - 1, int((t.cost - low) / max(high - low, 1e-12) * num_buckets))
            if index not in best or (self.score(t), t.reward) > (self.score(best[index]), best[index].reward):
                best[index] = t
        return [best[i] for i in sorted(best, reverse=True)]


class TooManyFailuresError(RuntimeError):
    """Trials failed `max_consecutive_failures` times in a row: most likely a bug, not a bad candidate."""


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
           bn_momentum: float = 0.9, seed: int = 0, searcher: str = "layernas",
           searcher_settings: Optional[dict] = None, max_consecutive_failures: int = 3,
           latency_fn: Optional[Callable[[Sequence[int]], float]] = None, config: Optional[dict] = None,
           on_trial: Optional[Callable[[TrialRecord, Optional[TrialRecord]], None]] = None,
           on_resume: Optional[Callable[[List[TrialRecord]], None]] = None) -> SearchResult:
    """Search `space` for the most accurate candidate within `target`.

    Args:
      space: a `SearchSpace` (`searchspaces.get_space(name)` or your own).
      train_data, validation_data: batched tf.data datasets of (images, integer labels).
      target: the cost target.
      max_trials: at most this many candidates are proposed (repeated proposals included).
      epochs: proxy-training epochs per candidate.
      search_dir: where trials are stored (SQLite); rerunning with the same directory resumes. A
        temporary directory when None.
      compile_fn: `compile_fn(model)` compiles a fresh candidate (must add an 'accuracy' metric);
        default `train.trainer.compile_model` with `TrainSettings(epochs=epochs)`, its learning-rate
        schedule sized by the batches of `train_data` (counted once if the dataset does not know).
      fit_kwargs: extra `model.fit` keyword arguments (e.g. callbacks, class_weight).
      input_size, num_classes: image side and classes (default: the space's).
      bn_momentum: BatchNormalization momentum of the candidates (low for short proxy runs).
      seed: search seed; candidate `e` trains with `trial_seed(seed, e)`.
      searcher: one of `SEARCHERS`, the constraint-aware searchers (default LayerNAS).
      searcher_settings: settings of that searcher (e.g. `layernas_tf.search.layernas.LayerNAS`'s).
      max_consecutive_failures: stop with `TooManyFailuresError` after this many failed trials in a row.
      latency_fn: encoding -> latency (ms), needed for a latency_ms target.
      config: extra settings recorded in the store; a rerun with other values is refused.
      on_trial: called with each newly finished `TrialRecord` and the current best (or None).
      on_resume: called once with the stored trials (possibly none) before training starts.

    A proposal of an encoding already trained (random search may repeat itself) is answered from the
    store without training again, and stored as a repeat.

    Returns:
      A `SearchResult`; `winner` is None only if no trial completed within the target.

    Raises:
      InfeasibleTargetError: the target is below the smallest candidate (the message names its cost).
      IncompatibleSearchError: `search_dir` holds a search with other settings (named in the message).
      TooManyFailuresError: `max_consecutive_failures` trials failed in a row; every trial so far is
        stored, and a rerun with the same `search_dir` resumes after the cause is fixed.
      ValueError: an unknown searcher or bad settings.
    """
    from train.trainer import TrainSettings, compile_model

    if searcher not in SEARCHERS:
        raise ValueError(f"searcher={searcher!r}; allowed: {', '.join(SEARCHERS)}")
    if max_consecutive_failures < 1:
        raise ValueError(f"max_consecutive_failures={max_consecutive_failures} must be at least 1")
    input_size = input_size or space.input_size
    num_classes = num_classes or space.num_classes
    problem = make_problem(space, target, input_size, num_classes, latency_fn)
    algorithm = make_searcher(searcher, problem, max_trials, seed, **dict(searcher_settings or {}))
    store_config = {"space": space.name, "num_options": list(space.num_options), "target": dataclasses.asdict(target),
                    "max_trials": max_trials, "epochs": epochs, "input_size": input_size, "num_classes": num_classes,
                    "bn_momentum": bn_momentum, "seed": seed, "searcher_name": searcher,
                    "searcher": algorithm.settings(), **(config or {})}
    search_dir = search_dir or tempfile.mkdtemp(prefix="layernas_")
    store = TrialStore(search_dir, store_config)
    stored = store.trials()
    algorithm.replay(Trial(space.parse(t.encoding), t.cost, t.reward if t.status == COMPLETED else None)
                     for t in stored)
    if stored:
        logging.info("resumed %s: %d stored trials replayed, none retrained", search_dir, len(stored))
    if on_resume is not None:
        on_resume(stored)
    trained = {t.encoding: t for t in stored if t.repeat_of is None}
    default_compile = functools.partial(compile_model, settings=TrainSettings(epochs=epochs))
    chance = ChanceCheck(validation_data)
    store_seconds: List[float] = []
    number, consecutive_failures = len(stored), 0
    queue = list(algorithm.pending)  # handed out before a crash: evaluate these first
    while not algorithm.done:
        encoding = queue.pop(0) if queue else next(iter(algorithm.ask(1)), None)
        if encoding is None:
            break
        key = space.to_string(encoding)
        if key in trained:
            record = dataclasses.replace(trained[key], number=number, timings={}, finished_at=0.0,
                                         repeat_of=trained[key].number)
        else:
            record = _train_trial(number, space, encoding, problem, input_size, num_classes, bn_momentum, seed, epochs,
                                  train_data, validation_data, compile_fn or _steps(default_compile, train_data),
                                  fit_kwargs)
            trained[key] = record
            consecutive_failures = consecutive_failures + 1 if record.status == FAILED else 0
        start = time.perf_counter()
        store.add(record)
        store_seconds.append(time.perf_counter() - start)
        algorithm.tell(encoding, record.reward)
        number += 1
        if on_trial is not None:
            best = algorithm.best()
            on_trial(record, trained[space.to_string(best.encoding)] if best else None)
        if consecutive_failures >= max_consecutive_failures:
            store.close()
            raise TooManyFailuresError(
                f"{consecutive_failures} trials failed in a row (max_consecutive_failures={max_consecutive_failures}), "
                f"which points at a bug rather than bad candidates. The last one, trial {record.number} "
                f"{record.encoding}, failed with: {record.error[:1000]}. All {number} trials so far are stored in "
                f"{search_dir}; fix the cause and rerun with the same search directory to resume.")
        if record.repeat_of is None and record.status == COMPLETED:
            chance.check([t.reward for t in trained.values() if t.status == COMPLETED])
    trials = store.trials()
    best = algorithm.best()
    winner = trained[space.to_string(best.encoding)] if best else None
    scores = {key: algorithm.selection_score(space.parse(key)) for key, t in trained.items() if t.status == COMPLETED}
    result = SearchResult(space, target, trials, winner, algorithm.get_state(), store_seconds, len(stored), scores)
    store.close()
    return result


def _train_trial(number, space, encoding, problem, input_size, num_classes, bn_momentum, seed, epochs, train_data,
                 validation_data, compile_fn, fit_kwargs) -> TrialRecord:
    """Build, compile, train and score one candidate; any exception is recorded as a failed trial."""
    import keras

    from searchspaces.builder import build
    from train.trainer import fit_and_evaluate

    key = space.to_string(encoding)
    start = time.perf_counter()
    costs = candidate_costs(space, encoding, input_size, num_classes)
    cost = problem.cost_of(encoding)
    timings = {"profile": time.perf_counter() - start}
    record = TrialRecord(number, key, cost, costs.madds, costs.params, FAILED, timings=timings)
    model = None
    try:
        keras.utils.set_random_seed(trial_seed(seed, key))
        start = time.perf_counter()
        model = build(space, encoding, (input_size, input_size, 3), num_classes, bn_momentum=bn_momentum)
        compile_fn(model)
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
    return record


class ChanceCheck:
    """Warns once when every completed trial so far scores within noise of chance on validation.

    Chance is the share of the most frequent validation class; within noise means at most three
    binomial standard errors above it (and at least one point). Checked from the third completed
    trial on; the validation labels are counted once, when first needed.
    """

    MIN_TRIALS = 3

    def __init__(self, validation_data):
        self.validation_data = validation_data
        self.warned = False
        self._band: Optional[Tuple[float, float]] = None

    def band(self) -> Tuple[float, float]:
        """(chance accuracy, highest accuracy still within noise of it)."""
        if self._band is None:
            import numpy as np

            counts = np.zeros(0, np.int64)
            for _, labels in self.validation_data:
                batch = np.bincount(np.asarray(labels).reshape(-1).astype(np.int64))
                counts = np.pad(counts, (0, max(0, len(batch) - len(counts))))
                counts[:len(batch)] += batch
            total = max(int(counts.sum()), 1)
            chance = float(counts.max()) / total if counts.size else 0.0
            self._band = chance, chance + max(3 * math.sqrt(chance * (1 - chance) / total), 0.01)
        return self._band

    def check(self, rewards: Sequence[float]) -> bool:
        """Warn (once) if all `rewards` are within noise of chance; returns whether they are."""
        if self.warned or len(rewards) < self.MIN_TRIALS:
            return False
        chance, ceiling = self.band()
        if max(rewards) > ceiling:
            return False
        self.warned = True
        logging.warning(
            "all %d completed trials score within noise of chance on validation (best %.4f, chance %.4f): proxy "
            "training learns nothing yet, so the search is ranking noise. Train longer (--proxy_epochs) or change "
            "--learning_rate.", len(rewards), max(rewards), chance)
        return True


def _steps(compile_with_settings, train_data):
    """The default compile needs the steps per epoch for its learning-rate schedule."""
    from train.trainer import count_batches

    steps = count_batches(train_data)

    def compile_model(model):
        return compile_with_settings(model, steps_per_epoch=steps)

    return compile_model
