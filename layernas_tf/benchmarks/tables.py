"""Benchmark searchers on a tabular NAS benchmark, or on an objective over a real space, under noisy queries.

    layernas-benchmark --table=../shared/benchmarks/nas-bench-macro_cifar10.json \
        --algorithms=layernas,random,evolution,ppo,random_unaware,evolution_unaware,ppo_unaware,optuna_tpe,pyglove_evolution \
        --runs=100 --flops_fraction=0.5 --budgets=25,50,100,200,400 --out=DIR
    layernas-benchmark --objective=layernas_tf.benchmarks.surrogates:mobilenet_v3_large_224 \
        --search_space=mobilenet_v3_large --input_size=224 --flops_fraction=0.5 --out=DIR

Writes DIR/results.json, DIR/results.md (a markdown table) and DIR/regret.png (mean regret against
queries with the 25-75% band; for an objective, whose optimum is unknown, mean score instead).
results.json holds, per algorithm and budget, `mean_score` (the mean of the returned models' mean
accuracy or objective `mean()`) with its standard error, and `paired`: each algorithm's paired
difference of mean score from LayerNAS's with its standard error (the same seeds and query noise). With `--parallel=N`, each search runs N simulated workers (a query takes
time proportional to its FLOPs, results are told in completion order); results.json then holds
`mean_wall_units` per algorithm and budget, DIR/regret_time.png plots regret against simulated time,
and results.md compares every algorithm at the simulated times LayerNAS needs. Runs are spread over
`--workers` processes. No TensorFlow.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import pathlib
import time
from typing import Dict, List, Optional, Tuple, Union

from absl import app, flags, logging

from layernas_tf.search import ALGORITHMS, make_searcher, parse_settings
from layernas_tf.settings_flag import define_layernas_settings
from layernas_tf.search.harness import RunResult, paired_differences, run_searcher, summarize
from layernas_tf.search.problem import InfeasibleTargetError
from layernas_tf.benchmarks.summary import (equal_time_table, markdown_table, metric_of, paired_with, scores_by_seed,  # noqa: F401
                                             paired_table)
from layernas_tf.search.tables import TableError, describe, load_table, noise_level, seeds_per_architecture

FLAGS = flags.FLAGS
flags.DEFINE_string("table", None, "Path to a benchmark table (NAS-Bench-Macro or Channel-Bench-Macro JSON format).")
flags.DEFINE_string("objective", None, "Instead of --table: MODULE:NAME of an objective with mean(encoding, cost) and "
                    "sample(encoding, cost, rng), over --search_space (costs: analytic MAdds).")
flags.DEFINE_string("search_space", None, "With --objective: the space (default: the objective's search_space).")
flags.DEFINE_integer("input_size", 0, "With --objective: input size (0: the objective's, else the space's).",
                     lower_bound=0)
flags.DEFINE_integer("num_classes", 0, "With --objective: classes (0: the objective's, else the space's).",
                     lower_bound=0)
flags.DEFINE_list("algorithms", list(ALGORITHMS), f"Algorithms to run; allowed: {', '.join(ALGORITHMS)}.")
flags.DEFINE_integer("runs", 100, "Runs per algorithm and budget (seeds 0..runs-1).", lower_bound=1)
flags.DEFINE_float("flops_fraction", 0.5, "Cost target: FLOPs at most this fraction of the largest model's.")
flags.DEFINE_list("budgets", ["25", "50", "100", "200", "400"], "Query budgets.")
flags.DEFINE_string("out", "runs/benchmark", "Output folder.")
flags.DEFINE_integer("workers", os.cpu_count() or 1, "Worker processes (of this benchmark, not simulated).",
                     lower_bound=1)
flags.DEFINE_integer("parallel", 1, "Simulated workers per search: a query takes time proportional to the "
                     "candidate's FLOPs (the table's median model: 1 unit), results are told in completion order.",
                     lower_bound=1)
define_layernas_settings(" The results are then labelled layernas[key=value,...].")
flags.DEFINE_string("paired_with", None, "An earlier --out folder of the same table or objective and target: "
                    "adds each algorithm's paired difference of mean score from its runs there (same seeds and "
                    "query noise), e.g. 8 simulated workers against 1; a label with --layernas_settings that "
                    "run lacks is paired with its plain algorithm there (a setting against the default).")
flags.DEFINE_string("peers_from", None, "An earlier --out folder of the same table or objective, target, runs, "
                    "budgets and --parallel: its algorithms that --algorithms does not name are read from there "
                    "(rows, per-seed scores and times) instead of run again, e.g. to rerun LayerNAS alone after "
                    "changing it. A run depends only on its algorithm, seed and problem, so the rows are the ones "
                    "a full rerun would give.")


@flags.validator("algorithms", message=f"--algorithms: each must be one of {', '.join(ALGORITHMS)}")
def _check_algorithms(values):
    return bool(values) and all(v in ALGORITHMS for v in values)


@flags.validator("budgets", message="--budgets: comma-separated positive integers, e.g. 25,50,100")
def _check_budgets(values):
    return bool(values) and all(v.isdigit() and int(v) > 0 for v in values)


@flags.validator("flops_fraction", message="--flops_fraction must be in (0, 1]")
def _check_fraction(value):
    return 0 < value <= 1


Job = Tuple[str, str, Tuple[Tuple[str, object], ...], int]  # (label, algorithm, settings, seed)
# What a run searches: a table's path, or ("objective", MODULE:NAME, space, input size, classes).
Source = Union[str, Tuple[str, str, str, int, int]]


def load_benchmark(source: Source):
    """The table or objective benchmark of `source` (cached per process)."""
    key = source if isinstance(source, str) else tuple(source)
    if key not in _TABLES:
        if isinstance(source, str):
            _TABLES[key] = load_table(source)
        else:
            from layernas_tf.benchmarks.objectives import objective_benchmark

            _TABLES[key] = objective_benchmark(*source[1:])
    return _TABLES[key]


def _run_job(job: Job, table_path: Source, flops_fraction: float, budgets: List[int], parallel: int = 1) -> List[RunResult]:
    label, algorithm, settings, seed = job
    table = load_benchmark(table_path)
    problem = table.problem(flops_fraction)
    factory = functools.partial(_make, algorithm, dict(settings))
    start = time.perf_counter()
    results = run_searcher(factory, label, table, problem, budgets, seed, parallel)
    for r in results:
        r.seconds = time.perf_counter() - start
    return results


_TABLES: Dict[str, object] = {}


def _make(algorithm, settings, problem, budget, seed):
    return make_searcher(algorithm, problem, budget, seed, **settings)


def label_for(algorithm: str, settings: dict) -> str:
    """`layernas` or `layernas[fill=cheapest,refine=none]`."""
    if not settings:
        return algorithm
    return f"{algorithm}[{','.join(f'{k}={v}' for k, v in settings.items())}]"


def run_jobs(table_path: Source, flops_fraction: float, budgets: List[int], jobs: List[Job],
             workers: int, parallel: int = 1, runs: Optional[List[RunResult]] = None
             ) -> Tuple[Dict[str, Dict[int, dict]], Dict[str, float], float]:
    """Run `jobs` over `workers` processes; returns (summary by label, CPU seconds by label, wall seconds).
    Every run's result is appended to `runs` when given."""
    start = time.perf_counter()
    worker = functools.partial(_run_job, table_path=table_path, flops_fraction=flops_fraction, budgets=budgets,
                               parallel=parallel)
    results: List[RunResult] = []
    seconds: Dict[str, float] = {}
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for i, job_results in enumerate(pool.imap_unordered(worker, jobs, chunksize=1)):
            results.extend(job_results)
            label = job_results[0].algorithm
            seconds[label] = seconds.get(label, 0.0) + job_results[-1].seconds
            if (i + 1) % max(1, len(jobs) // 10) == 0:
                logging.info("%d/%d runs done (%.0f s)", i + 1, len(jobs), time.perf_counter() - start)
    if runs is not None:
        runs.extend(results)
    return summarize(results), seconds, time.perf_counter() - start


def load_problem(table_path: Source, flops_fraction: float):
    """(benchmark, problem) or app.UsageError with the loader's message."""
    from layernas_tf.benchmarks.objectives import ObjectiveError

    try:
        table = load_benchmark(table_path)
        return table, table.problem(flops_fraction)
    except InfeasibleTargetError as e:
        raise app.UsageError(f"--flops_fraction={flops_fraction:g}: {e}")
    except (TableError, ObjectiveError) as e:
        raise app.UsageError(str(e))


def plot(summary: dict, title: str, path: pathlib.Path, x: str = "mean_queries") -> None:
    """Mean regret, or mean score for objectives (25-75% band), against mean queries, or against `x`
    (e.g. 'mean_wall_units')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    metric = metric_of(summary)
    for algorithm, by_budget in summary.items():
        budgets = sorted(by_budget)
        xs = [by_budget[b][x] for b in budgets]
        y = [by_budget[b][metric] for b in budgets]
        style = dict(linewidth=2.5, zorder=5) if algorithm.startswith("layernas") else dict(linewidth=1.2)
        line, = ax.plot(xs, y, marker="o", markersize=3, label=algorithm, **style)
        ax.fill_between(xs, [by_budget[b]["q25"] for b in budgets], [by_budget[b]["q75"] for b in budgets],
                        color=line.get_color(), alpha=0.12)
    ax.set_xscale("log")
    ax.set_xlabel("queries" if x == "mean_queries" else "simulated time (median model = 1 unit)")
    ax.set_ylabel("regret (mean accuracy points)" if metric == "mean_regret" else "mean score of the returned model")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def source_from_flags() -> Source:
    """The table path, or the objective source, that the flags name (UsageError unless exactly one)."""
    if bool(FLAGS.table) == bool(FLAGS.objective):
        raise app.UsageError("pass exactly one of --table (the path of a NAS-Bench-Macro or Channel-Bench-Macro JSON "
                             "file) and --objective (MODULE:NAME)")
    if FLAGS.table:
        return FLAGS.table
    return ("objective", FLAGS.objective, FLAGS.search_space or "", FLAGS.input_size, FLAGS.num_classes)


def describe_source(table, problem, fraction: float) -> dict:
    """What results.json records of the benchmark (and logs it)."""
    oracle, oracle_acc = table.oracle(problem)
    if oracle is None:
        logging.info("objective %s over %s @%d: target MAdds <= %.0f (%.0f%% of the costliest candidate's %.0f)",
                     table.name, table.space.name, table.input_size, problem.max_cost, 100 * fraction, table.max_cost)
        return {"objective": table.name, "search_space": table.space.name, "input_size": table.input_size,
                "num_classes": table.num_classes, "flops_fraction": fraction, "target_flops": problem.max_cost,
                "max_flops": table.max_cost}
    for line in describe(table):
        logging.info(line)
    logging.info("target FLOPs <= %.0f (%.0f%% of max); oracle %s at %.3f", problem.max_cost, 100 * fraction,
                 table.key(oracle), oracle_acc)
    return {"table": table.path, "format": table.format, "flops_fraction": fraction, "target_flops": problem.max_cost,
            "oracle": table.key(oracle), "oracle_mean_acc": oracle_acc,
            "seeds": seeds_per_architecture(table), "query_noise": noise_level(table)}


def main(argv):
    del argv
    source = source_from_flags()
    budgets = sorted(int(b) for b in FLAGS.budgets)
    table, problem = load_problem(source, FLAGS.flops_fraction)
    described = describe_source(table, problem, FLAGS.flops_fraction)
    layernas_settings = parse_settings("layernas", FLAGS.layernas_settings)
    try:  # values the searcher refuses (e.g. fill=middle) are flag errors, before any run starts
        make_searcher("layernas", problem, budgets[-1], 0, **layernas_settings)
    except ValueError as e:
        raise app.UsageError(f"--layernas_settings: {e}")
    earlier = _earlier_scores(FLAGS.paired_with, described) if FLAGS.paired_with else None
    peers = _peers(FLAGS.peers_from, described, budgets) if FLAGS.peers_from else {}
    labels, jobs = [], []
    for algorithm in FLAGS.algorithms:
        settings = layernas_settings if algorithm == "layernas" else {}
        labels.append(label_for(algorithm, settings))
        jobs += [(labels[-1], algorithm, tuple(settings.items()), seed) for seed in range(FLAGS.runs)]
    runs: List[RunResult] = []
    summary, seconds, wall = run_jobs(source, FLAGS.flops_fraction, budgets, jobs, FLAGS.workers, FLAGS.parallel,
                                      runs=runs)
    summary = {label: summary[label] for label in labels}
    peers = {label: peer for label, peer in peers.items() if label not in labels}
    for label, peer in peers.items():
        summary[label] = {int(b): cell for b, cell in peer["results"].items()}
        seconds[label] = peer["cpu_seconds_per_run"] * FLAGS.runs
        labels.append(label)
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    reference = next((label for label in labels if label.startswith("layernas")), None)
    payload = {
        **described,
        "runs": FLAGS.runs, "budgets": budgets, "workers": FLAGS.workers, "parallel": FLAGS.parallel,
        "wall_seconds": wall,
        "cpu_seconds_per_run": {label: seconds[label] / FLAGS.runs for label in labels},
        "results": {label: {str(b): v for b, v in by_budget.items()} for label, by_budget in summary.items()},
    }
    scores = {**scores_by_seed(runs), **{label: peer["scores"] for label, peer in peers.items()}}
    if peers:
        payload["peers_from"] = {"folder": FLAGS.peers_from, "algorithms": list(peers)}
    if reference is not None:
        payload["paired"] = {"reference": reference, "score_diff_of": {
            a: {str(b): v for b, v in by.items()} for a, by in paired_differences(runs, reference).items()}}
        if peers:  # other minus reference, seed by seed, as for the algorithms run here
            diffs = {**payload["paired"]["score_diff_of"], **paired_with(
                {label: scores[label] for label in peers}, {label: scores[reference] for label in peers})}
            payload["paired"]["score_diff_of"] = dict(sorted(diffs.items()))
    name = pathlib.Path(FLAGS.table).name if FLAGS.table else f"{table.name} (surrogate or user objective)"
    title = f"{name}: FLOPs <= {FLAGS.flops_fraction:g} x max, {FLAGS.runs} runs, noisy queries"
    measure = "mean regret" if metric_of(summary) == "mean_regret" else "mean score"
    md = (f"{title}\n\n{measure} [25%, 75%] (mean queries used; mean simulated time)\n\n"
          + markdown_table(summary, budgets))
    if peers:
        md += f"\n\n{', '.join(peers)}: read from {FLAGS.peers_from} (same problem, seeds and query noise)"
    if reference is not None and "paired" in payload:
        md += (f"\n\npaired difference of mean score from {reference} (other minus {reference}; ± standard error, "
               "same seeds and query noise)\n\n" + paired_table(payload["paired"]["score_diff_of"], budgets))
    payload["scores"] = scores
    if earlier is not None:
        payload["paired_with"] = {"folder": FLAGS.paired_with, "score_diff_of": paired_with(payload["scores"], earlier)}
        md += (f"\n\npaired difference of mean score from the same algorithm in {FLAGS.paired_with} (this run minus "
               "that; ± standard error, same seeds and query noise)\n\n"
               + paired_table(payload["paired_with"]["score_diff_of"], budgets))
    if reference is not None and len(labels) > 1:
        equal_md, payload["at_equal_time"] = equal_time_table(summary, reference, budgets)
        md += (f"\n\n{measure} at the simulated time {reference} needs for each budget ({FLAGS.parallel} "
               f"simulated workers; n/a: not one checkpoint reached by then)\n\n" + equal_md)
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    (out / "results.md").write_text(md + "\n")
    plot(summary, title, out / "regret.png")
    plot(summary, title + f", {FLAGS.parallel} simulated workers", out / "regret_time.png", x="mean_wall_units")
    print(md)
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'}, regret.png and regret_time.png in {out} "
          f"in {wall:.0f} s")


def _earlier_run(flag: str, folder: str, expected: dict, advice: str) -> dict:
    """The results.json of the benchmark in `folder`, after checking it has per-seed scores and the
    `expected` values.

    Raises:
      app.UsageError: naming --`flag` and what is missing or different.
    """
    path = pathlib.Path(folder) / "results.json"
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise app.UsageError(f"--{flag}={folder}: cannot read {path} ({e})")
    if "scores" not in earlier:
        raise app.UsageError(f"--{flag}={folder}: {path} has no per-seed scores; rerun that benchmark first")
    for key, value in expected.items():
        if earlier.get(key) != value:
            raise app.UsageError(f"--{flag}={folder}: {key} was {earlier.get(key)!r} there, {value!r} here; {advice}")
    return earlier


def _earlier_scores(folder: str, described: dict) -> dict:
    """The per-seed scores of the benchmark in `folder`, after checking it ran the same problem."""
    keys = ("objective", "search_space", "input_size", "num_classes", "target_flops", "oracle", "oracle_mean_acc")
    expected = {key: described[key] for key in keys if key in described}
    return _earlier_run("paired_with", folder, expected, "pair runs of the same problem")["scores"]


def _peers(folder: str, described: dict, budgets: List[int]) -> Dict[str, dict]:
    """Per algorithm label of the benchmark in `folder`: its results, per-seed scores and seconds per run,
    after checking it ran the same problem, runs, budgets and simulated workers."""
    expected = {**described, "runs": FLAGS.runs, "budgets": budgets, "parallel": FLAGS.parallel}
    earlier = _earlier_run("peers_from", folder, expected,
                           "read peers from a run of the same problem, runs, budgets and --parallel")
    return {label: {"results": earlier["results"][label], "scores": earlier["scores"][label],
                    "cpu_seconds_per_run": earlier["cpu_seconds_per_run"][label]} for label in earlier["results"]}


def run():
    app.run(main)


if __name__ == "__main__":
    run()
