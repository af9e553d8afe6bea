"""The ask/tell interface every searcher implements, and the trial record it is told.

A searcher proposes encodings (`ask`) and is told their rewards (`tell`). Its state is rebuilt by
replaying the (encoding, cost, reward) log into a fresh searcher with the same settings and seed:
searchers are deterministic given their seed and the results they are told, and their proposals do
not depend on how asks and tells were interleaved (a sequential searcher proposes nothing new while
a result is pending), so the log alone is enough.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Dict, Iterable, List, Optional, Sequence

from layernas_tf.search.problem import Encoding, Problem


@dataclasses.dataclass
class Trial:
    """One evaluated candidate. reward None means the evaluation failed."""

    encoding: Encoding
    cost: float
    reward: Optional[float]

    def to_json(self) -> dict:
        return {"encoding": list(self.encoding), "cost": self.cost, "reward": self.reward}

    @classmethod
    def from_json(cls, data: dict) -> "Trial":
        return cls(tuple(data["encoding"]), float(data["cost"]), None if data["reward"] is None else float(data["reward"]))


@dataclasses.dataclass
class HandOut:
    """One logged hand-out: the encoding, its reward (None: failed or not told), how many results had
    been told when it was handed out, and the position of its own result in the telling order (None:
    still running)."""

    encoding: Encoding
    reward: Optional[float]
    told_before: int
    told_order: Optional[int]


class Searcher:
    """Base class: bookkeeping of trials, budget, best feasible answer, replay.

    Subclasses implement `_propose(n)` returning up to n new encodings (may return fewer, or [] when
    they are finished), and may override `_observe(trial)` and `best()`.
    """

    name = "searcher"
    # Settings added after searches were recorded, each with the value that reproduces a search recorded
    # before it existed: a stored search without the key is compared as if it had recorded that value.
    legacy_settings: Dict[str, object] = {}
    # Whether an encoding proposed again asks for a fresh evaluation (another training, with another
    # seed) rather than the result it already had: executors then train it again.
    repeats_are_replicates = False

    def __init__(self, problem: Problem, budget: int, seed: int = 0):
        if budget < 1:
            raise ValueError(f"budget must be >= 1 query, got {budget}")
        self.problem = problem
        self.budget = int(budget)
        self.seed = seed
        self.rng = random.Random(seed)
        self.trials: List[Trial] = []
        self.pending: List[Encoding] = []
        self._told: Dict[Encoding, Optional[float]] = {}  # the last reward told per encoding
        self.handouts: List[HandOut] = []  # every proposal in ask order, with when it was told
        self._untold: Dict[Encoding, List[int]] = {}  # encoding -> indices of its untold hand-outs
        self._finished = False

    # -- ask / tell ---------------------------------------------------------------------------
    def ask(self, n: int = 1) -> List[Encoding]:
        """Up to `n` encodings to evaluate next ([] when the search is over).

        Encodings handed out and not yet told count against the budget. An empty list while results
        are pending means "wait for them" (some searchers need every result of a batch first);
        `done` says when the search is over.
        """
        room = self.budget - len(self.trials) - len(self.pending)
        if n <= 0 or room <= 0 or self._finished:
            return []
        proposals = self._propose(min(n, room))[: min(n, room)]
        if not proposals and not self.pending:
            self._finished = True
        self.pending.extend(proposals)
        for p in proposals:
            self._untold.setdefault(tuple(p), []).append(len(self.handouts))
            self.handouts.append(HandOut(tuple(p), None, len(self.trials), None))
        return list(proposals)

    def tell(self, encoding: Sequence[int], reward: Optional[float]) -> Trial:
        """Record the reward of an encoding returned by `ask` (None or NaN: the evaluation failed)."""
        encoding = tuple(encoding)
        if reward is not None and math.isnan(reward):
            reward = None
        try:
            self.pending.remove(encoding)
        except ValueError:
            raise ValueError(f"tell() got {encoding}, which was not handed out by ask()") from None
        trial = Trial(encoding, self.problem.cost_of(encoding), None if reward is None else float(reward))
        handout = self.handouts[self._untold[encoding].pop(0)]
        handout.reward, handout.told_order = trial.reward, len(self.trials)
        self.trials.append(trial)
        self._told[encoding] = trial.reward
        self._observe(trial)
        return trial

    @property
    def done(self) -> bool:
        return self._finished or len(self.trials) >= self.budget

    # -- answer -----------------------------------------------------------------------------
    def best(self) -> Optional[Trial]:
        """The evaluated candidate that meets the target with the highest `selection_score` (None if none)."""
        feasible = [t for t in self.trials if t.reward is not None and self.problem.feasible(t.encoding)]
        return max(feasible, key=lambda t: (self.selection_score(t.encoding), t.reward), default=None)

    def selection_score(self, encoding: Sequence[int]) -> float:
        """How this searcher ranks an evaluated candidate when it picks its answer (higher is better).

        The base ranks by the reward it was told; a searcher with a noise-aware estimate overrides it.
        -inf for a candidate that was not evaluated or failed.
        """
        reward = self._told.get(tuple(encoding))
        return float("-inf") if reward is None else reward

    # -- state --------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """Plain-data state: settings, the trials in telling order and the hand-out log (enough to rebuild
        by `replay_log`, however asks and tells were interleaved)."""
        return {"name": self.name, "budget": self.budget, "seed": self.seed, "settings": self.settings(),
                "trials": [t.to_json() for t in self.trials],
                "handouts": [dataclasses.asdict(h) for h in self.handouts]}

    def settings(self) -> dict:
        return {}

    def replay(self, trials: Iterable[Trial]) -> None:
        """Rebuild state from a sequential log: each trial handed out after every earlier one was told.

        Raises:
          ValueError: if the log diverges from what this searcher proposes (other settings or seed).
        """
        self.replay_log(HandOut(t.encoding, t.reward, i, i) for i, t in enumerate(trials))

    def replay_log(self, handouts: Iterable["HandOut"]) -> None:
        """Rebuild state from a log of concurrent asks and tells, as a coordinator recorded it.

        `handouts` are in hand-out order; each says how many results had been told when it was handed
        out (`told_before`) and where its own result came in the telling order (`told_order`, None while
        it is still running). Results are told in their recorded order, each before the first hand-out
        that saw it, so the searcher sees the same interleaving as the recorded run. Encodings handed
        out but never told stay in `pending`: they were running when the process stopped.

        Raises:
          ValueError: if the log diverges from what this searcher proposes (other settings or seed).
        """
        handouts = list(handouts)
        told = sorted((h for h in handouts if h.told_order is not None), key=lambda h: h.told_order)
        asked: Dict[Encoding, int] = {}  # asked during replay, not yet matched to a logged hand-out
        next_tell = 0
        for number, handout in enumerate(handouts):
            while next_tell < len(told) and next_tell < handout.told_before:
                self.tell(told[next_tell].encoding, told[next_tell].reward)
                next_tell += 1
            encoding = tuple(handout.encoding)
            while not asked.get(encoding):
                proposals = self.ask(1)
                if not proposals:
                    raise ValueError(
                        f"replay diverged at hand-out {number}: the log has {encoding}, which this searcher does "
                        "not propose; were the settings, seed or target changed?")
                for p in proposals:
                    asked[p] = asked.get(p, 0) + 1
            asked[encoding] -= 1
        for handout in told[next_tell:]:
            self.tell(handout.encoding, handout.reward)

    # -- hooks --------------------------------------------------------------------------------
    def _propose(self, n: int) -> List[Encoding]:
        raise NotImplementedError

    def _observe(self, trial: Trial) -> None:
        pass
