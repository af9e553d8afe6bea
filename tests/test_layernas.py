import dataclasses
import itertools
import json
import random

import numpy as np
import pytest

from layernas_tf.search import InfeasibleTargetError, Problem, make_searcher
from layernas_tf.search.base import HandOut, Trial
from layernas_tf.search.harness import query_noise
from layernas_tf.search.layernas import LayerNAS, sweep_upper_bound
from layernas_tf.search.tables import load_table, synthetic_records

VALUES = [[0.0, 1.0, 1.6, 2.0], [0.0, 0.5, 2.5, 2.6], [0.0, 1.2, 1.3, 3.0], [0.0, 0.4, 0.9, 1.0], [0.0, 2.0, 2.1, 2.2]]
COSTS = [[1, 2, 3, 4], [1, 3, 4, 6], [1, 2, 4, 5], [1, 1.5, 2, 3], [1, 3, 4, 5]]


def additive_problem(max_cost):
    return Problem((4,) * 5, lambda e: sum(COSTS[i][o] for i, o in enumerate(e)), max_cost)


def reward(e):
    return sum(VALUES[i][o] for i, o in enumerate(e))


def run(searcher, noise=0.0, seed=0):
    rng = random.Random(seed)
    while not searcher.done:
        asked = searcher.ask(4)
        if not asked:
            break
        for e in asked:
            searcher.tell(e, reward(e) + rng.gauss(0, noise))
    return searcher


def exhaustive_optimum(problem):
    return max((e for e in itertools.product(range(4), repeat=5) if problem.feasible(e)), key=reward)


@pytest.mark.parametrize("max_cost", [8, 12, 16])
def test_finds_the_exact_optimum_of_an_additive_table(max_cost):
    problem = additive_problem(max_cost)
    searcher = run(LayerNAS(problem, budget=400, seed=0))
    assert searcher.best().encoding == exhaustive_optimum(problem)


def test_trials_stay_within_the_polynomial_bound():
    problem = additive_problem(12)
    searcher = run(LayerNAS(problem, budget=10_000, seed=0, num_buckets=3, refine="none"))
    assert len(searcher.trials) <= sweep_upper_bound(problem.num_options, 3, 1) == 1 + 3 + 3 * 3 * 4
    assert len({t.encoding for t in searcher.trials}) == len(searcher.trials)  # never twice


@pytest.mark.parametrize("max_cost", [6, 9, 14])
def test_answer_never_violates_the_target(max_cost):
    problem = additive_problem(max_cost)
    best = run(LayerNAS(problem, budget=60, seed=1), noise=0.5).best()
    assert problem.cost_of(best.encoding) <= max_cost


def test_fixed_seed_gives_the_same_search():
    a = run(LayerNAS(additive_problem(12), 80, seed=3), noise=0.3, seed=5)
    b = run(LayerNAS(additive_problem(12), 80, seed=3), noise=0.3, seed=5)
    assert [t.encoding for t in a.trials] == [t.encoding for t in b.trials]


def test_replaying_the_state_gives_the_same_search():
    problem = additive_problem(12)
    original = run(LayerNAS(problem, 80, seed=0), noise=0.3)
    state = original.get_state()
    rebuilt = make_searcher("layernas", problem, state["budget"], state["seed"], **state["settings"])
    rebuilt.replay_log([HandOut(**h) for h in state["handouts"]])
    assert rebuilt.best().encoding == original.best().encoding
    assert [t.encoding for t in rebuilt.trials] == [t.encoding for t in original.trials]


def test_impossible_target_names_the_smallest_cost():
    with pytest.raises(InfeasibleTargetError, match="smallest achievable cost is 5"):
        additive_problem(4)


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="unknown algorithm 'hyperband'; allowed: layernas"):
        make_searcher("hyperband", additive_problem(12), 10)


def test_bad_layernas_setting_is_refused():
    with pytest.raises(ValueError, match="fill='middle' is not allowed"):
        LayerNAS(additive_problem(12), 10, fill="middle")
    with pytest.raises(ValueError, match=r"layernas explore must be in \[0, 10\] \(standard errors; 0: no bonus\), got -1"):
        LayerNAS(additive_problem(12), 10, explore=-1)


def test_a_budget_that_ends_in_the_sweep_still_returns_a_feasible_answer():
    # The default (all 2s) costs 17 > 12, so the first layer's children are all infeasible.
    problem = Problem((4,) * 5, lambda e: sum(COSTS[i][o] for i, o in enumerate(e)), 12, default=(2,) * 5)
    for budget in (2, 3, 5):
        searcher = run(LayerNAS(problem, budget=budget, seed=0))
        assert len(searcher.trials) == budget
        assert searcher.best() is not None and problem.cost_of(searcher.best().encoding) <= 12


