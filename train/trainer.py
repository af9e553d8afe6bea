"""Proxy and final training of one Keras model, with the wall time split into tracing, steps and evaluation.

`compile_model` is the default compile (Adam, sparse categorical cross-entropy, accuracy); callers with
their own pipeline compile the model themselves and only use `fit_and_evaluate`. A run whose loss
becomes NaN or infinite raises `TrialFailure`, which the search records as a failed trial.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dataclasses
import math
import statistics
import time
import warnings
from typing import Dict, FrozenSet, List, Optional

import keras
import tensorflow as tf

from train.spec import OPTIMIZERS, TrainSettings  # noqa: F401 - re-exported
# fit() defaults to shuffle=True and warns that a tf.data input is not reshuffled by it; ours are.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")


def _gradient_registry() -> Dict[str, dict]:
    from tensorflow.python.framework import ops

    return ops._gradient_registry._registry  # pylint: disable=protected-access


def custom_gradient_names() -> FrozenSet[str]:
    """The graph-mode custom gradients registered in this process so far (see `release_custom_gradients`)."""
    return frozenset(n for n in _gradient_registry() if n.startswith("CustomGradient-"))


def release_custom_gradients(before: FrozenSet[str]) -> int:
    """Unregisters the graph-mode custom gradients registered since `custom_gradient_names()` returned
    `before`; returns how many.

    Each traced train step registers one: Keras's TensorFlow optimizer all-reduces the gradients
    through the replica context even on one device, and `tf.custom_gradient` in graph mode adds its
    gradient function to TensorFlow's process-wide gradient registry, which never drops it. That
    function closes over the step's gradient tensors, so the traced graphs of every model trained in
    the process stay alive: about 70 MB per trial of `cifar_mobilenet_v2`. Call it once the trial's
    graphs are used for the last time.
    """
    registry = _gradient_registry()
    stale = [n for n in registry if n.startswith("CustomGradient-") and n not in before]
    for name in stale:
        del registry[name]
    return len(stale)


class TrialFailure(RuntimeError):
    """Training produced no usable model (NaN or infinite loss)."""


@dataclasses.dataclass
class TrainResult:
    """Validation metrics of a trained model and where its wall time went (seconds)."""

    val_accuracy: float
    val_loss: float
    train_loss: float
    timings: Dict[str, float]


def count_batches(dataset: tf.data.Dataset) -> int:
    """Batches per epoch of a batched `dataset`: its cardinality, or counted once when unknown
    (generator-backed or filtered pipelines). At least 1."""
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError("the training dataset repeats forever; pass a finite dataset (one epoch per pass)")
    if cardinality < 0:
        cardinality = int(dataset.reduce(0, lambda count, _: count + 1))
    return max(1, cardinality)


def compile_model(model: keras.Model, settings: TrainSettings, steps_per_epoch: int) -> keras.Model:
    """Compile `model` with the default optimizer, loss and accuracy metric for integer labels.

    The learning rate decays by cosine over `settings.epochs * steps_per_epoch` steps, so
    `steps_per_epoch` must be the real number of batches per epoch (see `count_batches`).

    Raises:
      ValueError: steps_per_epoch below 1.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch={steps_per_epoch} must be at least 1 (batches per epoch)")
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, max(1, settings.epochs * steps_per_epoch))
    if settings.optimizer == "adam":
        optimizer = keras.optimizers.Adam(schedule)
    else:
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"],
                  steps_per_execution=settings.steps_per_execution)
    return model


class PhaseTimer(keras.callbacks.Callback):
    """Wall time of each compiled train / test call, to split tracing from steady-state steps.

    The first call of a compiled function traces and compiles it; tracing time is estimated as the
    first call's time minus the median of the later calls.
    """

    def __init__(self):
        super().__init__()
        self.calls: Dict[str, List[float]] = {"train": [], "test": []}
        self._start = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.calls["train"].append(time.perf_counter() - self._start)

    def on_test_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_test_batch_end(self, batch, logs=None):
        self.calls["test"].append(time.perf_counter() - self._start)

    def trace_seconds(self, phase: str) -> float:
        calls = self.calls[phase]
        if len(calls) < 2:
            return 0.0
        return max(0.0, calls[0] - statistics.median(calls[1:]))


def build_training_state(model: keras.Model, train: tf.data.Dataset) -> bool:
    """Create a compiled model's optimizer and metric variables before its first traced step, from
    the element spec of `train` (no batch is read). Returns whether it did.

    Without a distribution strategy Keras creates them lazily, inside the first trace of the train
    step; a `tf.function` whose first trace creates variables is traced a second time, so every
    trial built its train graph twice (about 3.5 s of a 3-epoch `cifar_mobilenet_v2` trial on one
    core). Keras builds this state up front itself when it runs under a strategy; this is the same
    symbolic build. A model without it (another Keras) is left to build lazily.
    """
    symbolic_build = getattr(model, "_symbolic_build", None)
    spec = getattr(train, "element_spec", None)
    if symbolic_build is None or spec is None or getattr(model, "optimizer", None) is None:
        return False
    try:
        symbolic_build(data_batch=spec)
    except TypeError:  # a Keras whose symbolic build takes other arguments
        return False
    return True


def fit_and_evaluate(model: keras.Model, train: tf.data.Dataset, validation: tf.data.Dataset, epochs: int,
                     callbacks: Optional[list] = None, fit_kwargs: Optional[dict] = None) -> TrainResult:
    """Fit a compiled `model` on batched `train`, then evaluate it on batched `validation`.

    Returns the validation accuracy and loss, the last training loss and timings:
    `trace` (building the optimizer and metric state, and the first compiled train and test calls
    beyond a steady call), `train` (the other fit time),
    `eval` (the other evaluation time).

    Raises:
      TrialFailure: the training or validation loss is NaN or infinite.
      ValueError: the model was compiled without an 'accuracy' metric.
    """
    timer = PhaseTimer()
    fit_kwargs = dict(fit_kwargs or {})
    callbacks = [timer, keras.callbacks.TerminateOnNaN(), *(callbacks or []), *fit_kwargs.pop("callbacks", [])]
    start = time.perf_counter()
    build_training_state(model, train)
    build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    history = model.fit(train, epochs=epochs, verbose=0, callbacks=callbacks, **fit_kwargs)
    fit_seconds = time.perf_counter() - start
    losses = history.history.get("loss", [])
    if not losses or any(not math.isfinite(v) for v in losses):
        raise TrialFailure(f"training loss is not finite after {len(losses)} epoch(s): {losses[-1:]}")
    start = time.perf_counter()
    metrics = model.evaluate(validation, verbose=0, return_dict=True, callbacks=[timer])
    eval_seconds = time.perf_counter() - start
    if "accuracy" not in metrics:
        raise ValueError(f"the model must be compiled with metrics=['accuracy']; evaluate returned {sorted(metrics)}")
    if not math.isfinite(metrics["loss"]):
        raise TrialFailure(f"validation loss is not finite: {metrics['loss']}")
    trace_train, trace_test = timer.trace_seconds("train"), timer.trace_seconds("test")
    timings = {"trace": build_seconds + trace_train + trace_test, "train": fit_seconds - trace_train,
               "eval": eval_seconds - trace_test}
    return TrainResult(float(metrics["accuracy"]), float(metrics["loss"]), float(losses[-1]), timings)
