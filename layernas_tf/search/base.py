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


class Searcher:
    """Base class: bookkeeping of trials, budget, best feasible answer, replay.

    Subclasses implement `_propose(n)` returning up to n new encodings (may return fewer, or [] when
    they are finished), and may override `_observe(trial)` and `best()`.
    """

    name = "searcher"

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
        """Plain-data state: settings and the trial log (enough to rebuild by replay)."""
        return {"name": self.name, "budget": self.budget, "seed": self.seed, "settings": self.settings(),
                "trials": [t.to_json() for t in self.trials]}

    def settings(self) -> dict:
        return {}

    def replay(self, trials: Iterable[Trial]) -> None:
        """Rebuild state by re-telling a logged sequence of trials, asking one encoding at a time.

        Encodings asked during replay but absent from the log stay in `pending`: they were handed out
        when the process stopped and should be evaluated first on resume.

        Raises:
          ValueError: if the log diverges from what this searcher proposes (other settings or seed).
        """
        for trial in trials:
            while tuple(trial.encoding) not in self.pending:
                if not self.ask(1):
                    raise ValueError(
                        f"replay diverged at trial {len(self.trials)}: the log has {tuple(trial.encoding)}, which this "
                        "searcher does not propose; were the settings, seed or target changed?"
                    )
            self.tell(trial.encoding, trial.reward)

    # -- hooks --------------------------------------------------------------------------------
    def _propose(self, n: int) -> List[Encoding]:
        raise NotImplementedError

    def _observe(self, trial: Trial) -> None:
        pass
