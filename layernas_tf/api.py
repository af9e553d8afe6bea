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
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging

from layernas_tf.coordinator import Coordinator, TooManyFailuresError  # noqa: F401 - re-exported
from layernas_tf.costs import candidate_costs, cost_function
from layernas_tf.report import SearchProgress
from layernas_tf.runner import trial_seed  # noqa: F401 - re-exported
from layernas_tf.search import Problem, make_searcher
from layernas_tf.store import COMPLETED, TrialRecord, TrialStore, summary_counts
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


def make_problem(space: SearchSpace, target: Target, input_size: int, num_classes: int,
                 latency_fn: Optional[Callable[[Sequence[int]], float]] = None) -> Problem:
    """The search problem for `space` and `target`.

    Raises:
      InfeasibleTargetError: no candidate meets the target (the message names the smallest cost).
      ValueError: a latency target without `latency_fn`.
    """
    if target.metric == "latency_ms":
        if latency_fn is None:
            raise ValueError("a latency_ms target needs latency_fn (e.g. layernas_tf.latency.linear_model.calibrate_latency_model)")
        cost = latency_fn
    else:
        cost = cost_function(space, target.metric, input_size, num_classes)
    return Problem(space.num_options, cost, target.max_value, target.min_value, default=space.default,
                   option_attributes=space.option_attributes())


