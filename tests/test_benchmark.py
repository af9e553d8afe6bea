"""The benchmark and ablation CLIs on tables written by the test, and LayerNAS on unseen tables."""

import json
import statistics
import subprocess
import sys

import pytest

from conftest import REPO
from layernas_tf.search import make_searcher, parse_settings
from layernas_tf.search.harness import query_noise, run_searcher
from layernas_tf.search.tables import TableError, describe, load_table, noise_level, reordered_records, synthetic_records


def _written(path, records):
    path.write_text(json.dumps(records))
    return path


def _cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    paths = {}
    for fmt in ("nas_bench_macro", "channel_bench_macro"):
        paths[fmt] = _written(folder / f"{fmt}.json", synthetic_records(4, 3, seed=7, fmt=fmt))
    return paths


def test_parse_settings_types_values_like_the_defaults():
    assert parse_settings("layernas", ["fill=cheapest", "per_bucket=2", "sweep_share=0.5"]) == {
        "fill": "cheapest", "per_bucket": 2, "sweep_share": 0.5}
    assert parse_settings("evolution", ["population_size=20"]) == {"population_size": 20}


@pytest.mark.parametrize("items, message", [
    (["fill"], "'fill' is not key=value"),
    (["speed=3"], "layernas has no setting 'speed'; allowed: num_buckets"),
    (["per_bucket=two"], "per_bucket='two': expected int"),
])
def test_parse_settings_refuses_bad_items(items, message):
    with pytest.raises(ValueError, match=message):
        parse_settings("layernas", items)


@pytest.mark.parametrize("fmt", ["nas_bench_macro", "channel_bench_macro"])
def test_benchmark_cli_writes_results_in_the_specified_shape(tables, tmp_path, fmt):
    out = tmp_path / "out"
    done = _cli("layernas_tf.benchmarks.tables", f"--table={tables[fmt]}", "--algorithms=layernas,random_unaware",
                "--runs=3", "--budgets=10,20", "--workers=1", f"--out={out}", "--layernas_settings=refine=none")
    assert done.returncode == 0, done.stderr
    payload = json.loads((out / "results.json").read_text())
    assert payload["table"] == str(tables[fmt]) and payload["format"] == fmt
    table = load_table(str(tables[fmt]))
    assert payload["oracle_mean_acc"] == table.oracle(table.problem(0.5))[1]
    assert set(payload["results"]) == {"layernas[refine=none]", "random_unaware"}
    for by_budget in payload["results"].values():
        assert set(by_budget) == {"10", "20"}
        for cell in by_budget.values():
            assert {"mean_regret", "q25", "q75", "mean_queries"} <= set(cell)
            assert cell["q25"] <= cell["q75"] and cell["mean_regret"] >= 0
    assert payload["results"]["random_unaware"]["20"]["mean_queries"] == 20
    assert set(payload["at_equal_time"]["20"]) == {"units", "mean_regret"}
    assert set(payload["at_equal_time"]["20"]["mean_regret"]) == {"layernas[refine=none]", "random_unaware"}
    assert "| layernas[refine=none] |" in (out / "results.md").read_text()
    assert (out / "regret.png").stat().st_size > 1000


def test_benchmark_cli_pairs_a_run_with_an_earlier_one_seed_by_seed(tables, tmp_path):
    table = f"--table={tables['nas_bench_macro']}"
    common = ["--algorithms=layernas,random", "--runs=4", "--budgets=10,20", "--workers=1"]
    done = _cli("layernas_tf.benchmarks.tables", table, *common, f"--out={tmp_path / 'one'}")
    assert done.returncode == 0, done.stderr
    done = _cli("layernas_tf.benchmarks.tables", table, *common, "--parallel=4", f"--out={tmp_path / 'four'}",
                f"--paired_with={tmp_path / 'one'}")
    assert done.returncode == 0, done.stderr
    one, four = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "four"))
    for payload in (one, four):
        for label, by_budget in payload["results"].items():
            for budget, cell in by_budget.items():  # the per-seed scores are the runs the means summarise
                assert set(payload["scores"][label][budget]) == {"0", "1", "2", "3"}
                assert statistics.fmean(payload["scores"][label][budget].values()) == pytest.approx(cell["mean_score"])
    diffs = [four["scores"]["layernas"]["20"][s] - one["scores"]["layernas"]["20"][s] for s in "0123"]
    paired = four["paired_with"]["score_diff_of"]["layernas"]["20"]
    assert paired["runs"] == 4 and paired["score_diff"] == pytest.approx(statistics.fmean(diffs))
    assert paired["se"] == pytest.approx(statistics.stdev(diffs) / 2)
    assert "paired difference of mean score from the same algorithm in" in (tmp_path / "four" / "results.md").read_text()
    done = _cli("layernas_tf.benchmarks.tables", table, *common, "--flops_fraction=0.25",
                f"--out={tmp_path / 'other'}", f"--paired_with={tmp_path / 'one'}")
    assert done.returncode != 0 and f"--paired_with={tmp_path / 'one'}: target_flops was" in done.stderr
    assert not (tmp_path / "other").exists()  # refused before any run
    done = _cli("layernas_tf.benchmarks.tables", table, *common, f"--paired_with={tmp_path / 'none'}")
    assert done.returncode != 0 and f"--paired_with={tmp_path / 'none'}: cannot read" in done.stderr


