"""Searchers and the coordinator under concurrency: batched asks, results told out of order, replay of
any recorded interleaving, crashes of the driver and of workers. Pure Python except the last tests."""

import dataclasses
import json
import random

import pytest

from layernas_tf.coordinator import Coordinator, TooManyFailuresError
from layernas_tf.runner import COMPLETED, FAILED, TrialOutcome, lost_outcome, trial_seed
from layernas_tf.search import make_searcher
from layernas_tf.search.base import HandOut
from layernas_tf.search.problem import Problem
from layernas_tf.store import RUNNING, TrialStore
from searchspaces import get_space
from test_baselines import FACTORIES, LOOSE, make_problem, value

SEARCHERS = ["layernas", "random", "evolution", "ppo", "optuna_tpe", "pyglove_evolution"]  # the registered ones


def _searcher(name, problem, budget, seed=0):
    if name == "layernas":
        return make_searcher("layernas", problem, budget, seed)
    return FACTORIES[name](problem, budget, seed)


def drive(searcher, workers, seed, stop_after=None, reward=value, watch=None):
    """Keep `workers` trials in flight; finish a random one at a time (out of order). Returns when the
    searcher is done, or after `stop_after` results, leaving the in-flight ones pending. `watch`, if
    given, is called with the searcher after every ask."""
    rng = random.Random(seed)
    flying = []
    told = 0
    while stop_after is None or told < stop_after:
        if len(flying) < workers and not searcher.done:
            flying += searcher.ask(workers - len(flying))
        if watch is not None:
            watch(searcher)
        if not flying:
            break
        encoding = flying.pop(rng.randrange(len(flying)))
        searcher.tell(encoding, reward(encoding) + rng.gauss(0, 0.05))
        told += 1
    return searcher


@pytest.mark.parametrize("name", SEARCHERS)
def test_replay_rebuilds_a_searcher_from_any_interleaving_of_asks_and_tells(name):
    problem = make_problem(LOOSE)
    for stop_after in range(57, 62):  # stop where some trials are still running
        original = drive(_searcher(name, problem, 80), workers=4, seed=1, stop_after=stop_after)
        if original.pending:
            break
    log = [HandOut(**h) for h in json.loads(json.dumps(original.get_state()["handouts"]))]
    assert any(h.told_order is None for h in log)  # some were still running
    assert [h.told_order for h in log if h.told_order is not None] != sorted(
        h.told_order for h in log if h.told_order is not None)  # told out of hand-out order

    rebuilt = _searcher(name, problem, 80)
    rebuilt.replay_log(log)
    assert rebuilt.trials == original.trials
    assert sorted(rebuilt.pending) == sorted(original.pending)
    assert rebuilt.ask(3) == original.ask(3)


@pytest.mark.parametrize("name", SEARCHERS)
def test_same_seed_same_workers_same_arrival_order_give_the_same_candidates(name):
    def handouts(seed):
        searcher = drive(_searcher(name, make_problem(LOOSE), 60, seed=seed), workers=3, seed=7)
        return [h.encoding for h in searcher.handouts]

    assert handouts(0) == handouts(0)


@pytest.mark.parametrize("name", ["layernas", "random", "evolution", "ppo", "optuna_tpe", "pyglove_evolution"])
def test_every_searcher_hands_out_batches(name):
    searcher = _searcher(name, make_problem(LOOSE), 200)
    drive(searcher, workers=1, seed=0, stop_after=90)  # past LayerNAS's sweep, past evolution's population
    batch = searcher.ask(8)
    assert len(batch) >= 5  # (a converged policy may repeat itself: the coordinator answers repeats)


def test_layernas_keeps_eight_workers_busy_in_refinement():
    space = get_space("cifar_mobilenet_v2")
    from layernas_tf.costs import cost_function

    problem = Problem(space.num_options, cost_function(space, "madds"), 6e6, default=space.default)
    searcher = make_searcher("layernas", problem, 200, 0)
    busy = []
    rng = random.Random(0)
    flying = []
    while not searcher.done:
        flying += searcher.ask(8 - len(flying))
        if not flying:
            break
        busy.append(len(flying))
        encoding = flying.pop(rng.randrange(len(flying)))
        searcher.tell(encoding, rng.random())
    assert sum(busy) / len(busy) > 6  # mean trials in flight of 8


