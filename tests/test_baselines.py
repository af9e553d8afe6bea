"""Baseline and peer searchers on a synthetic additive problem: budget, constraints, determinism, replay, learning.

The problem: 6 layers x 4 options; cost and value are sums of per-layer tables, the reward is the value
plus small noise, as a re-trained accuracy would be.
"""

import itertools
import json
import random

import pytest

from layernas_tf.search.base import HandOut, Trial
from layernas_tf.search.baselines import (
    PolicyGradient,
    RandomSearch,
    RegularizedEvolution,
    construct_feasible,
)
from layernas_tf.search.problem import Problem

COSTS = [[1, 2, 4, 8], [1, 3, 5, 7], [2, 3, 4, 9], [1, 2, 3, 4], [1, 4, 6, 8], [2, 2, 5, 6]]
VALUES = [[0.0, 0.5, 0.7, 0.8], [0.0, 0.1, 0.9, 0.6], [0.2, 0.4, 0.5, 0.9], [0.0, 0.3, 0.2, 0.6],
          [0.1, 0.2, 0.8, 0.3], [0.0, 0.6, 0.4, 0.7]]
SPACE = list(itertools.product(range(4), repeat=6))


def cost(encoding):
    return sum(COSTS[i][o] for i, o in enumerate(encoding))


def value(encoding):
    return sum(VALUES[i][o] for i, o in enumerate(encoding))


def make_problem(max_cost, min_cost=0.0):
    return Problem(num_options=(4,) * 6, cost=cost, max_cost=max_cost, min_cost=min_cost)


TIGHT = 12  # 1.9% of the 4096 encodings cost at most 12
LOOSE = 24  # 60% of them


def optuna_tpe(problem, budget, seed=0, constraint_aware=True):
    pytest.importorskip("optuna")
    from layernas_tf.search.peers import OptunaTPE

    return OptunaTPE(problem, budget, seed, constraint_aware)


def pyglove_evolution(problem, budget, seed=0, constraint_aware=True):
    pytest.importorskip("pyglove")
    from layernas_tf.search.peers import PyGloveEvolution

    return PyGloveEvolution(problem, budget, seed, constraint_aware)


def reinforce(problem, budget, seed=0, constraint_aware=True):
    return PolicyGradient(problem, budget, seed, constraint_aware, method="reinforce")


def ppo(problem, budget, seed=0, constraint_aware=True):
    return PolicyGradient(problem, budget, seed, constraint_aware, method="ppo")


FACTORIES = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "reinforce": reinforce,
    "ppo": ppo,
    "optuna_tpe": optuna_tpe,
    "pyglove_evolution": pyglove_evolution,
}


def run(searcher, batch=3, seed=0, fail_every=0, stop_after=None):
    """Drive a searcher: ask up to `batch` at a time, tell them in shuffled order, until it stops.

    Every `fail_every`-th evaluation fails (reward None). With `stop_after`, stop once that many have
    been asked and told. Returns the proposals in the order asked.
    """
    rng = random.Random(seed)
    asked = []
    while stop_after is None or len(asked) < stop_after:
        room = batch if stop_after is None else min(batch, stop_after - len(asked))
        encodings = searcher.ask(room)
        assert len(encodings) <= room
        if not encodings:
            break
        asked.extend(encodings)
        rng.shuffle(encodings)
        for encoding in encodings:
            failed = fail_every and len(searcher.trials) % fail_every == fail_every - 1
            searcher.tell(encoding, None if failed else value(encoding) + rng.gauss(0, 0.05))
    return asked


@pytest.mark.parametrize("aware", [True, False])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_spends_exactly_the_budget_and_stops(name, aware):
    searcher = FACTORIES[name](make_problem(LOOSE), budget=23, seed=1, constraint_aware=aware)
    asked = run(searcher, fail_every=7)
    assert len(asked) == len(searcher.trials) == 23
    assert searcher.done and searcher.ask(5) == [] and searcher.pending == []
    best = searcher.best()
    assert best.reward is not None and best.cost <= LOOSE


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_constraint_aware_proposes_only_feasible_encodings(name):
    problem = make_problem(TIGHT)
    aware = run(FACTORIES[name](problem, budget=40, seed=2, constraint_aware=True))
    assert len(aware) == 40 and all(cost(e) <= TIGHT for e in aware)
    unaware = run(FACTORIES[name](problem, budget=40, seed=2, constraint_aware=False))
    assert sum(cost(e) > TIGHT for e in unaware) >= 10