def test_benchmark_cli_reads_peers_from_an_earlier_run_as_a_full_rerun_would_give_them(tables, tmp_path):
    table = f"--table={tables['nas_bench_macro']}"
    common = ["--runs=3", "--budgets=10,20", "--workers=1"]
    done = _cli("layernas_tf.benchmarks.tables", table, *common, "--algorithms=layernas,random,evolution",
                f"--out={tmp_path / 'full'}")
    assert done.returncode == 0, done.stderr
    done = _cli("layernas_tf.benchmarks.tables", table, *common, "--algorithms=layernas",
                f"--peers_from={tmp_path / 'full'}", f"--out={tmp_path / 'again'}")
    assert done.returncode == 0, done.stderr
    full, again = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("full", "again"))
    assert list(again["results"]) == ["layernas", "random", "evolution"]
    assert again["peers_from"] == {"folder": str(tmp_path / "full"), "algorithms": ["random", "evolution"]}
    for key in ("results", "scores", "at_equal_time"):
        assert again[key] == full[key]
    assert list(again["paired"]["score_diff_of"]) == ["evolution", "random"]
    for label, by_budget in full["paired"]["score_diff_of"].items():
        for budget, cell in by_budget.items():
            assert again["paired"]["score_diff_of"][label][budget] == pytest.approx(cell)
    assert "| random |" in (tmp_path / "again" / "results.md").read_text()
    done = _cli("layernas_tf.benchmarks.tables", table, "--runs=2", "--budgets=10,20", "--workers=1",
                "--algorithms=layernas", f"--peers_from={tmp_path / 'full'}", f"--out={tmp_path / 'other'}")
    assert done.returncode != 0 and f"--peers_from={tmp_path / 'full'}: runs was 3 there, 2 here" in done.stderr
    assert not (tmp_path / "other").exists()  # refused before any run


def test_paired_with_pairs_a_setting_with_its_algorithms_default_when_the_earlier_run_lacks_it():
    from layernas_tf.benchmarks.summary import paired_with

    theirs = {"layernas": {"20": {"0": 90.0, "1": 91.0, "2": 92.0}}, "random": {"20": {"0": 80.0}}}
    mine = {"layernas[speculate=hedge]": {"20": {"0": 90.5, "1": 90.0, "3": 99.0}},
            "random": {"20": {"0": 81.0}}, "evolution": {"20": {"0": 85.0}}}
    diffs = paired_with(mine, theirs)
    hedge = diffs["layernas[speculate=hedge]"]["20"]
    assert hedge["runs"] == 2 and hedge["score_diff"] == pytest.approx(-0.25)  # seeds 0 and 1: +0.5, -1.0
    assert hedge["se"] == pytest.approx(statistics.stdev([0.5, -1.0]) / 2 ** 0.5)
    assert diffs["random"]["20"] == {"score_diff": 1.0, "se": 0.0, "runs": 1}
    assert "evolution" not in diffs  # nothing to pair with
    # A label the earlier run has is paired with itself, not with the default.
    assert paired_with(mine, {**theirs, "layernas[speculate=hedge]": {"20": {"0": 90.5, "1": 90.0}}}
                       )["layernas[speculate=hedge]"]["20"]["score_diff"] == 0.0


