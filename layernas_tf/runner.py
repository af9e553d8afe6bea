"""The trial runner: one picklable `TrialSpec` in, one picklable `TrialOutcome` out.

It is the one place where a candidate is built, trained and scored, for search trials and for the
final training of winners alike, in the driver process or in any worker (local process or Ray task).
A worker rebuilds its data from the spec (a `DataSpec`, or the caller's picklable dataset factory);
tf.data objects never cross a process boundary. Every exception inside a trial becomes a failed
outcome with the error, so an executor only ever moves specs and outcomes.

This module imports TensorFlow only inside `run_trial`, so the coordinator can build specs without it.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import socket
import time
import zlib
from typing import Any, Dict, List, Optional, Tuple

from searchspaces.space import SearchSpace
from train.spec import DataSpec, TrainSettings

COMPLETED = "completed"
FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class LiveData:
    """The caller's own tf.data pipelines (batched (images, labels)): usable in process only."""

    train: Any
    validation: Any


@dataclasses.dataclass
class TrialSpec:
    """Everything a worker needs to train and score one candidate.

    Attributes:
      number: the trial's number (hand-out order).
      space: the search space (a picklable value).
      encoding: the candidate.
      data: a `DataSpec`; or a picklable callable returning (train, validation) batched tf.data
        datasets, called in the worker; or `LiveData` (in process only).
      training: `TrainSettings` for the default compile, or a callable `compile_fn(model)` (picklable,
        i.e. a module-level function or a `functools.partial` of one, for other processes).
      epochs: training epochs.
      input_size, num_classes: image side and classes of the candidate.
      bn_momentum: BatchNormalization momentum of the candidate.
      seed: the search seed; the candidate trains with `trial_seed(seed, encoding string, replicate)`.
      fit_kwargs: extra `model.fit` keyword arguments (in process: callbacks are live objects).
      final: final training: the whole train split, no proxy subset.
      return_weights: send the trained weights back in the outcome (final training on a remote node).
      replicate: 0 for a candidate's first training; n for its n-th training again (another seed), when
        the searcher asks for a candidate again to evaluate it again (`Searcher.repeats_are_replicates`).
    """

    number: int
    space: SearchSpace
    encoding: Tuple[int, ...]
    data: Any
    training: Any
    epochs: int
    input_size: int
    num_classes: int
    bn_momentum: float = 0.9
    seed: int = 0
    fit_kwargs: Optional[dict] = None
    final: bool = False
    return_weights: bool = False
    replicate: int = 0

    @property
    def key(self) -> str:
        return self.space.to_string(self.encoding)


@dataclasses.dataclass
class TrialOutcome:
    """What came of a `TrialSpec`.

    `worker_lost` marks a trial whose process died under it (SIGKILL, the OOM killer, a segfault, a
    lost node): the trial itself may be fine, so the coordinator may retry it.
    """

    number: int
    encoding: Tuple[int, ...]
    status: str
    reward: Optional[float] = None
    metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
    timings: Dict[str, float] = dataclasses.field(default_factory=dict)
    error: str = ""
    host: str = ""
    device: str = ""
    weights: Optional[List[Any]] = None
    worker_lost: bool = False


def trial_seed(seed: int, encoding: str, replicate: int = 0) -> int:
    """The seed a candidate is trained with: fixed by the search seed, the encoding and which of its
    evaluations this is, so a trial trained again (after a crash, or on another worker) starts from the
    same weights and data order, and a replicate (`TrialSpec.replicate`) from others."""
    key = encoding if replicate == 0 else f"{encoding}#{replicate}"
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % (2 ** 31)


def lost_outcome(spec: TrialSpec, cause: str) -> TrialOutcome:
    """The outcome of a trial whose worker died: failed, with the cause, retryable."""
    return TrialOutcome(spec.number, tuple(spec.encoding), FAILED, error=f"WorkerLost: {cause}", worker_lost=True)


_WORKER_SETUP: Dict[str, Any] = {}


def setup_worker_tensorflow(threads: Optional[int] = None, deterministic: bool = True):
    """Prepare TensorFlow in this process once: memory growth on every GPU (so workers sharing a GPU,
    or other processes, can allocate), op determinism, and optionally `threads` intra-op threads.
    Later calls are no-ops. Returns the tensorflow module."""
    from layernas_tf import quiet

    tf = quiet.import_tensorflow()
    if not _WORKER_SETUP:
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # already initialised by the caller's own code
                pass
        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:
                pass
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        gpus = tf.config.list_physical_devices("GPU")
        _WORKER_SETUP.update(tf=tf, device=f"GPU:{os.environ.get('CUDA_VISIBLE_DEVICES', '0')}" if gpus else "CPU")
    return _WORKER_SETUP["tf"]


_DATA_CACHE: Dict[Tuple, Any] = {}