def _cifar_problem():
    from layernas_tf.costs import cost_function

    space = get_space("cifar_mobilenet_v2")
    return Problem(space.num_options, cost_function(space, "madds"), 6e6, default=space.default,
                   option_attributes=space.option_attributes())


def _cifar_reward(encoding):
    """A made-up accuracy: a seeded effect per option plus a neighbour interaction."""
    effects = [random.Random(f"{layer}:{option}").uniform(0, 1) for layer, option in enumerate(encoding)]
    return sum(effects) + 0.3 * sum(a * b for a, b in zip(effects, effects[1:]))


def _busy_sweep(searcher, workers, seed=0):
    """Drive with `workers` in flight; the mean number in flight while the searcher is still sweeping."""
    rng, flying, busy = random.Random(seed), [], []
    while not searcher.done:
        flying += searcher.ask(workers - len(flying))
        if not flying:
            break
        if searcher.phase == "sweep":
            busy.append(len(flying))
        encoding = flying.pop(rng.randrange(len(flying)))
        searcher.tell(encoding, _cifar_reward(encoding) + rng.gauss(0, 0.05))
    return sum(busy) / len(busy)


def test_speculation_keeps_workers_busy_during_the_sweep():
    problem = _cifar_problem()
    waiting = make_searcher("layernas", problem, 100, 0, speculate="none")
    believer = make_searcher("layernas", problem, 100, 0)
    assert _busy_sweep(waiting, 8) < 1.5  # about one trial at a time: a step has 1-2 new children
    assert _busy_sweep(believer, 8) > 3
    assert believer.speculated
    assert len({t.encoding for t in believer.trials}) == len(believer.trials)  # nothing trained twice
    # Speculated children that the real steps then kept were told before their step began.
    assert set(believer.speculated) & {t.encoding for t in believer.trials[:60]}


def test_a_sequential_search_never_speculates():
    problem = _cifar_problem()
    runs = [drive(make_searcher("layernas", problem, 80, 0, speculate=mode), workers=1, seed=3, reward=_cifar_reward)
            for mode in ("believer", "none", "hedge")]
    assert runs[0].speculated == [] and runs[2].speculated == []
    assert [t.encoding for t in runs[2].trials] == [t.encoding for t in runs[1].trials]
    assert [t.encoding for t in runs[0].trials] == [t.encoding for t in runs[1].trials]


def test_with_greedy_batch_picks_speculative_picks_take_the_models_best_bet_without_the_bonus():
    # batch_picks='greedy': while the sweep runs, every idle worker's refinement pick is the plain
    # model's best, so the sweep's hand-outs do not depend on `explore`; refinement's do.
    problem = _cifar_problem()
    runs = {explore: drive(make_searcher("layernas", problem, 120, 0, explore=explore, batch_picks="greedy"),
                           workers=4, seed=4, reward=_cifar_reward) for explore in (0.0, 1.0)}
    sweep = runs[0.0].get_state()["sweep_trials"]
    assert runs[0.0].speculated and sweep < 120
    assert runs[1.0].get_state()["sweep_trials"] == sweep
    assert [h["encoding"] for h in runs[1.0].get_state()["handouts"][:sweep]] == \
        [h["encoding"] for h in runs[0.0].get_state()["handouts"][:sweep]]
    assert [t.encoding for t in runs[1.0].trials] != [t.encoding for t in runs[0.0].trials]