def test_the_first_trial_meets_the_target_when_no_first_step_child_can():
    # The default (all 2s) costs 17 > 12, and its first layer alone can save 2 at most. Moving its last
    # layers to their cheapest options, last first, meets the target at the third: 10.
    problem = Problem((4,) * 5, lambda e: sum(COSTS[i][o] for i, o in enumerate(e)), 12, default=(2,) * 5)
    searcher = LayerNAS(problem, budget=100, seed=0)
    assert searcher.ask(1) == [(2, 2, 0, 0, 0)]
    assert problem.cost_of((2, 2, 2, 0, 0)) == 13 and problem.cost_of((2, 2, 0, 0, 0)) == 10


def test_the_first_trial_is_the_sweeps_own_when_a_first_step_child_meets_the_target():
    problem = Problem((4,) * 5, lambda e: sum(COSTS[i][o] for i, o in enumerate(e)), 15, default=(2,) * 5)
    # (0, 2, 2, 2, 2) costs 15: the sweep's first step has a feasible child, so no extra trial is spent.
    assert LayerNAS(problem, budget=100, seed=0).ask(1) == [(0, 2, 2, 2, 2)]


@pytest.mark.parametrize("max_cost, noise", [(12, 0.3), (14, 0.0), (20, 0.3)])
def test_a_larger_budget_continues_the_smaller_run(max_cost, noise):
    problem = Problem((4,) * 5, lambda e: sum(COSTS[i][o] for i, o in enumerate(e)), max_cost, default=(2,) * 5)
    short = run(LayerNAS(problem, budget=30, seed=0), noise=noise)
    long = run(LayerNAS(problem, budget=120, seed=0), noise=noise)
    assert short.anytime and long.anytime
    assert len(short.trials) == 30 and len(long.trials) > 30
    assert [t.encoding for t in long.trials[:30]] == [t.encoding for t in short.trials]


def test_buckets_planned_from_the_budget_make_each_budget_another_search():
    problem = additive_problem(12)
    searcher = LayerNAS(problem, budget=200, seed=0, num_buckets=0)
    assert not searcher.anytime
    assert max(run(searcher).bucket_history) > 1


def test_replay_of_a_batched_run_that_ends_in_the_sweep():
    problem = Problem((4,) * 5, lambda e: sum(COSTS[i][o] for i, o in enumerate(e)), 12, default=(2,) * 5)
    # Asks 4 at a time; without speculation a batch holds only what a sequential search asks next.
    original = run(LayerNAS(problem, budget=7, seed=0, speculate="none"), noise=0.3)
    rebuilt = LayerNAS(problem, budget=7, seed=0, speculate="none")
    rebuilt.replay(original.trials)
    assert rebuilt.best().encoding == original.best().encoding


class RandomPairwiseCost:
    """A cost made of seeded random terms on each layer's option and its predecessor's: two moves on
    adjacent layers can each exceed a target alone and meet it together."""

    def __init__(self, options, seed, pairwise):
        rng = random.Random(seed)
        self.first = [rng.uniform(0, 4) for _ in range(options[0])]
        self.terms = [[[rng.uniform(0, 4) for _ in range(b)] for _ in range(a)] for a, b in zip(options, options[1:])]
        self.pairwise = pairwise

    def __call__(self, e):
        return self.first[e[0]] + sum(t[a][b] for t, a, b in zip(self.terms, e, e[1:]))


@pytest.mark.parametrize("seed, radius, pairwise, explore", [(0, 2, True, 1.0), (1, 2, True, 0.0), (3, 2, False, 1.0),
                                                             (2, 1, True, 2.0)])
def test_refinement_picks_the_best_predicted_neighbour_as_scoring_every_one_would(seed, radius, pairwise, explore):
    # With `pairwise`, refinement may skip non-adjacent pairs that cannot meet the target unvisited.
    rng = random.Random(seed)
    options = (4, 6, 5, 6, 3, 6)
    cost = RandomPairwiseCost(options, seed, pairwise)
    problem = Problem(options, cost, max_cost=sorted(cost(tuple(rng.randrange(n) for n in options))
                                                     for _ in range(200))[100])
    assert problem.pairwise_cost is pairwise
    searcher = LayerNAS(problem, budget=80, seed=seed, refine_radius=radius, explore=explore)
    checked = 0
    while not searcher.done and len(searcher.trials) < 80:
        for handout in searcher.ask(1):
            if searcher.phase == "refine":
                model = searcher._refinement_model()  # with explore > 0, the prediction plus each option's bonus
                for base in list(searcher.rewards)[:5]:
                    def valid(c):
                        return c not in searcher.rewards and c not in searcher.pending and problem.feasible(c)
                    every = {c: model.predict(c) for c in searcher._neighbours(base) if valid(c)}
                    expected = min(every, key=lambda c: (-every[c], c), default=None)
                    found = searcher._best_neighbour(base, model, valid)
                    assert (found and found[1]) == expected
                    checked += 1
            searcher.tell(handout, sum(handout) + rng.gauss(0, 0.5))
    assert checked > 20


