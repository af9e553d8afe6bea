"""Adapters running peer libraries' searchers in the ask/tell interface: Optuna's TPE, PyGlove's evolution.

Optuna and PyGlove are optional (benchmark extras): each class imports its library when constructed,
never at module import.

Both run in parallel form: `ask(n)` hands out up to n suggestions while earlier ones are pending.
Optuna's TPE uses its constant-liar option (a running trial counts as a poor result, so parallel
suggestions spread out); PyGlove's regularized evolution proposes children from the population as
it stands (asynchronous evolution). Both are deterministic for a fixed seed and the same interleaving
of asks and tells, which `Searcher.replay_log` reproduces. Constraint-aware, a suggestion that misses the cost target is not
evaluated and costs no query: it is answered inside the library (see each class) and a new one is
asked, up to `max_rejections` times, after which a feasible random encoding is evaluated in its
place. A failed evaluation (reward None) is reported to the library as reward -inf.
"""

from __future__ import annotations

import math
from typing import Dict, List

from layernas_tf.search.base import Searcher, Trial
from layernas_tf.search.baselines import random_encoding
from layernas_tf.search.problem import Encoding, Problem


def _violation(problem: Problem, encoding: Encoding) -> float:
    """How far the cost is outside the target (<= 0 when it meets it)."""
    cost = problem.cost_of(encoding)
    return max(cost - problem.max_cost, problem.min_cost - cost)


class OptunaTPE(Searcher):
    """Optuna's TPESampler through its ask/tell API; one categorical parameter per layer.

    A rejected suggestion is still an Optuna trial, so TPE's "bad" density learns to avoid the
    infeasible region. infeasible="constraint" (default) tells it the value -inf with its constraint
    violation set (`Trial.set_constraint`), so TPE ranks infeasible trials by how far they miss the
    target; infeasible="penalty" tells it -inf only. The two differ only while fewer feasible trials
    are known than TPE's "good" quantile holds; on NAS-Bench-Macro (targets with 0.7%, 5% and 43% of
    the space feasible) they found equally good answers at the same speed.
    Rejected trials count towards `n_startup_trials` and make every later suggestion slower (Optuna's
    cost per suggestion grows with the study), hence a small `max_rejections`.

    The TPE defaults are Optuna's (multivariate TPE for one objective, 10 random startup trials,
    24 expected-improvement candidates). A 400-query study with a target half the space meets takes
    about 2-3 s, mostly Optuna's per-trial bookkeeping; n_ei_candidates=8 halves that at a small
    cost in answer quality.
    """

    name = "optuna_tpe"

    def __init__(
        self,
        problem: Problem,
        budget: int,
        seed: int = 0,
        constraint_aware: bool = True,
        infeasible: str = "constraint",
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = True,
        max_rejections: int = 20,
    ):
        import optuna

        super().__init__(problem, budget, seed)
        if infeasible not in ("constraint", "penalty"):
            raise ValueError(f"infeasible must be 'constraint' or 'penalty', got {infeasible!r}")
        if max_rejections < 1:
            raise ValueError(f"max_rejections must be >= 1, got {max_rejections}")
        self.constraint_aware = constraint_aware
        self.infeasible = infeasible
        self.n_startup_trials = int(n_startup_trials)
        self.n_ei_candidates = int(n_ei_candidates)
        self.multivariate = bool(multivariate)
        self.max_rejections = int(max_rejections)
        # Optuna logs every finished trial at INFO; rejected suggestions alone would flood the log.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=self.n_startup_trials, n_ei_candidates=self.n_ei_candidates,
            multivariate=self.multivariate, constant_liar=True)
        self._study = optuna.create_study(direction="maximize", sampler=sampler)
        self._trials: Dict[Encoding, list] = {}  # Optuna trials handed out and not yet told, per encoding

    def settings(self) -> dict:
        return {"constraint_aware": self.constraint_aware, "infeasible": self.infeasible,
                "n_startup_trials": self.n_startup_trials, "n_ei_candidates": self.n_ei_candidates,
                "multivariate": self.multivariate, "max_rejections": self.max_rejections}

    def _suggest(self, trial) -> Encoding:
        return tuple(trial.suggest_categorical(f"layer{i}", list(range(n)))
                     for i, n in enumerate(self.problem.num_options))

    def _propose(self, n: int) -> List[Encoding]:
        return [self._propose_one() for _ in range(n)]

    def _propose_one(self) -> Encoding:
        for _ in range(self.max_rejections if self.constraint_aware else 1):
            trial = self._study.ask()
            encoding = self._suggest(trial)
            if not self.constraint_aware or self.problem.feasible(encoding):
                self._trials.setdefault(encoding, []).append(trial)
                return encoding
            if self.infeasible == "constraint":
                trial.set_constraint("cost", _violation(self.problem, encoding))
            self._study.tell(trial, -math.inf)
        # TPE keeps missing the target: evaluate a feasible random encoding, as an Optuna trial.
        encoding = random_encoding(self.problem, self.rng)
        self._study.enqueue_trial({f"layer{i}": o for i, o in enumerate(encoding)})
        trial = self._study.ask()
        self._suggest(trial)
        self._trials.setdefault(encoding, []).append(trial)
        return encoding

    def _observe(self, trial: Trial) -> None:
        optuna_trial = self._trials[trial.encoding].pop(0)
        if self.constraint_aware and self.infeasible == "constraint":
            optuna_trial.set_constraint("cost", _violation(self.problem, trial.encoding))
        self._study.tell(optuna_trial, -math.inf if trial.reward is None else trial.reward)