def _pipelines(spec: TrialSpec):
    """(train, validation, steps per epoch) for `spec`; a `DataSpec` is loaded once per process."""
    if isinstance(spec.data, LiveData):
        return spec.data.train, spec.data.validation, None
    if isinstance(spec.data, DataSpec):
        from train.data import load_dataset

        d = spec.data
        key = (d.dataset, d.image_size, d.seed, d.data_dir, d.max_examples)
        if key not in _DATA_CACHE:
            _DATA_CACHE.clear()  # one dataset per worker at a time
            _DATA_CACHE[key] = load_dataset(d.dataset, d.image_size, d.seed, d.data_dir, max_examples=d.max_examples)
        data = _DATA_CACHE[key]
        examples = None if spec.final else d.proxy_examples
        cache = dict(cache=d.cache, cache_memory_mb=d.cache_memory_mb, cache_dir=d.cache_dir)
        train = data.batched("train", d.batch_size, shuffle=True, seed=d.seed, examples=examples, **cache)
        validation = data.batched("validation", d.batch_size, **cache)
        return train, validation, data.steps_per_epoch("train", d.batch_size, examples)
    if callable(spec.data):
        train, validation = spec.data()
        return train, validation, None
    raise TypeError(f"TrialSpec.data must be a DataSpec, LiveData or a callable returning (train, validation); "
                    f"got {type(spec.data).__name__}")


def _compile(spec: TrialSpec, model, train, steps: Optional[int]) -> None:
    from train.trainer import compile_model, count_batches

    if isinstance(spec.training, TrainSettings):
        settings = dataclasses.replace(spec.training, epochs=spec.epochs)
        compile_model(model, settings, steps if steps is not None else count_batches(train))
    elif callable(spec.training):
        spec.training(model)
    else:
        raise TypeError(f"TrialSpec.training must be TrainSettings or a compile_fn(model); "
                        f"got {type(spec.training).__name__}")


def _return_freed_heap() -> None:
    """Hands the heap a trial freed back to the OS (glibc's malloc_trim), so that the process's RSS
    follows what is alive instead of swinging with the allocator's free lists from trial to trial."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def run_trial(spec: TrialSpec) -> TrialOutcome:
    """Build, compile, train and score `spec`'s candidate. Never raises for a failed trial: the
    error is in the outcome (status 'failed')."""
    tf = setup_worker_tensorflow()
    import keras

    from searchspaces.builder import build
    from train.trainer import custom_gradient_names, fit_and_evaluate, release_custom_gradients

    outcome = TrialOutcome(spec.number, tuple(spec.encoding), FAILED, host=socket.gethostname(),
                           device=f"{_WORKER_SETUP.get('device', 'CPU')} pid {os.getpid()}")
    timings = outcome.timings
    model = None
    gradients_before = custom_gradient_names()
    try:
        # Seeded before the pipelines are built: their shuffle takes the global seed as set here, not
        # whatever an earlier trial in this process left, so a trial runs the same in any worker.
        keras.utils.set_random_seed(trial_seed(spec.seed, spec.key, spec.replicate))
        start = time.perf_counter()
        train, validation, steps = _pipelines(spec)
        timings["data"] = time.perf_counter() - start
        start = time.perf_counter()
        model = build(spec.space, spec.encoding, (spec.input_size, spec.input_size, 3), spec.num_classes,
                      bn_momentum=spec.bn_momentum)
        _compile(spec, model, train, steps)
        timings["build"] = time.perf_counter() - start
        result = fit_and_evaluate(model, train, validation, spec.epochs, fit_kwargs=spec.fit_kwargs)
        timings.update(result.timings)
        outcome.metrics = {"val_accuracy": result.val_accuracy, "val_loss": result.val_loss,
                           "train_loss": result.train_loss}
        if spec.return_weights:
            outcome.weights = model.get_weights()
        outcome.status, outcome.reward = COMPLETED, result.val_accuracy
    except Exception as e:  # noqa: BLE001 - NaN, build, data, OOM...: recorded, the search goes on
        outcome.error = f"{type(e).__name__}: {e}"
    finally:
        start = time.perf_counter()
        model = None
        keras.backend.clear_session()
        # The trial's traced graphs are done with: unregister their custom gradients (otherwise they
        # keep every graph alive, see release_custom_gradients), then free the model's cycles now.
        release_custom_gradients(gradients_before)
        gc.collect()
        _return_freed_heap()
        timings["cleanup"] = time.perf_counter() - start
    del tf
    return outcome


def build_with_weights(spec: TrialSpec, weights: List[Any]):
    """The Keras model of `spec`'s candidate with `weights` (from a final-training outcome)."""
    setup_worker_tensorflow()
    from searchspaces.builder import build

    model = build(spec.space, spec.encoding, (spec.input_size, spec.input_size, 3), spec.num_classes,
                  bn_momentum=spec.bn_momentum)
    model.set_weights(weights)
    return model