def test_one_speculative_pick_at_a_time_takes_the_models_best_bet_and_the_others_explore():
    problem = _cifar_problem()

    def most_greedy_running(mode):
        running = []  # best-bet picks in flight, after every ask
        searcher = drive(make_searcher("layernas", problem, 120, 0, batch_picks=mode), workers=8, seed=4,
                         reward=_cifar_reward, watch=lambda s: running.append(sum(c in s._greedy for c in s.pending)))
        return max(running), len(searcher._greedy)

    assert most_greedy_running("greedy")[0] > 1  # every speculative pick is a best bet
    most, greedy = most_greedy_running("explore")
    assert most == 1 and greedy >= 2
    # Without the bonus both forms are the same search.
    same = [drive(make_searcher("layernas", problem, 120, 0, explore=0.0, batch_picks=mode), workers=8, seed=4,
                  reward=_cifar_reward) for mode in ("explore", "greedy")]
    assert [t.encoding for t in same[0].trials] == [t.encoding for t in same[1].trials]
    # With it they differ, and a batch spreads its exploring picks over options not already running.
    forms = [drive(make_searcher("layernas", problem, 120, 0, batch_picks=mode), workers=8, seed=4,
                   reward=_cifar_reward) for mode in ("explore", "greedy")]
    assert [t.encoding for t in forms[0].trials] != [t.encoding for t in forms[1].trials]
    with pytest.raises(ValueError, match="layernas batch_picks='all' is not allowed; choose one of explore, greedy"):
        make_searcher("layernas", problem, 10, 0, batch_picks="all")


def test_hedge_also_speculates_the_next_step_from_the_steps_other_candidates():
    # Step 0 varies layer 0; its last child (3, 0, ...) is still running. The believed keeper is
    # (2, 0, ...): both forms first hand out its step-1 children. Then the believer goes to refinement
    # picks; hedge goes on with the step-1 children of the other candidates, best believed first (the
    # model cannot yet estimate its noise, so every candidate may still be kept).
    asked = {}
    for mode in ("believer", "hedge"):
        searcher = make_searcher("layernas", make_problem(LOOSE), 100, 0, speculate=mode)
        first = searcher.ask(8)
        assert first == [(o, 0, 0, 0, 0, 0) for o in range(4)]
        for encoding in first[:-1]:
            searcher.tell(encoding, value(encoding))
        asked[mode] = searcher.ask(8)
    keeper = [(2, o, 0, 0, 0, 0) for o in (1, 2, 3)]
    assert asked["believer"][:3] == keeper and all(e[1] == 0 for e in asked["believer"][3:])
    assert asked["hedge"] == keeper + [(1, o, 0, 0, 0, 0) for o in (1, 2, 3)] + [(3, 1, 0, 0, 0, 0), (3, 2, 0, 0, 0, 0)]


def test_hedges_are_the_candidates_within_one_standard_deviation_of_a_pending_score_of_their_keeper():
    searcher = make_searcher("layernas", make_problem(LOOSE), 100, 0, speculate="hedge", shrinkage=0.5)
    keeper, close, far = (2, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0), (3, 0, 0, 0, 0, 0)
    believed = {keeper: 1.0, close: 0.8, far: 0.4}

    class Model:  # only the residual noise matters
        def __init__(self, sd):
            self.sd = sd

        def noise_sd(self):
            return self.sd

    # margin = shrinkage x sd: 0.5 for sd 1 (0.2 inside, 0.6 outside), 0.15 for sd 0.3
    assert searcher._hedges([keeper], believed, Model(1.0)) == [close]
    assert searcher._hedges([keeper], believed, Model(2.0)) == [close, far]
    assert searcher._hedges([keeper], believed, Model(float("inf"))) == [close, far]
    assert searcher._hedges([keeper], believed, Model(0.3)) == []
    assert searcher._hedges([], believed, Model(2.0)) == []  # no keeper in the bucket: nothing to hedge


@pytest.mark.parametrize("speculate", ["believer", "hedge"])
def test_replay_rebuilds_a_speculating_search(speculate):
    original = drive(make_searcher("layernas", _cifar_problem(), 70, 0, speculate=speculate), workers=6, seed=2,
                     stop_after=50, reward=_cifar_reward)
    assert original.speculated and original.pending
    log = [HandOut(**h) for h in original.get_state()["handouts"]]
    rebuilt = make_searcher("layernas", _cifar_problem(), 70, 0, speculate=speculate)
    rebuilt.replay_log(log)
    assert rebuilt.trials == original.trials and rebuilt.speculated == original.speculated
    assert rebuilt.ask(4) == original.ask(4)


# -- the coordinator, with a scripted executor --------------------------------------------------

SPACE = get_space("channel_bench_macro_mobilenet")