def test_a_table_with_one_accuracy_per_architecture_is_noise_free(tmp_path):
    path = _written(tmp_path / "noise_free.json", synthetic_records(3, 4, seed=5, noise=0.0, seeds=1))
    table = load_table(str(path))
    assert noise_level(table) == 0.0
    assert describe(table)[0].endswith("3 layers x (4, 4, 4) options, 1 seed, no query noise")
    encoding = (1, 2, 3)
    assert {table.query(encoding, query_noise(seed, encoding, 0)) for seed in range(5)} == {
        table.mean_accuracy[encoding]}
    out = tmp_path / "out"
    done = _cli("layernas_tf.benchmarks.tables", f"--table={path}", "--algorithms=layernas,random",
                "--runs=2", "--budgets=10,20", "--workers=1", f"--out={out}")
    assert done.returncode == 0, done.stderr
    payload = json.loads((out / "results.json").read_text())
    assert set(payload["results"]) == {"layernas", "random"}
    assert payload["seeds"] == 1 and payload["query_noise"] == 0.0


def _cells(metric, by_budget):
    other = "mean_score" if metric == "mean_regret" else "mean_regret"
    return {b: {metric: value, other: None if metric == "mean_score" else 90.0, "mean_wall_units": units}
            for b, (value, units) in by_budget.items()}


@pytest.mark.parametrize("metric, values, at_reference_times, bold", [
    # tables: regret, lower is better; random's 0.45 at 10 units is between its 0.6 at 5 and 0.3 at 20 in log time
    ("mean_regret", {"layernas": {10: (0.5, 10.0), 20: (0.2, 40.0)}, "random": {10: (0.6, 5.0), 20: (0.3, 20.0)}},
     {"10": {"layernas": 0.5, "random": 0.45}, "20": {"layernas": 0.2, "random": 0.3}}, "| layernas | 0.500 | **0.200** |"),
    # objectives: score, higher is better
    ("mean_score", {"layernas": {10: (90.0, 10.0), 20: (95.0, 40.0)}, "random": {10: (88.0, 5.0), 20: (94.0, 20.0)}},
     {"10": {"layernas": 90.0, "random": 91.0}, "20": {"layernas": 95.0, "random": 94.0}}, "| random | **91.000** | 94.000 |"),
])
def test_results_at_equal_time_are_named_after_what_they_hold(metric, values, at_reference_times, bold):
    from layernas_tf.benchmarks.summary import equal_time_table

    summary = {algorithm: _cells(metric, by_budget) for algorithm, by_budget in values.items()}
    markdown, data = equal_time_table(summary, "layernas", [10, 20])
    assert set(data) == {"10", "20"}
    for budget, expected in at_reference_times.items():
        assert set(data[budget]) == {"units", metric}
        assert data[budget]["units"] == values["layernas"][int(budget)][1]
        assert data[budget][metric] == pytest.approx(expected)
    assert bold in markdown


def test_benchmark_cli_refuses_a_malformed_table_and_a_bad_setting(tables, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    done = _cli("layernas_tf.benchmarks.tables", f"--table={empty}", "--runs=1")
    assert done.returncode != 0 and "expected a non-empty JSON object" in done.stderr
    done = _cli("layernas_tf.benchmarks.tables", f"--table={tables['channel_bench_macro']}", "--layernas_settings=fill=middle")
    assert done.returncode != 0 and "--layernas_settings: layernas fill='middle' is not allowed" in done.stderr


def test_ablation_cli_runs_each_variant(tables, tmp_path):
    done = _cli("layernas_tf.benchmarks.ablation", f"--tables={tables['nas_bench_macro']}", "--variants=default,paper",
                "--runs=2", "--budgets=15", "--workers=1", f"--out={tmp_path}")
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "ablation.json").read_text())
    assert set(payload["variants"]) == {"default", "paper"}
    assert payload["variants"]["paper"]["settings"] == ["fill=cheapest", "bucket_by=total", "selection=observed",
                                                         "refine=none", "num_buckets=0"]
    assert "| `paper` |" in (tmp_path / "ablation.md").read_text()
    assert "Largest setback with budget" in (tmp_path / "ablation.md").read_text()
    # Each run's score per seed, and each variant's paired difference from the first (same seeds and noise).
    table = str(tables['nas_bench_macro'])
    default, paper = (payload["variants"][v] for v in ("default", "paper"))
    assert set(paper["scores"][table]["15"]) == {"0", "1"}
    diffs = [paper["scores"][table]["15"][s] - default["scores"][table]["15"][s] for s in ("0", "1")]
    assert paper["paired_with_first"][table]["15"]["score_diff"] == pytest.approx(sum(diffs) / 2)
    assert paper["paired_with_first"][table]["15"]["runs"] == 2
    assert default["paired_with_first"][table]["15"]["score_diff"] == 0.0