@pytest.mark.parametrize("name", ["random", "evolution", "ppo"])
def test_a_target_met_by_one_encoding_terminates(name):
    # Only the 2 cheapest of the 4096 encodings meet it: rejection sampling fails, the construction finds them.
    problem = make_problem(max_cost=cost((0,) * 6))
    asked = run(FACTORIES[name](problem, budget=5, seed=0))
    assert len(asked) == 5 and set(asked) <= {(0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 1)}


def test_construction_meets_a_band_target():
    problem = make_problem(max_cost=19, min_cost=19)  # 5.6% of the space
    rng = random.Random(0)
    built = [construct_feasible(problem, rng) for _ in range(50)]
    assert all(cost(e) == 19 for e in built)
    assert len(set(built)) > 30  # random, not one fixed answer


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_same_seed_same_proposals_other_seed_other_proposals(name):
    def proposals(seed):
        return run(FACTORIES[name](make_problem(LOOSE), budget=30, seed=seed))

    first = proposals(5)
    assert proposals(5) == first
    assert proposals(6) != first


@pytest.mark.parametrize("aware", [True, False])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_replaying_the_log_rebuilds_the_searcher(name, aware):
    # On the tight target the constraint-aware searchers also take their rejection and fallback paths.
    problem = make_problem(TIGHT if aware else LOOSE)
    searcher = FACTORIES[name](problem, budget=60, seed=3, constraint_aware=aware)
    run(searcher, batch=4, seed=9, fail_every=6, stop_after=29)  # batched asks, shuffled tells, failures
    log = [HandOut(**h) for h in json.loads(json.dumps(searcher.get_state()["handouts"]))]

    resumed = FACTORIES[name](problem, budget=60, seed=3, constraint_aware=aware)
    resumed.replay_log(log)
    assert resumed.trials == searcher.trials and resumed.pending == searcher.pending
    if isinstance(resumed, RegularizedEvolution):
        assert resumed.population == searcher.population
    if isinstance(resumed, PolicyGradient):
        assert resumed.logits == searcher.logits and resumed.baseline == searcher.baseline
    assert resumed.ask(1) == searcher.ask(1)


def test_replay_refuses_a_log_from_another_seed():
    searched = RandomSearch(make_problem(LOOSE), budget=10, seed=0)
    run(searched)
    with pytest.raises(ValueError, match="replay diverged"):
        RandomSearch(make_problem(LOOSE), budget=10, seed=1).replay(searched.trials)


def test_batched_searchers_hand_out_a_batch_then_wait():
    problem = make_problem(LOOSE)
    assert len(RandomSearch(problem, budget=50).ask(8)) == 8
    evolution = RegularizedEvolution(problem, budget=50, population_size=10)
    first = evolution.ask(8)
    assert len(first) == 8 and len(evolution.ask(8)) == 2  # the initial population is random
    assert evolution.ask(1) == []  # a child needs its parents' rewards
    policy = PolicyGradient(problem, budget=50, method="ppo", batch_size=5)
    assert len(policy.ask(8)) == 5 and policy.ask(1) == []  # the next batch needs the update


def _gaps_left(name, seeds=range(10)):
    """Per seed, the share of the gap between the best of the first 10 samples and the optimum that
    the answer after 300 queries leaves open (0: found the optimum, 1: no better than those samples)."""
    problem = make_problem(LOOSE)
    optimum = max(value(e) for e in SPACE if cost(e) <= LOOSE)
    gaps = []
    for seed in seeds:
        searcher = FACTORIES[name](problem, budget=300, seed=seed)
        run(searcher, batch=1, seed=seed)
        first = max(value(t.encoding) for t in searcher.trials[:10])
        gaps.append((optimum - value(searcher.best().encoding)) / (optimum - first))
    return gaps


@pytest.mark.parametrize("name", ["evolution", "ppo", "reinforce"])
def test_learns_beyond_its_first_random_samples(name):
    gaps = _gaps_left(name)
    assert all(gap < 1 for gap in gaps)  # always better than its first 10 samples
    # ...and closes most of the gap that random search with the same 300 queries leaves (mean 0.32).
    assert sum(gaps) < 0.5 * sum(_gaps_left("random"))


def test_ppo_concentrates_its_policy():
    problem = make_problem(max_cost=cost((3,) * 6))  # unconstrained: the best option of each layer wins
    searcher = ppo(problem, budget=300, seed=0)
    run(searcher, batch=1)
    best_options = [max(range(4), key=lambda o: VALUES[i][o]) for i in range(6)]
    probabilities = searcher.probabilities()
    assert sum(probabilities[i][o] > 0.5 for i, o in enumerate(best_options)) >= 5