class ScriptedExecutor:
    """Runs specs instantly, finishing them in a seeded random order; can lose a worker or crash."""

    def __init__(self, slots, seed=0, lose=(), crash_after=None, fail=lambda encoding: False, sd=0.0):
        self.sd = sd
        self.slots, self.rng, self.lose, self.crash_after, self.fail = slots, random.Random(seed), set(lose), crash_after, fail
        self.flying, self.submitted, self.finished, self.replicates = [], [], 0, {}

    @property
    def running(self):
        return len(self.flying)

    def submit(self, spec):
        self.flying.append(spec)
        self.submitted.append(spec.number)
        self.replicates[spec.number] = spec.replicate

    def collect(self, timeout=None):
        if self.crash_after is not None and self.finished >= self.crash_after:
            raise KeyboardInterrupt("driver killed")
        spec = self.flying.pop(self.rng.randrange(len(self.flying)))
        self.finished += 1
        if spec.number in self.lose:
            self.lose.discard(spec.number)
            return [lost_outcome(spec, "worker 0 (pid 1) was killed by SIGKILL")]
        if self.fail(spec.encoding):
            return [TrialOutcome(spec.number, spec.encoding, FAILED, error="ValueError: broken")]
        return [TrialOutcome(spec.number, spec.encoding, COMPLETED, reward=value6(spec.encoding) + self.noise(spec))]

    def noise(self, spec):
        """Each training of a network scores differently: a replicate is another seed."""
        return random.Random(f"{spec.encoding}:{spec.replicate}").gauss(0, self.sd) if self.sd else 0.0


def value6(encoding):
    return value(tuple(encoding[:6]))


@dataclasses.dataclass
class Spec:
    number: int
    encoding: tuple
    replicate: int = 0


def _problem():
    from layernas_tf.costs import cost_function

    return Problem(SPACE.num_options, cost_function(SPACE, "madds"), 105_640_960, default=SPACE.default)


def _coordinate(tmp_path, executor, searcher_name="layernas", budget=40, problem=None, **kwargs):
    store = TrialStore(str(tmp_path), {"space": SPACE.name})
    searcher = make_searcher(searcher_name, problem or _problem(), budget, 0)
    coordinator = Coordinator(searcher, store, executor, SPACE, Spec,
                              lambda e: (searcher.problem.cost_of(e), 0, 0), **kwargs)
    try:
        return coordinator, coordinator.run()
    finally:
        store.close()