# Two attributes per layer: option = 2 * width + kernel (widths 0.75/1.25, kernels 3/5).
ATTRIBUTES = tuple(tuple((("width", w), ("kernel", k)) for w in (0.75, 1.25) for k in (3, 5)) for _ in range(5))


def attribute_problem(max_cost, attributes=ATTRIBUTES):
    return Problem((4,) * 5, lambda e: sum(COSTS[i][o] for i, o in enumerate(e)), max_cost,
                   option_attributes=attributes)


def test_attribute_steps_vary_one_attribute_of_a_kept_candidate_at_a_time():
    problem = attribute_problem(100)  # no binding target: one kept candidate per step
    searcher = run(LayerNAS(problem, budget=1000, seed=0, refine="none", num_buckets=1, speculate="none"))
    assert searcher.plan == [(layer, a) for layer in range(5) for a in ("width", "kernel")]
    # The root, then one new child per step: 1 + 10 * (2 - 1), against 1 + 5 * 3 over whole layers.
    assert len(searcher.trials) == 11
    layers = run(LayerNAS(problem, budget=1000, seed=0, refine="none", num_buckets=1, steps="layers",
                          speculate="none"))
    assert len(layers.trials) == 16
    seen = [searcher.trials[0].encoding]
    for trial in searcher.trials[1:]:
        # Each child differs from an earlier trial in one attribute of one layer.
        def moves(a, b):
            return sum(x != y for i, j in zip(a, b) for x, y in zip(ATTRIBUTES[0][i], ATTRIBUTES[0][j]))
        assert any(moves(trial.encoding, s) == 1 for s in seen)
        seen.append(trial.encoding)
    # Additive rewards without a binding target: coordinate steps find the optimum.
    assert searcher.best().encoding == exhaustive_optimum(problem)


def test_a_step_keeps_children_whose_open_attributes_can_still_meet_the_target():
    # Layer 0's options cost 1, 2, 3, 4 (width 0.75/k3, 0.75/k5, 1.25/k3, 1.25/k5), the rest 1 each at
    # their cheapest: a target of 8 leaves width 1.25 completable only with kernel 3 (3 + 4 * 1 <= 8 < 9).
    problem = attribute_problem(7)
    searcher = LayerNAS(problem, budget=100, seed=0, refine="none", num_buckets=4)
    assert searcher.plan[0] == (0, "width")
    queued = set(searcher.queue)
    root = problem.default
    assert queued == {root, (2,) + root[1:]}  # width 1.25 with kernel 3 (option 2) still fits


def test_per_step_buckets_spend_the_sweep_budget_the_upfront_plan_leaves():
    problem = additive_problem(12)
    upfront = run(LayerNAS(problem, budget=200, seed=0, num_buckets=0, bucket_plan="upfront"))
    per_step = run(LayerNAS(problem, budget=200, seed=0, num_buckets=0))
    assert set(upfront.bucket_history) == {upfront.num_buckets}
    assert max(per_step.bucket_history) > upfront.num_buckets
    assert per_step._sweep_asked <= per_step.sweep_budget == 60
    assert upfront._sweep_asked < per_step._sweep_asked


def test_replay_of_attribute_steps_with_per_step_buckets():
    problem = attribute_problem(12)
    original = run(LayerNAS(problem, 60, seed=0, num_buckets=0), noise=0.3)  # asks 4 at a time
    state = original.get_state()
    rebuilt = make_searcher("layernas", problem, state["budget"], state["seed"], **state["settings"])
    rebuilt.replay_log([HandOut(**h) for h in state["handouts"]])
    assert [t.encoding for t in rebuilt.trials] == [t.encoding for t in original.trials]
    assert rebuilt.bucket_history == original.bucket_history


def test_option_attributes_must_match_the_options():
    with pytest.raises(ValueError, match=r"option_attributes has \(4, 4, 4, 4\) options per layer"):
        attribute_problem(12, ATTRIBUTES[:4])
    bad = (ATTRIBUTES[0][:3] + ((("width", 0.75),),),) + ATTRIBUTES[1:]
    with pytest.raises(ValueError, match="option_attributes of layer 0: every option needs the same attribute"):
        attribute_problem(12, bad)