def search(space: SearchSpace, train_data, validation_data, target: Target, *, max_trials: int = 24,
           epochs: int = 3, search_dir: Optional[str] = None, compile_fn=None,
           fit_kwargs: Optional[dict] = None, input_size: Optional[int] = None, num_classes: Optional[int] = None,
           bn_momentum: float = 0.9, seed: int = 0, searcher: str = "layernas",
           searcher_settings: Optional[dict] = None, max_consecutive_failures: int = 3,
           executor="in_process", workers: Optional[int] = None, trial_retries: int = 1,
           ray_address: Optional[str] = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
           latency_fn: Optional[Callable[[Sequence[int]], float]] = None, config: Optional[dict] = None,
           on_trial: Optional[Callable[[TrialRecord, Optional[TrialRecord]], None]] = None,
           on_resume: Optional[Callable[[List[TrialRecord]], None]] = None,
           on_running: Optional[Callable[[int], None]] = None, verbose: int = 1) -> SearchResult:
    """Search `space` for the most accurate candidate within `target`.

    Args:
      space: a `SearchSpace` (`searchspaces.get_space(name)` or your own).
      train_data, validation_data: the data, in one of three forms:
        - batched tf.data datasets of (images, integer labels): trials run in this process;
        - `train_data` a `train.spec.DataSpec` and `validation_data` None: every worker loads it;
        - `train_data` a picklable callable returning (train, validation) batched datasets and
          `validation_data` None: called in each worker (a module-level function or a
          `functools.partial` of one; a lambda cannot cross a process boundary).
      target: the cost target.
      max_trials: at most this many candidates are proposed (repeated proposals included).
      epochs: proxy-training epochs per candidate.
      search_dir: where trials are stored (SQLite); rerunning with the same directory resumes. A
        temporary directory when None.
      compile_fn: `compile_fn(model)` compiles a fresh candidate (must add an 'accuracy' metric), or
        `train.spec.TrainSettings` for the default compile (Adam, cosine decay sized by the real
        batches per epoch: a DataSpec's split size, or the dataset counted once if it does not know).
        Default `TrainSettings(epochs=epochs)`. Must be picklable for executors other than in_process.
      fit_kwargs: extra `model.fit` keyword arguments (e.g. callbacks, class_weight).
      input_size, num_classes: image side and classes (default: the space's).
      bn_momentum: BatchNormalization momentum of the candidates (low for short proxy runs).
      seed: search seed; candidate `e` trains with `trial_seed(seed, e)` wherever it runs.
      searcher: one of `SEARCHERS`, the constraint-aware searchers (default LayerNAS).
      searcher_settings: settings of that searcher (e.g. `layernas_tf.search.layernas.LayerNAS`'s).
      max_consecutive_failures: stop with `TooManyFailuresError` after this many failed trials in a row.
      executor: 'in_process', 'local' (`workers` spawned processes, one per GPU by default), 'ray'
        (a Ray cluster at `ray_address`, or a local Ray instance; trials sized by `cpus_per_trial`
        and `gpus_per_trial`), or an `layernas_tf.executors.Executor` instance.
      workers: local worker processes, or Ray trials in flight (default: the executor's).
      trial_retries: run a trial again this many times when its worker dies under it.
      latency_fn: encoding -> latency (ms), needed for a latency_ms target.
      config: extra settings recorded in the store; a rerun with other values is refused.
      on_trial: called with each newly finished `TrialRecord` and the current best (or None).
      on_resume: called once with the stored trials (possibly none) before training starts.
      on_running: called with the number of running trials when it changes.
      verbose: 1 (default) shows a progress bar on stderr: trials finished, trials running, the best
        trial's validation accuracy and its cost; 0 is silent. The callbacks are called either way.

    A proposal of an encoding already trained (random search may repeat itself) is answered from the
    store without training again, and stored as a repeat.

    Returns:
      A `SearchResult`; `winner` is None only if no trial completed within the target.

    Raises:
      InfeasibleTargetError: the target is below the smallest candidate (the message names its cost).
      IncompatibleSearchError: `search_dir` holds a search with other settings (named in the message).
      TooManyFailuresError: `max_consecutive_failures` trials failed in a row; every trial so far is
        stored, and a rerun with the same `search_dir` resumes after the cause is fixed.
      ValueError: an unknown searcher or executor, a `verbose` other than 0 or 1, bad settings, or live
        datasets (or an unpicklable compile_fn / fit_kwargs) with an executor that runs trials in other
        processes.
    """
    from layernas_tf import executors
    from layernas_tf.runner import LiveData, TrialSpec
    from train.spec import DataSpec, TrainSettings

    if searcher not in SEARCHERS:
        raise ValueError(f"searcher={searcher!r}; allowed: {', '.join(SEARCHERS)}")
    if max_consecutive_failures < 1:
        raise ValueError(f"max_consecutive_failures={max_consecutive_failures} must be at least 1")
    if verbose not in (0, 1):
        raise ValueError(f"verbose={verbose!r}; allowed: 0 (silent) or 1 (a progress bar)")
    if isinstance(executor, str) and executor not in executors.EXECUTORS:
        raise ValueError(f"executor={executor!r}; allowed: {', '.join(executors.EXECUTORS)}")
    if validation_data is not None:
        data = LiveData(train_data, validation_data)
    elif isinstance(train_data, DataSpec) or callable(train_data):
        data = train_data
    else:
        raise ValueError("train_data: give batched tf.data datasets as train_data and validation_data, or a "
                         "DataSpec or a picklable factory returning (train, validation) as train_data alone")
    training = compile_fn if compile_fn is not None else TrainSettings(epochs=epochs)
    in_process = executor == "in_process" or isinstance(executor, executors.InProcessExecutor)
    if not in_process:
        _check_picklable(data=data, compile_fn=training, fit_kwargs=fit_kwargs)
    input_size = input_size or space.input_size
    num_classes = num_classes or space.num_classes
    problem = make_problem(space, target, input_size, num_classes, latency_fn)
    algorithm = make_searcher(searcher, problem, max_trials, seed, **dict(searcher_settings or {}))
    store_config = {"space": space.name, "num_options": list(space.num_options), "target": dataclasses.asdict(target),
                    "max_trials": max_trials, "epochs": epochs, "input_size": input_size, "num_classes": num_classes,
                    "bn_momentum": bn_momentum, "seed": seed, "searcher_name": searcher,
                    "searcher": algorithm.settings(), **(config or {})}
    search_dir = search_dir or tempfile.mkdtemp(prefix="layernas_")
    store = TrialStore(search_dir, store_config, upgrade=functools.partial(upgrade_recorded, type(algorithm)))
    progress = SearchProgress(max_trials) if verbose else None
    if progress is not None:
        on_resume, on_trial, on_running = (_together(on_resume, progress.on_resume),
                                           _together(on_trial, progress.on_trial),
                                           _together(on_running, progress.on_running))
    if on_resume is not None:
        on_resume(store.trials())

    def make_spec(number: int, encoding) -> TrialSpec:
        return TrialSpec(number, space, tuple(encoding), data, training, epochs, input_size, num_classes,
                         bn_momentum=bn_momentum, seed=seed, fit_kwargs=fit_kwargs)

    def describe(encoding):
        costs = candidate_costs(space, encoding, input_size, num_classes)
        return problem.cost_of(encoding), costs.madds, costs.params

    chance = ChanceCheck(data, num_classes)
    runner = executor if isinstance(executor, executors.Executor) else executors.make_executor(
        executor, workers, ray_address, cpus_per_trial, gpus_per_trial)
    try:
        coordinator = Coordinator(algorithm, store, runner, space, make_spec, describe,
                                  max_consecutive_failures=max_consecutive_failures, trial_retries=trial_retries,
                                  on_trial=on_trial, on_running=on_running, on_completed=chance.check)
        done = coordinator.run()
    finally:
        if progress is not None:
            progress.close()
        if not isinstance(executor, executors.Executor):
            runner.close()
        store.close()
    best = algorithm.best()
    trained = coordinator.trained
    winner = trained[space.to_string(best.encoding)] if best else None
    scores = {key: algorithm.selection_score(space.parse(key)) for key, t in trained.items() if t.status == COMPLETED}
    return SearchResult(space, target, done.trials, winner, algorithm.get_state(), done.store_seconds,
                        done.resumed_trials, scores)


def _together(*callbacks: Optional[Callable]) -> Callable:
    """One callback that calls each of `callbacks` (None skipped) with the same arguments, in order."""
    def call(*args):
        for callback in callbacks:
            if callback is not None:
                callback(*args)
    return call