def test_largest_setback_is_the_worst_later_budget_against_any_earlier_one():
    from layernas_tf.benchmarks.summary import largest_setback

    regrets = {25: {"mean_regret": 0.5}, 50: {"mean_regret": 0.2}, 100: {"mean_regret": 0.3},
               200: {"mean_regret": 0.25}, 400: {"mean_regret": 0.1}}
    setback, small, large = largest_setback(regrets, "mean_regret")
    assert (round(setback, 6), small, large) == (0.1, 50, 100)
    scores = {50: {"mean_score": 90.0}, 100: {"mean_score": 89.5}, 200: {"mean_score": 91.0}}
    assert largest_setback(scores, "mean_score") == (0.5, 50, 100)
    assert largest_setback({50: {"mean_regret": 0.3}, 100: {"mean_regret": 0.2}}, "mean_regret") == (0.0, 50, 100)


def test_reordered_table_keeps_every_record(tmp_path):
    path = _written(tmp_path / "t.json", synthetic_records(3, 2, seed=1))
    table = load_table(str(path))
    records = reordered_records(table, [2, 0, 1])
    original = json.loads(path.read_text())
    assert records["100"]["mean"] == original["001"]["mean"]
    assert len(records) == 8
    with pytest.raises(ValueError, match="permutation of 0..2"):
        reordered_records(table, [0, 0, 1])


def test_incomplete_table_is_refused(tmp_path):
    records = synthetic_records(3, 2, seed=1)
    records.pop("000")
    path = _written(tmp_path / "t.json", records)
    with pytest.raises(TableError, match="7 records, but the per-layer characters"):
        load_table(str(path))


def _mean_regret(name, table, problem, budget, runs):
    results = [run_searcher(lambda p, b, s: make_searcher(name, p, b, s), name, table, problem, [budget], seed)[0]
               for seed in range(runs)]
    return statistics.fmean(r.regret for r in results)


@pytest.mark.parametrize("seed", [11, 12])
def test_layernas_beats_aware_random_search_and_evolution_on_unseen_tables(tmp_path, seed):
    path = _written(tmp_path / "unseen.json", synthetic_records(6, 4, seed=seed))
    table = load_table(str(path))
    problem = table.problem(0.5)
    layernas = _mean_regret("layernas", table, problem, 100, runs=10)
    assert layernas < _mean_regret("random", table, problem, 100, runs=10)
    assert layernas < _mean_regret("evolution", table, problem, 100, runs=10)


@pytest.mark.parametrize("algorithm", ["layernas", "evolution", "random"])
def test_one_simulated_worker_takes_exactly_the_sum_of_the_query_times(tables, algorithm):
    table = load_table(str(tables["channel_bench_macro"]))
    problem = table.problem(0.5)
    searchers = []

    def factory(problem, budget, seed):
        searchers.append(make_searcher(algorithm, problem, budget, seed))
        return searchers[-1]

    results = run_searcher(factory, algorithm, table, problem, [30], seed=1, parallel=1)
    unit = table.unit_cost(problem)
    expected = sum(problem.cost_of(t.encoding) / unit for t in searchers[-1].trials[:30])
    assert results[0].wall_units == pytest.approx(expected, rel=1e-12)


def test_eight_simulated_workers_finish_layernas_sooner_with_the_same_queries(tmp_path):
    path = _written(tmp_path / "six_layers.json", synthetic_records(6, 4, seed=3))
    table = load_table(str(path))
    problem = table.problem(0.5)

    def factory(problem, budget, seed):
        return make_searcher("layernas", problem, budget, seed)

    one = run_searcher(factory, "layernas", table, problem, [100], seed=2, parallel=1)[0]
    eight = run_searcher(factory, "layernas", table, problem, [100], seed=2, parallel=8)[0]
    assert one.queries == eight.queries == 100
    assert eight.wall_units < one.wall_units / 4