def _cv_searcher(reward_fn):
    problem = additive_problem(100)
    searcher = LayerNAS(problem, budget=300, seed=0, select_fraction=0)
    rng = random.Random(0)
    for e in sorted({tuple(rng.randrange(4) for _ in range(5)) for _ in range(200)}):
        searcher.rewards[e] = reward_fn(e)  # evaluations as the searcher holds them
    return searcher


def test_the_cross_validated_final_pick_pools_everything_on_an_additive_space():
    assert _cv_searcher(reward).chosen_select_fraction() == 1.0


def test_the_cross_validated_final_pick_goes_local_where_the_space_is_not_additive():
    # A network collapses (reward 0) when layers 0 and 1 both take option 0: far from the best
    # candidates, but it bends a model fitted on every evaluation.
    def collapsing(e):
        return 0.0 if e[0] == 0 and e[1] == 0 else reward(e) + 0.3 * e[2] * e[3]
    searcher = _cv_searcher(collapsing)
    assert searcher.chosen_select_fraction() < 1.0
    assert LayerNAS(additive_problem(100), budget=10, select_fraction=0).chosen_select_fraction() == 1.0


def _told(searcher, rewards):
    """Hold `rewards` as told evaluations (trials and rewards), without running the sweep."""
    for e, r in rewards.items():
        searcher.rewards[e] = r
        searcher.trials.append(Trial(e, searcher.problem.cost_of(e), r))
    return searcher


