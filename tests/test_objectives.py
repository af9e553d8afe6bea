"""Objectives beyond tables: loading MODULE:NAME, scoring runs by mean score, paired noise, surrogates."""

import json
import random
import statistics
import subprocess
import sys

import pytest

from layernas_tf.benchmarks.objectives import ObjectiveError, load_objective, objective_benchmark
from layernas_tf.benchmarks.surrogates import cifar_mobilenet_v2_32, mobilenet_v3_large_224
from layernas_tf.search import make_searcher
from layernas_tf.search.harness import paired_differences, query_noise, run_searcher

SURROGATE = "layernas_tf.benchmarks.surrogates:cifar_mobilenet_v2_32"


class WidestWins:
    """A test objective: the score is the sum of the option indices (no noise beyond rng)."""

    search_space = "cifar_mobilenet_v2"

    def mean(self, encoding, cost):
        return float(sum(encoding))

    def sample(self, encoding, cost, rng):
        return self.mean(encoding, cost) + rng.gauss(0.0, 1.0)


widest_wins = WidestWins()


class ExactWidestWins(WidestWins):
    deterministic = True  # sample() returns mean(): every query of a network is the same

    def sample(self, encoding, cost, rng):
        return self.mean(encoding, cost)


exact_widest_wins = ExactWidestWins()
no_sample = type("NoSample", (), {"mean": lambda self, e, c: 0.0})()


@pytest.mark.parametrize("spec, message", [
    ("layernas_tf.benchmarks.surrogates", "expected MODULE:NAME"),
    ("no_such_module_xyz:thing", "cannot import module 'no_such_module_xyz'"),
    ("layernas_tf.benchmarks.surrogates:nothing_here", "has no 'nothing_here'"),
    ("test_objectives:no_sample", "lacks sample"),
])
def test_a_bad_objective_is_refused_naming_the_flag(spec, message):
    with pytest.raises(ObjectiveError, match=message) as error:
        load_objective(spec)
    assert "--objective=" in str(error.value)


def test_an_objective_run_is_scored_by_the_mean_of_its_returned_model():
    bench = objective_benchmark("test_objectives:widest_wins")
    problem = bench.problem(0.5)
    assert bench.max_cost == bench.cost((3, 7, 7, 11, 11, 11, 11))  # every layer at its costliest option
    assert problem.max_cost == 0.5 * bench.max_cost
    result, = run_searcher(lambda p, b, s: make_searcher("random", p, b, s), "random", bench, problem, [20], seed=3)
    assert result.regret is None and result.queries == 20
    assert problem.feasible(result.encoding)
    assert result.score == float(sum(result.encoding))


def test_an_objective_that_says_it_is_deterministic_makes_a_deterministic_problem():
    assert objective_benchmark("test_objectives:exact_widest_wins").problem(0.5).deterministic
    assert not objective_benchmark("test_objectives:widest_wins").problem(0.5).deterministic


def test_every_algorithm_sees_the_same_noise_for_the_same_candidate():
    bench = objective_benchmark("test_objectives:widest_wins")
    encoding = bench.space.default
    first = [bench.query(encoding, query_noise(7, encoding, k)) for k in range(3)]
    assert first == [bench.query(encoding, query_noise(7, encoding, k)) for k in range(3)]
    assert len(set(first)) == 3  # repeats of a query are fresh draws
    assert bench.query(encoding, query_noise(8, encoding, 0)) != first[0]


def test_paired_differences_are_per_seed_with_their_standard_error():
    from layernas_tf.search.harness import RunResult

    runs = [RunResult("a", s, 10, 10, None, (), score=1.0 + s) for s in range(3)]
    runs += [RunResult("b", s, 10, 10, None, (), score=1.5 + s + (0.1 if s == 2 else 0.0)) for s in range(3)]
    diff = paired_differences(runs, "a")["b"][10]
    assert diff["runs"] == 3
    assert diff["score_diff"] == pytest.approx(1.6 / 3)
    assert diff["se"] == pytest.approx(statistics.stdev([0.5, 0.5, 0.6]) / 3 ** 0.5)


@pytest.mark.parametrize("objective", [mobilenet_v3_large_224, cifar_mobilenet_v2_32])
def test_surrogates_saturate_in_cost_and_have_about_a_fifth_of_a_point_of_noise(objective):
    bench = objective_benchmark(f"layernas_tf.benchmarks.surrogates:{objective.search_space}_{objective.input_size}")
    problem = bench.problem(1.0)
    cheap, costly = problem.cheapest, problem.costliest
    assert bench.mean_score(costly) > bench.mean_score(cheap) + 5
    rng = random.Random(0)
    draws = [bench.query(cheap, rng) for _ in range(4000)]
    assert statistics.fmean(draws) == pytest.approx(bench.mean_score(cheap), abs=0.02)
    assert 0.18 < statistics.pstdev(draws) < 0.22
    # Options matter at a fixed layer count: one layer's options differ beyond their cost's effect.
    effects = objective.effects[3]
    assert max(effects) - min(effects) > 0.2


def test_the_benchmark_cli_runs_an_objective_and_writes_mean_scores(tmp_path):
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "layernas_tf.benchmarks.tables", f"--objective={SURROGATE}",
                    "--algorithms=layernas,random", "--runs=3", "--budgets=30,60", "--workers=1",
                    f"--out={out}"], check=True, capture_output=True, text=True, timeout=600)
    payload = json.loads((out / "results.json").read_text())
    assert payload["search_space"] == "cifar_mobilenet_v2" and payload["input_size"] == 32
    for algorithm in ("layernas", "random"):
        for budget in ("30", "60"):
            cell = payload["results"][algorithm][budget]
            assert cell["mean_regret"] is None and 85 < cell["mean_score"] < 97 and cell["runs"] == 3
    assert set(payload["paired"]["score_diff_of"]) == {"random"}
    assert set(payload["at_equal_time"]["60"]) == {"units", "mean_score"}  # scores, not regret, for objectives
    assert "mean score" in (out / "results.md").read_text()


@pytest.mark.parametrize("args, message", [
    ([f"--objective={SURROGATE}", "--table=x.json"], "pass exactly one of --table"),
    (["--objective=layernas_tf.benchmarks.surrogates:mobilenet_v3_large_224", "--flops_fraction=0.25"],
     "--flops_fraction=0.25: cost target <= .* is impossible"),
    ([f"--objective={SURROGATE}", "--search_space=nope"], "--search_space='nope'; allowed"),
])
def test_the_benchmark_cli_refuses_bad_objective_flags_before_any_run(args, message):
    done = subprocess.run([sys.executable, "-m", "layernas_tf.benchmarks.tables", *args, "--runs=1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    import re

    assert re.search(message, done.stderr), done.stderr[-2000:]


def test_the_own_time_benchmark_times_a_whole_run_without_its_queries():
    from layernas_tf.benchmarks.objectives import objective_benchmark
    from layernas_tf.search.harness import own_time
    from layernas_tf.search import make_searcher

    benchmark = objective_benchmark("layernas_tf.benchmarks.surrogates:cifar_mobilenet_v2_32")
    problem = benchmark.problem(0.5)
    calls = []

    class Counting:  # the queries: counted, and slow enough that timing them would show
        def query(self, encoding, rng):
            calls.append(encoding)
            import time
            time.sleep(0.05)
            return benchmark.query(encoding, rng)

    searcher = make_searcher("layernas", problem, 24, 0)
    seconds = own_time(searcher, Counting(), 0, 8)
    assert len(searcher.trials) == len(calls) == 24
    assert 0 < seconds < 0.05 * 24  # the 1.2 s of queries are not counted