def test_a_killed_driver_resumes_without_training_anything_completed_again(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _coordinate(tmp_path, ScriptedExecutor(4, seed=3, crash_after=17))
    with TrialStore(str(tmp_path), {"space": SPACE.name}) as store:
        before = store.trials()
    running = [t.number for t in before if t.status == RUNNING]
    completed = [t for t in before if t.status == COMPLETED]
    assert len(running) == 4 and len(completed) == 17

    executor = ScriptedExecutor(4, seed=4)
    _, resumed = _coordinate(tmp_path, executor)
    assert executor.submitted[:4] == running  # the running ones are handed out again first
    assert not set(executor.submitted) & {t.number for t in completed}  # nothing completed runs again
    assert resumed.resumed_trials == len(before)
    assert [t for t in resumed.trials if t.number in {c.number for c in completed}] == completed
    assert len(resumed.trials) == 40 and all(t.status == COMPLETED for t in resumed.trials)
    # The store replays into a fresh searcher whatever the interleaving was.
    rebuilt = make_searcher("layernas", _problem(), 40, 0)
    rebuilt.replay_log([HandOut(SPACE.parse(t.encoding), t.reward, t.told_before, t.told_order)
                        for t in resumed.trials])
    assert rebuilt.done and len(rebuilt.trials) == 40


def test_a_lost_worker_is_recorded_and_its_trial_retried(tmp_path):
    executor = ScriptedExecutor(3, seed=1, lose={5})
    _, done = _coordinate(tmp_path, executor, budget=12, trial_retries=1)
    trial = done.trials[5]
    assert trial.status == COMPLETED and trial.attempts == 2
    assert "attempt 1: WorkerLost: worker 0 (pid 1) was killed by SIGKILL" in trial.error
    assert executor.submitted.count(5) == 2


def test_a_trial_whose_worker_keeps_dying_fails_after_its_retries(tmp_path):
    executor = ScriptedExecutor(2, seed=1, lose={4})
    executor.lose = type("Always", (set,), {"discard": lambda self, x: None})({4})
    _, done = _coordinate(tmp_path, executor, budget=10, trial_retries=2)
    assert done.trials[4].status == FAILED and done.trials[4].attempts == 3
    assert executor.submitted.count(4) == 3


def test_trial_numbers_follow_hand_out_order_and_record_the_interleaving(tmp_path):
    _, done = _coordinate(tmp_path, ScriptedExecutor(4, seed=2), budget=30)
    assert [t.number for t in done.trials] == list(range(30))
    assert sorted(t.told_order for t in done.trials) == list(range(30))
    assert [t.told_order for t in done.trials] != list(range(30))
    assert all(t.told_before <= t.told_order for t in done.trials)


def test_consecutive_failures_stop_the_search_with_the_trials_stored(tmp_path):
    with pytest.raises(TooManyFailuresError, match="3 trials failed in a row"):
        _coordinate(tmp_path, ScriptedExecutor(2, fail=lambda e: True), budget=20, max_consecutive_failures=3)
    with TrialStore(str(tmp_path), {"space": SPACE.name}) as store:
        assert sum(t.status == FAILED for t in store.trials()) == 3


def test_repeats_of_a_running_candidate_wait_for_it(tmp_path):
    problem_space_cheapest = _problem().cheapest
    executor = ScriptedExecutor(3, seed=0)
    store = TrialStore(str(tmp_path), {"space": SPACE.name})
    # Only the cheapest network fits: random search proposes it again and again, in one batch too.
    problem = Problem(SPACE.num_options, _problem().cost, _problem().cost_of(problem_space_cheapest),
                      default=SPACE.default)
    searcher = make_searcher("random", problem, 6, 0)
    done = Coordinator(searcher, store, executor, SPACE, Spec, lambda e: (problem.cost_of(e), 0, 0)).run()
    store.close()
    assert executor.submitted == [0]
    assert [t.repeat_of for t in done.trials] == [None, 0, 0, 0, 0, 0]
    assert all(t.status == COMPLETED for t in done.trials)


def _replicate_numbers(trials):
    """Per trained trial (repeat_of None), how many earlier trials trained the same network."""
    seen, numbers = {}, {}
    for t in trials:
        if t.repeat_of is None:
            numbers[t.number] = seen.get(t.encoding, 0)
            seen[t.encoding] = numbers[t.number] + 1
    return numbers


def _tight_problem():
    """A target about 1% of the space meets: refinement soon runs out of untried neighbours."""
    return dataclasses.replace(_problem(), max_cost=27_053_568)


def test_a_candidate_asked_again_to_be_evaluated_again_is_trained_again_with_its_next_seed(tmp_path):
    executor = ScriptedExecutor(2, seed=0, sd=0.3)
    _, done = _coordinate(tmp_path, executor, budget=60, problem=_tight_problem())
    numbers = _replicate_numbers(done.trials)
    assert max(numbers.values()) >= 1  # LayerNAS replicated its leader
    assert all(t.repeat_of is None for t in done.trials)  # none answered from an earlier training
    assert {n: r for n, r in executor.replicates.items()} == numbers
    e = next(t.encoding for t in done.trials if numbers[t.number] == 1)
    assert trial_seed(0, e, 1) != trial_seed(0, e) == trial_seed(0, e, 0)


def test_a_resumed_search_trains_its_running_replicates_with_their_own_seeds(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _coordinate(tmp_path, ScriptedExecutor(2, seed=0, sd=0.3, crash_after=38), budget=60,
                    problem=_tight_problem())
    executor = ScriptedExecutor(2, seed=1, sd=0.3)
    _, resumed = _coordinate(tmp_path, executor, budget=60, problem=_tight_problem())
    assert len(resumed.trials) == 60
    numbers = _replicate_numbers(resumed.trials)
    # 37 and 39 were running at the crash; 39 is its network's third training, and is handed out again as such
    assert executor.submitted[:2] == [37, 39] and numbers[39] == 2
    assert executor.replicates == {n: numbers[n] for n in executor.replicates}
