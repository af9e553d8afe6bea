"""The coordinator: the one loop that decides, stores and dispatches.

It asks the searcher for as many candidates as the executor has free slots, records each as
`running` in the store (with how many results the searcher had been told at that moment), hands its
spec to the executor, and, as outcomes come back in completion order, updates the trial's row in
one transaction before telling the searcher. It is the only writer of the store. On start it rebuilds
the searcher by replaying the store's log with its recorded interleaving of asks and tells, and hands
out again the trials that were running when the last process stopped.

Pure Python: no TensorFlow. Specs are built by a `make_spec(number, encoding)` callable and run by an
executor (`layernas_tf.executors`); neither knows anything of search.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging

from layernas_tf.search.base import HandOut, Searcher
from layernas_tf.store import COMPLETED, FAILED, RUNNING, TrialRecord, TrialStore
from searchspaces.space import SearchSpace


class TooManyFailuresError(RuntimeError):
    """Trials failed `max_consecutive_failures` times in a row: most likely a bug, not a bad candidate."""


def resume_log(stored: List[TrialRecord], parse) -> List[HandOut]:
    """The searcher's replay log of stored trials, in hand-out order: each with its reward (None unless
    completed), how many results had been told when it was handed out, and its place in the telling
    order (None while running). Stores written before these were recorded were sequential."""
    return [HandOut(parse(t.encoding), t.reward if t.status == COMPLETED else None,
                    t.number if t.told_before is None else t.told_before,
                    None if t.status == RUNNING else (t.number if t.told_order is None else t.told_order))
            for t in stored]


@dataclasses.dataclass
class CoordinatorResult:
    trials: List[TrialRecord]
    resumed_trials: int
    store_seconds: List[float]


class Coordinator:
    """Runs a search to its end on an executor, durably.

    Args:
      searcher: the searcher (fresh: the coordinator replays the store into it).
      store: the trial store of the search directory.
      executor: where trials run (`slots`, `submit`, `collect`).
      space: the search space (encodings <-> strings).
      make_spec: `(number, encoding) -> TrialSpec`.
      describe: `encoding -> (cost, madds, params)`, recorded with each trial.
      max_consecutive_failures: stop with `TooManyFailuresError` after this many failures in a row.
      trial_retries: run a trial again this many times when its worker dies under it.
      on_trial: called with each finished `TrialRecord` and the current best record (or None).
      on_running: called with the number of trials running whenever it changes.
      on_completed: called with the rewards of every completed trained trial after each completion.
    """

    def __init__(self, searcher: Searcher, store: TrialStore, executor, space: SearchSpace,
                 make_spec: Callable, describe: Callable[[Sequence[int]], Tuple[float, int, int]], *,
                 max_consecutive_failures: int = 3, trial_retries: int = 1,
                 on_trial: Optional[Callable[[TrialRecord, Optional[TrialRecord]], None]] = None,
                 on_running: Optional[Callable[[int], None]] = None,
                 on_completed: Optional[Callable[[List[float]], None]] = None):
        if max_consecutive_failures < 1 or trial_retries < 0:
            raise ValueError(f"max_consecutive_failures={max_consecutive_failures} must be >= 1 and "
                             f"trial_retries={trial_retries} >= 0")
        self.searcher, self.store, self.executor, self.space = searcher, store, executor, space
        self.make_spec, self.describe = make_spec, describe
        self.max_consecutive_failures, self.trial_retries = max_consecutive_failures, trial_retries
        self.on_trial, self.on_running, self.on_completed = on_trial, on_running, on_completed
        self.trained: Dict[str, TrialRecord] = {}  # encoding string -> its finished training
        self.running: Dict[int, TrialRecord] = {}  # trial number -> running trial
        self.waiting: Dict[str, List[TrialRecord]] = {}  # repeats of a running encoding
        self.trainings: Dict[str, int] = {}  # encoding string -> trials that trained it (replicates included)
        self.replicate: Dict[int, int] = {}  # trial number -> which training again of its encoding it is (> 0)
        self.store_seconds: List[float] = []
        self.told = 0
        self.next_number = 0
        self.consecutive_failures = 0

    # -- resume ---------------------------------------------------------------------------------
    def _resume(self) -> List[TrialRecord]:
        stored = self.store.trials()
        handouts = resume_log(stored, self.space.parse)
        self.searcher.replay_log(handouts)
        self.told = sum(h.told_order is not None for h in handouts)
        self.next_number = len(stored)
        for t in stored:
            if t.repeat_of is None:
                self._count_training(t)
            if t.repeat_of is None and t.status != RUNNING:
                self.trained[t.encoding] = t
        running = [t for t in stored if t.status == RUNNING]
        for t in running:
            if t.repeat_of is None:
                self.running[t.number] = t
                self.executor.submit(self._spec(t))
        for t in running:
            if t.repeat_of is None:
                continue
            if t.encoding in self.trained:
                self._finish_repeat(t)
            elif any(r.encoding == t.encoding for r in self.running.values()):
                self.waiting.setdefault(t.encoding, []).append(t)
            else:  # its original is gone: train it as a trial of its own
                t.repeat_of = None
                self.running[t.number] = t
                self.executor.submit(self._spec(t))
        if stored:
            logging.info("resumed %s: %d stored trials replayed (%d handed out again), none completed retrained",
                         self.store.dir, len(stored), len(self.running))
        return stored

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> CoordinatorResult:
        """Search until the searcher is done and nothing runs; returns every stored trial.

        Raises:
          TooManyFailuresError: after `max_consecutive_failures` failed trials in a row (every trial is
            stored; running ones are handed out again by a rerun).
        """
        stored = self._resume()
        while True:
            self._hand_out()
            if not self.running:
                break
            self._notify_running()
            for outcome in self.executor.collect():
                self._finish(outcome)
        return CoordinatorResult(self.store.trials(), len(stored), self.store_seconds)

    def _hand_out(self) -> None:
        while not self.searcher.done and self.executor.running < self.executor.slots:
            proposals = self.searcher.ask(self.executor.slots - self.executor.running)
            if not proposals:
                return
            for encoding in proposals:
                self._hand_out_one(tuple(encoding))

    def _hand_out_one(self, encoding) -> None:
        key = self.space.to_string(encoding)
        cost, madds, params = self.describe(encoding)
        record = TrialRecord(self.next_number, key, cost, madds, params, RUNNING, told_before=self.told)
        self.next_number += 1
        if getattr(self.searcher, "repeats_are_replicates", False) and key in self.trainings:
            # the same network again, to be evaluated again: trained anew with its next seed
            self._write(self.store.add, record)
            self._count_training(record)
            self.running[record.number] = record
            self.executor.submit(self._spec(record))
            return
        if key in self.trained:  # the same network again: answered from the store
            record.repeat_of = self.trained[key].number
            self._write(self.store.add, record)
            self._finish_repeat(record)
            return
        original = next((r for r in self.running.values() if r.encoding == key), None)
        if original is not None:  # running now: answered when it finishes
            record.repeat_of = original.number
            self._write(self.store.add, record)
            self.waiting.setdefault(key, []).append(record)
            return
        self._write(self.store.add, record)
        self._count_training(record)
        self.running[record.number] = record
        self.executor.submit(self._spec(record))

    def _count_training(self, record: TrialRecord) -> None:
        """Count a trial that trains its network; the second and later ones are replicates."""
        done = self.trainings.get(record.encoding, 0)
        self.trainings[record.encoding] = done + 1
        if done:
            self.replicate[record.number] = done

    def _spec(self, record: TrialRecord):
        """The spec of a trial that trains: `make_spec`, with its replicate number when it is one."""
        spec = self.make_spec(record.number, self.space.parse(record.encoding))
        replicate = self.replicate.get(record.number, 0)
        return dataclasses.replace(spec, replicate=replicate) if replicate else spec

    def _finish(self, outcome) -> None:
        record = self.running[outcome.number]
        if outcome.worker_lost and record.attempts <= self.trial_retries:
            record.error = _joined(record.error, f"attempt {record.attempts}: {outcome.error}")
            record.attempts += 1
            logging.warning("trial %d %s: %s; running it again (attempt %d of %d)", record.number, record.encoding,
                            outcome.error, record.attempts, self.trial_retries + 1)
            self._write(self.store.update, record)
            self.executor.submit(self._spec(record))
            return
        del self.running[outcome.number]
        record.status, record.reward = outcome.status, outcome.reward
        record.timings = dict(outcome.timings)
        record.host, record.device = outcome.host, outcome.device
        if outcome.status == FAILED:
            record.error = _joined(record.error, outcome.error if record.attempts == 1
                                   else f"attempt {record.attempts}: {outcome.error}")
        record.told_order = self.told
        self._write(self.store.update, record)
        self._tell(record)
        self.trained[record.encoding] = record
        if record.status == FAILED:
            self.consecutive_failures += 1
            logging.warning("trial %d %s failed: %s", record.number, record.encoding, record.error[:500])
        else:
            self.consecutive_failures = 0
            if self.on_completed is not None:
                self.on_completed([t.reward for t in self.trained.values() if t.status == COMPLETED])
        for repeat in self.waiting.pop(record.encoding, []):
            self._finish_repeat(repeat)
        if self.consecutive_failures >= self.max_consecutive_failures:
            raise TooManyFailuresError(
                f"{self.consecutive_failures} trials failed in a row (max_consecutive_failures="
                f"{self.max_consecutive_failures}), which points at a bug rather than bad candidates. The last one, "
                f"trial {record.number} {record.encoding}, failed with: {record.error[:1000]}. All "
                f"{self.next_number} trials so far are stored in {self.store.dir}; fix the cause and rerun with the "
                f"same search directory to resume.")

    def _finish_repeat(self, record: TrialRecord) -> None:
        """Answer a repeated proposal from the trial that trained its network."""
        original = self.trained[record.encoding]
        record.repeat_of = original.number
        record.status, record.reward, record.error = original.status, original.reward, original.error
        record.timings = {}
        record.told_order = self.told
        self._write(self.store.update, record)
        self._tell(record)

    def _tell(self, record: TrialRecord) -> None:
        self.told += 1
        self.searcher.tell(self.space.parse(record.encoding), record.reward if record.status == COMPLETED else None)
        if self.on_trial is not None:
            best = self.searcher.best()
            self.on_trial(record, self.trained.get(self.space.to_string(best.encoding)) if best else None)

    def _write(self, method, record: TrialRecord) -> None:
        import time

        start = time.perf_counter()
        method(record)
        self.store_seconds.append(time.perf_counter() - start)

    def _notify_running(self) -> None:
        if self.on_running is not None:
            self.on_running(len(self.running))


def _joined(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second