class PyGloveEvolution(Searcher):
    """PyGlove's regularized evolution (`pg.evolution.regularized_evolution`) as a DNA generator.

    The search space is `pg.List([pg.oneof(range(n)) for n in num_options])`; selection, mutation
    (`pg.evolution.mutators.Uniform`, which redraws one layer and may redraw the same option) and
    aging are PyGlove's, all seeded with `seed`. PyGlove's tournament samples without replacement, so
    it needs 2 <= tournament_size <= population_size.

    Constraint-aware: a rejected proposal is simply dropped, never fed back: the population does not
    change, so the next `propose()` runs a fresh tournament and mutation (or draws the next random
    initial member). After `max_rejections` drops, a feasible random encoding is evaluated in its
    place, carrying the dropped proposal's bookkeeping metadata so PyGlove files it in the same slot.
    """

    name = "pyglove_evolution"

    def __init__(
        self,
        problem: Problem,
        budget: int,
        seed: int = 0,
        constraint_aware: bool = True,
        population_size: int = 10,
        tournament_size: int = 3,
        max_rejections: int = 20,
    ):
        import logging

        import pyglove as pg

        # PyGlove logs one INFO line per run to the root logger; give it its own, quieter logger.
        quiet = logging.getLogger("pyglove")
        quiet.setLevel(logging.WARNING)
        pg.logging.set_logger(quiet)
        super().__init__(problem, budget, seed)
        if not 2 <= tournament_size <= population_size:
            raise ValueError(f"PyGlove needs 2 <= tournament_size <= population_size, got "
                             f"{tournament_size}, {population_size}")
        if max_rejections < 1:
            raise ValueError(f"max_rejections must be >= 1, got {max_rejections}")
        self.constraint_aware = constraint_aware
        self.population_size = int(population_size)
        self.tournament_size = int(tournament_size)
        self.max_rejections = int(max_rejections)
        self._pg = pg
        self._spec = pg.dna_spec(pg.List([pg.oneof(range(n)) for n in problem.num_options]))
        # The mutator's seed must be set too: unseeded, it draws from the global `random` module.
        self._generator = pg.evolution.regularized_evolution(
            mutator=pg.evolution.mutators.Uniform(seed=seed), population_size=self.population_size,
            tournament_size=self.tournament_size, seed=seed)
        self._generator.setup(self._spec)
        self._dnas: Dict[Encoding, list] = {}  # DNA handed out and not yet fed back, per encoding

    def settings(self) -> dict:
        return {"constraint_aware": self.constraint_aware, "population_size": self.population_size,
                "tournament_size": self.tournament_size, "max_rejections": self.max_rejections}

    def _propose(self, n: int) -> List[Encoding]:
        return [self._propose_one() for _ in range(n)]

    def _propose_one(self) -> Encoding:
        for _ in range(self.max_rejections if self.constraint_aware else 1):
            dna = self._generator.propose()
            encoding = tuple(dna.to_numbers())
            if not self.constraint_aware or self.problem.feasible(encoding):
                self._dnas.setdefault(encoding, []).append(dna)
                return encoding
        # Evolution keeps missing the target: evaluate a feasible random encoding in the slot of the
        # last dropped proposal (PyGlove's feedback needs its proposal and generation metadata).
        encoding = random_encoding(self.problem, self.rng)
        replacement = self._pg.DNA.from_numbers(list(encoding), self._spec)
        for key, value in dna.metadata.items():
            replacement.set_metadata(key, value)
        self._dnas.setdefault(encoding, []).append(replacement)
        return encoding

    def _observe(self, trial: Trial) -> None:
        dna = self._dnas[trial.encoding].pop(0)
        self._generator.feedback(dna, -math.inf if trial.reward is None else trial.reward)

    @property
    def population(self) -> List[tuple]:
        """(encoding, reward) of the current population, oldest first."""
        get_fitness = self._pg.evolution.base.get_fitness
        return [(tuple(d.to_numbers()), get_fitness(d)) for d in self._generator.population]