def recorded_config(search_dir: str) -> dict:
    """The configuration recorded in `search_dir`'s trial store, read without opening it for writing.

    Raises:
      FileNotFoundError: `search_dir` holds no trial store.
    """
    import json
    import pathlib
    import sqlite3

    path = pathlib.Path(search_dir) / "trials.sqlite"
    if not path.exists():
        raise FileNotFoundError(f"{search_dir} holds no search (no trials.sqlite)")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM config")}
    finally:
        db.close()


def stored_search(search_dir: str, space: SearchSpace,
                  latency_fn: Optional[Callable[[Sequence[int]], float]] = None) -> SearchResult:
    """The search stored in `search_dir` as a `SearchResult`, with nothing trained and no trial written.

    A fresh searcher with the recorded settings replays the stored log (as a resumed search does), so
    `winner`, `scores` and `bucket_winners` rank the stored trials as the searcher itself ranks them.

    Args:
      search_dir: a directory written by `search` (or the main job).
      space: its search space (the recorded one; refused otherwise).
      latency_fn: the search's latency predictor, for a search with a latency_ms target.
    Raises:
      FileNotFoundError: no trial store in `search_dir`.
      ValueError: `space` is not the recorded space.
    """
    from layernas_tf.coordinator import resume_log
    from layernas_tf.store import RUNNING

    config = recorded_config(search_dir)
    if config.get("space") != space.name or config.get("num_options") != list(space.num_options):
        raise ValueError(f"space {space.name!r} is not the space of the search in {search_dir} "
                         f"({config.get('space')!r})")
    target = Target(**config["target"])
    problem = make_problem(space, target, config["input_size"], config["num_classes"], latency_fn)
    name, budget, seed = config["searcher_name"], config["max_trials"], config["seed"]
    settings = upgrade_recorded(type(make_searcher(name, problem, budget, seed)), config)["searcher"]
    algorithm = make_searcher(name, problem, budget, seed, **settings)
    store = TrialStore(search_dir, config)
    try:
        stored = store.trials()
    finally:
        store.close()
    algorithm.replay_log(resume_log(stored, space.parse))  # as a resumed search replays it
    trained = {t.encoding: t for t in stored if t.repeat_of is None and t.status != RUNNING}
    best = algorithm.best()
    winner = trained.get(space.to_string(best.encoding)) if best else None
    scores = {key: algorithm.selection_score(space.parse(key)) for key, t in trained.items() if t.status == COMPLETED}
    return SearchResult(space, target, stored, winner, algorithm.get_state(), [], len(stored), scores)


def _check_picklable(**values) -> None:
    """Refuse, naming the argument, what cannot be sent to a worker process."""
    import pickle

    from layernas_tf.runner import LiveData

    for name, value in values.items():
        if isinstance(value, LiveData):
            raise ValueError("live tf.data datasets cannot be sent to worker processes: with executor 'local' or "
                             "'ray' pass a DataSpec or a picklable factory returning (train, validation) as "
                             "train_data, and validation_data=None")
        try:
            pickle.dumps(value)
        except Exception as e:  # noqa: BLE001 - pickle raises several types
            raise ValueError(f"{name} cannot be sent to worker processes ({type(e).__name__}: {e}); use a "
                             "module-level function or functools.partial, not a lambda or a local function, "
                             "or executor='in_process'") from None


class ChanceCheck:
    """Warns once when every completed trial so far scores within noise of chance on validation.

    Chance is the share of the most frequent validation class; within noise means at most three
    binomial standard errors above it (and at least one point). Checked from the third completed
    trial on; the validation labels are counted once, when first needed (for a `DataSpec` or a
    factory, by loading the validation split in this process).
    """

    MIN_TRIALS = 3

    def __init__(self, data, num_classes: int = 0):
        self.data = data
        self.num_classes = num_classes
        self.warned = False
        self._band: Optional[Tuple[float, float]] = None

    def _validation_labels(self):
        import numpy as np

        from layernas_tf.runner import LiveData
        from train.spec import DataSpec

        if isinstance(self.data, DataSpec):
            from train.data import load_dataset

            d = self.data
            return load_dataset(d.dataset, d.image_size, d.seed, d.data_dir, max_examples=d.max_examples).labels(
                "validation")
        validation = self.data.validation if isinstance(self.data, LiveData) else self.data()[1]
        return np.concatenate([np.asarray(labels).reshape(-1) for _, labels in validation])

    def band(self) -> Tuple[float, float]:
        """(chance accuracy, highest accuracy still within noise of it)."""
        if self._band is None:
            import numpy as np

            counts = np.bincount(self._validation_labels().astype(np.int64))
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


def upgrade_recorded(searcher_class, recorded: dict) -> dict:
    """A store's recorded config with the searcher settings it predates filled in at their legacy
    values (`Searcher.legacy_settings`): a search recorded before a setting existed is compared as the
    search it was, so resuming it names that setting (e.g. `searcher.pick: recorded 'blend', requested
    'lower'`) and resumes with it passed explicitly."""
    settings = recorded.get("searcher")
    if not isinstance(settings, dict) or recorded.get("searcher_name") != searcher_class.name:
        return recorded
    return {**recorded, "searcher": {**searcher_class.legacy_settings, **settings}}