def test_the_final_pick_averages_its_reward_with_the_lower_of_two_models():
    from layernas_tf.search.additive import AdditiveModel

    def collapsing(e):
        return 0.0 if e[0] == 0 and e[1] == 0 else reward(e) + 0.3 * e[2] * e[3]
    rng = random.Random(1)
    rewards = {e: collapsing(e) + rng.gauss(0, 0.2)
               for e in sorted({tuple(rng.randrange(4) for _ in range(5)) for _ in range(150)})}
    lower = _told(LayerNAS(additive_problem(100), budget=300), rewards)
    blend = _told(LayerNAS(additive_problem(100), budget=300, pick="blend"), rewards)
    ranked = sorted(rewards.items(), key=lambda o: (-o[1], o[0]))
    every = AdditiveModel((4,) * 5).fit(ranked)
    half = AdditiveModel((4,) * 5).fit(ranked[:len(ranked) // 2])
    disagree = 0
    for e, r in rewards.items():
        assert lower.selection_score(e) == pytest.approx(0.5 * r + 0.5 * min(every.predict(e), half.predict(e)))
        assert blend.selection_score(e) == pytest.approx(0.5 * r + 0.5 * every.predict(e))
        disagree += lower.selection_score(e) < blend.selection_score(e) - 1e-9
    assert disagree > 10  # the two models differ, so the rule matters
    assert lower.settings()["pick"] == "lower"
    with pytest.raises(ValueError, match="layernas pick='top' is not allowed; choose one of lower, blend"):
        LayerNAS(additive_problem(100), budget=10, pick="top")


def test_the_lower_pick_avoids_the_global_models_over_prediction_on_nas_bench_macro():
    # NAS-Bench-Macro at 75% FLOPs: nearly every network is feasible and the space is far from
    # additive. The model fitted on all evaluations over-predicts its favourite by about a point,
    # and a pick that trusts it returns a worse network the more the search evaluates. (Shown on the
    # search whose buckets are planned from the budget, num_buckets=0, where it was found.)
    from conftest import shared_table

    table = load_table(str(shared_table("nas-bench-macro_cifar10.json")))
    problem = table.problem(0.75)
    _, oracle = table.oracle(problem)
    regrets, over = [], []
    for seed in range(3):
        searcher, repeats = LayerNAS(problem, budget=400, seed=seed, num_buckets=0), {}
        while not searcher.done:
            (e,) = searcher.ask(1)
            repeats[e] = repeats.get(e, -1) + 1
            searcher.tell(e, table.query(e, query_noise(seed, e, repeats[e])))
        lower = searcher.best().encoding
        searcher.pick = "blend"
        blend = searcher.best().encoding
        over.append(searcher._fitted_model(1.0).predict(blend) - table.mean_score(blend))
        assert over[-1] > 0.5
        regrets.append((oracle - table.mean_score(lower), oracle - table.mean_score(blend)))
        assert regrets[-1][0] < regrets[-1][1]
    assert sum(over) / 3 > 1.0  # by more than a point on average
    assert sum(l for l, _ in regrets) / 3 < sum(b for _, b in regrets) / 3 - 0.1  # mean regret, lower against blend


# As VALUES, but three options cost more than option 0 of their layer and are worth less.
TRAPS = [[0.0, 1.0, 1.6, 2.0], [0.0, 0.5, -1.5, 2.6], [0.0, 1.2, 1.3, 3.0], [0.0, 0.4, -2.0, 1.0], [0.0, 2.0, 2.1, -1.0]]
DOMINATED = {(1, 2), (3, 2), (4, 3)}


def run_traps(searcher, noise=0.1, seed=0, batch=1):
    rng = random.Random(seed)
    while not searcher.done:
        asked = searcher.ask(batch)
        if not asked:
            break
        for e in asked:
            searcher.tell(e, sum(TRAPS[i][o] for i, o in enumerate(e)) + rng.gauss(0, noise))
    return searcher


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("default", [(0,) * 5, (1,) * 5])  # parents at the cheapest option, or in between
def test_pruning_skips_only_children_a_cheaper_sibling_beats(seed, default):
    problem = dataclasses.replace(additive_problem(12), default=default)
    pruned = run_traps(LayerNAS(problem, budget=120, seed=0, num_buckets=4, prune="dominated"), seed=seed)
    assert pruned.pruned, "a dominated option met a second parent and was not skipped"
    for child in pruned.pruned:
        assert any((layer, option) in DOMINATED for layer, option in enumerate(child)), child
    assert not set(pruned.pruned) & {t.encoding for t in pruned.trials[:pruned._sweep_asked]}
    assert run_traps(LayerNAS(problem, budget=120, seed=0, num_buckets=4), seed=seed).pruned == []
    # Where no option is dominated (VALUES rise with cost in every layer, by 0.1 at least) nothing is
    # skipped while the noise is well below the gaps (at a noise of 0.1 a 0.1 gap is within a standard error).
    assert run(LayerNAS(problem, budget=120, seed=0, num_buckets=4, prune="dominated"), noise=0.02,
               seed=seed).pruned == []


def test_replay_of_a_batched_run_with_pruning():
    problem = additive_problem(12)
    original = run_traps(LayerNAS(problem, 120, seed=0, num_buckets=4, prune="dominated"), batch=4)
    state = original.get_state()
    rebuilt = make_searcher("layernas", problem, state["budget"], state["seed"], **state["settings"])
    rebuilt.replay_log([HandOut(**h) for h in state["handouts"]])
    assert [t.encoding for t in rebuilt.trials] == [t.encoding for t in original.trials]
    assert rebuilt.pruned == original.pruned and original.pruned


def test_a_bucket_is_dropped_when_a_better_candidate_takes_every_completion():
    problem = additive_problem(23)  # the costliest network costs 23: the best kept one is unconstrained
    dropping = run(LayerNAS(problem, budget=150, seed=0, num_buckets=4, dominated_buckets="drop"), noise=0.3)
    greedy = run(LayerNAS(problem, budget=150, seed=0, num_buckets=1), noise=0.3)
    assert dropping.dropped
    assert [t.encoding for t in dropping.trials] == [t.encoding for t in greedy.trials]
    keeping = run(LayerNAS(problem, budget=150, seed=0, num_buckets=4), noise=0.3)
    assert keeping.dropped == [] and [t.encoding for t in keeping.trials] != [t.encoding for t in greedy.trials]
    # At a tight target a candidate is dropped only once a better one's every completion fits.
    tight = run(LayerNAS(additive_problem(8), budget=150, seed=0, num_buckets=4, dominated_buckets="drop"))
    assert tight.dropped == [(1, 0, 1, 0, 0), (0, 0, 1, 0, 0), (0, 0, 0, 1, 0)]


def test_the_noise_estimate_divides_by_the_degrees_of_freedom_the_ridge_fit_leaves():
    import numpy as np

    from layernas_tf.search.additive import AdditiveModel

    rng = random.Random(0)
    observations = [((rng.randrange(3), rng.randrange(4), rng.randrange(2)), rng.gauss(0, 1)) for _ in range(30)]
    model = AdditiveModel((3, 4, 2)).fit(observations)
    features = np.zeros((30, 9))
    for row, (encoding, _) in enumerate(observations):
        for layer, option in enumerate(encoding):
            features[row, model.offsets[layer] + option] = 1
    hat = features @ np.linalg.inv(features.T @ features + np.eye(9)) @ features.T
    squares = sum((r - model.predict(e)) ** 2 for e, r in observations)
    assert model.noise_sd() == pytest.approx((squares / (30 - 1 - np.trace(hat))) ** 0.5, rel=1e-9)
    assert AdditiveModel((3, 4, 2)).fit(observations[:4]).noise_sd() == float("inf")  # nothing left to estimate it


def test_the_exploration_bonus_adds_standard_errors_of_each_options_effect():
    from layernas_tf.search.additive import AdditiveModel

    rng = random.Random(1)
    observations = [((rng.randrange(3), rng.randrange(4), 0), rng.gauss(0, 1)) for _ in range(40)]
    model = AdditiveModel((3, 4, 2)).fit(observations)
    seen = [[sum(e[layer] == option for e, _ in observations) for option in range(n)]
            for layer, n in enumerate((3, 4, 2))]
    assert model.option_counts() == seen and seen[2] == [40, 0]
    optimistic = model.with_bonus(0.7)
    for encoding in itertools.product(range(3), range(4), range(2)):
        bonus = sum(0.7 / (seen[layer][option] + 1) ** 0.5 for layer, option in enumerate(encoding))
        assert optimistic.predict(encoding) == pytest.approx(model.predict(encoding) + bonus, abs=1e-12)
    # An option never seen gets the full bonus: refinement ranks it above a seen option it predicts as well.
    assert optimistic.predict((0, 0, 1)) - optimistic.predict((0, 0, 0)) == pytest.approx(
        model.predict((0, 0, 1)) - model.predict((0, 0, 0)) + 0.7 - 0.7 / 41 ** 0.5)
    # Pending encodings count as seen: the bonus of their options shrinks, the effects do not move.
    pending = [(0, 1, 1), (0, 2, 1)]
    batch = model.with_bonus(0.7, pending)
    for encoding in itertools.product(range(3), range(4), range(2)):
        bonus = sum(0.7 / (seen[layer][option] + sum(p[layer] == option for p in pending) + 1) ** 0.5
                    for layer, option in enumerate(encoding))
        assert batch.predict(encoding) == pytest.approx(model.predict(encoding) + bonus, abs=1e-12)
    assert batch.predict((1, 3, 0)) == pytest.approx(optimistic.predict((1, 3, 0)), abs=1e-12)  # none pending
    assert batch.predict((0, 0, 1)) - model.predict((0, 0, 1)) == pytest.approx(
        0.7 / (seen[0][0] + 3) ** 0.5 + 0.7 / (seen[1][0] + 1) ** 0.5 + 0.7 / 3 ** 0.5)
    assert model.option_counts() == seen  # the fitted model is unchanged


@pytest.mark.parametrize("bonus_counts", ["all", "share"])
def test_refinement_explores_with_a_bonus_of_explore_standard_errors(bonus_counts):
    problem = additive_problem(12)
    searchers = {}
    for explore in (0.0, 1.0):
        searcher = LayerNAS(problem, budget=60, seed=0, explore=explore, bonus_counts=bonus_counts)
        rng = random.Random(0)
        while not searcher.done and searcher.ask(1):  # one worker: nothing is speculated in the sweep
            searcher.tell(searcher.pending[0], reward(searcher.pending[0]) + rng.gauss(0, 0.3))
        searchers[explore] = searcher
    sweep = searchers[0.0].get_state()["sweep_trials"]
    assert searchers[1.0].get_state()["sweep_trials"] == sweep  # a sequential sweep does not use it
    assert [t.encoding for t in searchers[1.0].trials[:sweep]] == [t.encoding for t in searchers[0.0].trials[:sweep]]
    assert [t.encoding for t in searchers[1.0].trials] != [t.encoding for t in searchers[0.0].trials]
    searcher = searchers[1.0]
    model = searcher._fitted_model(searcher.model_fraction)
    # 59 distinct candidates evaluated, the model fitted on the better 40 (twice the 20 options).
    evaluated = [e for e, r in searcher.rewards.items() if r is not None]
    share = sorted(evaluated, key=lambda e: (-searcher.rewards[e], e))[:40]
    assert (len(evaluated), model.count) == (59, 40)

    def seen(encodings, encoding):
        return [sum(e[layer] == option for e in encodings) for layer, option in enumerate(encoding)]

    for encoding in ((0,) * 5, (1, 0, 0, 0, 0), (3, 3, 3, 3, 3)):
        n = seen(evaluated if bonus_counts == "all" else share, encoding)
        bonus = searcher._refinement_model().predict(encoding) - model.predict(encoding)
        assert bonus == pytest.approx(model.noise_sd() * sum(1 / (k + 1) ** 0.5 for k in n))
    assert seen(evaluated, (0,) * 5) != seen(share, (0,) * 5)  # the two rules give different bonuses here
    assert LayerNAS(problem, 10, explore=0.0)._refinement_model().predict((0,) * 5) == 0.0  # no bonus, no fit yet


def test_on_a_deterministic_problem_the_final_pick_is_the_best_exact_reward():
    def collapsing(e):
        return 0.0 if e[0] == 0 and e[1] == 0 else reward(e) + 0.3 * e[2] * e[3]
    rng = random.Random(1)
    rewards = {e: collapsing(e) for e in sorted({tuple(rng.randrange(4) for _ in range(5)) for _ in range(150)})}
    problem = additive_problem(10)
    exact = _told(LayerNAS(dataclasses.replace(problem, deterministic=True), budget=300), rewards)
    modelled = _told(LayerNAS(problem, budget=300), rewards)
    for e, r in rewards.items():
        assert exact.selection_score(e) == r
    best = max((e for e in rewards if problem.feasible(e)), key=lambda e: (rewards[e], e))
    assert exact.best().encoding == best
    assert modelled.best().encoding != best  # the model's blend picks another: the rule matters here


def _synthetic_table(path, **kwargs):
    path.write_text(json.dumps(synthetic_records(**kwargs)))
    return load_table(str(path))


def _regret_by_budget(table, problem, budgets, **settings):
    _, oracle = table.oracle(problem)
    searcher, regrets = LayerNAS(problem, budget=max(budgets), **settings), []
    while not searcher.done:
        (e,) = searcher.ask(1)
        searcher.tell(e, table.query(e, query_noise(0, e, 0)))
        if len(searcher.trials) in budgets:
            regrets.append(round(oracle - table.mean_score(searcher.best().encoding), 3))
    return regrets


@pytest.mark.parametrize("seed,layers,options,fraction,expected", [
    (3, 4, 6, 0.25, [0.0] * 8), (2, 5, 5, 0.5, [0.244] + [0.0] * 7)])
def test_a_noise_free_table_never_gets_a_worse_pick_with_more_budget(tmp_path, seed, layers, options, fraction,
                                                                     expected):
    table = _synthetic_table(tmp_path / "noise_free.json", num_layers=layers, num_options=options, seed=seed,
                             noise=0.0, seeds=1)
    problem = table.problem(fraction)
    assert problem.deterministic
    budgets = (25, 50, 75, 100, 150, 200, 300, 400)
    assert _regret_by_budget(table, problem, budgets) == expected
    # The same search ranking its pick with the model (a problem not known to be deterministic), each
    # candidate evaluated once, sets back.
    modelled = _regret_by_budget(table, dataclasses.replace(problem, deterministic=False), budgets, replicates=1)
    assert any(later > earlier for earlier, later in zip(modelled, modelled[1:]))


def test_a_table_with_several_accuracies_per_network_is_not_deterministic(tmp_path):
    table = _synthetic_table(tmp_path / "noisy.json", num_layers=3, num_options=3, seed=0)
    assert not table.problem(0.5).deterministic


def _replicate_expected(searcher):
    """The rule `replicates` and `race` document: the final pick's leader, while the runner-up is
    within one standard deviation of it and it has no more evaluations; with `replicate_runner_up`,
    the runner-up instead while it has fewer evaluations than the leader. Taken only when the
    refinement's own pick is worth no more: with race='no_better', its optimistic prediction is not
    above the raced candidate's score; with 'expected_loss', its expected improvement over that
    score (normal, mean its plain prediction, sd its bonus) is at most the leader's expected loss
    against the runner-up (normal difference, mean -gap, sd their noise). Both by numerical
    integration here, not the closed form the searcher uses."""
    evaluated = [e for e, r in searcher.rewards.items() if r is not None and searcher.problem.feasible(e)]
    if searcher.phase != "refine" or len(evaluated) < 2:
        return None
    leader, runner_up = sorted(evaluated, key=lambda e: (-searcher.selection_score(e), e))[:2]
    n, m = len(searcher.evaluations[leader]), len(searcher.evaluations[runner_up])
    s = searcher.shrinkage
    w, v = n * s / (n * s + 1 - s), m * s / (m * s + 1 - s)
    noise = searcher._fitted_model(1.0).noise_sd()
    target = leader if n <= m else runner_up
    if (n > m and not searcher.replicate_runner_up) or min(n, m) >= searcher.replicates or noise == float("inf"):
        return None
    gap = searcher.selection_score(leader) - searcher.selection_score(runner_up)
    spread = noise * (w * w / n + v * v / m) ** 0.5
    if gap >= spread:
        return None
    pick, _ = searcher._best_refinement()
    if pick is None:
        return target
    optimistic = searcher._refinement_model().predict(pick)
    if searcher.race == "no_better":
        return None if optimistic > searcher.score(target) else target
    plain = searcher._fitted_model(searcher.model_fraction).predict(pick)
    improvement = _mean_excess(plain - searcher.score(target), optimistic - plain)
    return None if improvement > _mean_excess(-gap, spread) + 1e-9 else target


def _mean_excess(mean, sd):
    """E[max(0, X)], X ~ N(mean, sd), by the trapezoid rule over mean +- 12 sd."""
    if sd <= 0:
        return max(0.0, mean)
    xs = np.linspace(mean - 12 * sd, mean + 12 * sd, 20001)
    density = np.exp(-((xs - mean) / sd) ** 2 / 2) / (sd * np.sqrt(2 * np.pi))
    return float(np.trapezoid(np.maximum(xs, 0.0) * density, xs))


def test_expected_excess_is_the_mean_of_the_positive_part_of_a_normal():
    from layernas_tf.search.layernas import expected_excess

    for mean, sd in [(0.0, 1.0), (-0.14, 0.32), (0.3, 0.05), (-2.0, 0.5), (1.5, 2.0)]:
        assert expected_excess(mean, sd) == pytest.approx(_mean_excess(mean, sd), abs=1e-7)
    assert expected_excess(0.0, 1.0) == pytest.approx(1 / np.sqrt(2 * np.pi))
    assert expected_excess(0.2, 0.0) == 0.2 and expected_excess(-0.2, 0.0) == 0.0


def _leader(searcher):
    evaluated = [e for e, r in searcher.rewards.items() if r is not None and searcher.problem.feasible(e)]
    return min(evaluated, key=lambda e: (-searcher.selection_score(e), e), default=None)


@pytest.mark.parametrize("runner_up,race", [(False, "expected_loss"), (True, "expected_loss"),
                                            (True, "no_better")])
def test_the_final_picks_leader_is_evaluated_again_while_the_runner_up_is_within_noise(tmp_path, runner_up, race):
    table = _synthetic_table(tmp_path / "noisy.json", num_layers=5, num_options=4, seed=7)
    problem = table.problem(0.5)
    searcher = LayerNAS(problem, budget=120, replicate_runner_up=runner_up, race=race)
    repeats, told, runner_ups = {}, 0, 0
    while not searcher.done:
        expected = _replicate_expected(searcher)
        (e,) = searcher.ask(1)
        if expected is not None:
            assert e == expected
            runner_ups += e != _leader(searcher)
        elif e in searcher.rewards:
            pytest.fail(f"{e} was asked again though the rule does not replicate it")
        repeats[e] = repeats.get(e, -1) + 1
        searcher.tell(e, table.query(e, query_noise(0, e, repeats[e])))
        told += 1
    replicated = {e: n + 1 for e, n in repeats.items() if n}
    assert replicated and max(replicated.values()) <= searcher.replicates == 8
    assert bool(runner_ups) == runner_up  # the runner-up, behind on evaluations, is trained again only if asked
    if runner_up:  # on this table the two stay within noise of each other: the race runs to the cap for both
        assert sorted(replicated.values())[-2:] == [8, 8]
    for e, runs in searcher.evaluations.items():
        assert searcher.rewards[e] == pytest.approx(sum(runs) / len(runs))
    # A replicated candidate's own reward weighs as n evaluations do: n*s / (n*s + 1 - s).
    e = max(replicated, key=replicated.get)
    n, s = replicated[e], searcher.shrinkage
    weight = n * s / (n * s + 1 - s)
    prediction = searcher.predict(e)
    assert searcher.score(e) == pytest.approx(weight * searcher.rewards[e] + (1 - weight) * prediction)


@pytest.mark.parametrize("replicates,deterministic", [(1, False), (3, True)])
def test_no_candidate_is_evaluated_twice_with_replicates_1_or_on_a_deterministic_problem(tmp_path, replicates,
                                                                                        deterministic):
    table = _synthetic_table(tmp_path / "noisy.json", num_layers=5, num_options=4, seed=7)
    problem = dataclasses.replace(table.problem(0.5), deterministic=deterministic)
    searcher = LayerNAS(problem, budget=120, replicates=replicates)
    while not searcher.done:
        (e,) = searcher.ask(1)
        searcher.tell(e, table.query(e, query_noise(0, e, 0)))
    encodings = [t.encoding for t in searcher.trials]
    assert len(encodings) == len(set(encodings))
    assert searcher.repeats_are_replicates == (replicates > 1)


def test_an_unknown_race_rule_is_refused():
    with pytest.raises(ValueError, match="layernas race='always' is not allowed; choose one of expected_loss, no_better"):
        LayerNAS(additive_problem(12), budget=10, race="always")
    with pytest.raises(ValueError, match="layernas bonus_counts='some' is not allowed; choose one of all, share"):
        LayerNAS(additive_problem(12), budget=10, bonus_counts="some")


def test_replicates_below_1_are_refused():
    with pytest.raises(ValueError, match="replicates must be >= 1"):
        LayerNAS(additive_problem(12), budget=10, replicates=0)
