"""A searcher's own time per proposal (ask + tell + the final pick; the queries themselves excluded).

    layernas-own-time-benchmark --objective=layernas_tf.benchmarks.surrogates:mobilenet_v3_large_224 \
      --flops_fraction=0.5 --budget=400 --batches=1,8 --seeds=2 --out=runs/own_time

For each batch size n the searcher is asked for n candidates at a time; their noisy values (paired
noise, as in `layernas-benchmark`) are told back before the next ask. Prints a table and writes
`DIR/own_time.json`: per batch size, milliseconds per proposal of each seed. Pure Python.
"""

from __future__ import annotations

import json
import pathlib

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("objective", "layernas_tf.benchmarks.surrogates:mobilenet_v3_large_224",
                    "MODULE:NAME of an objective (as for layernas-benchmark --objective).")
flags.DEFINE_string("search_space", "", "Search space (default: the objective's).")
flags.DEFINE_float("flops_fraction", 0.5, "Target: this share of the costliest candidate's MAdds.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("algorithm", "layernas", "Searcher to time.")
flags.DEFINE_integer("budget", 400, "Queries per run.", lower_bound=1)
flags.DEFINE_list("batches", ["1", "8"], "Batch sizes n of ask(n).")
flags.DEFINE_integer("seeds", 2, "Runs per batch size (seeds 0..N-1).", lower_bound=1)
flags.DEFINE_string("out", "runs/own_time", "Output folder.")


@flags.validator("batches", message="--batches: positive integers, e.g. 1,8")
def _check_batches(values):
    return all(v.isdigit() and int(v) > 0 for v in values)


def main(argv):
    del argv
    from layernas_tf.benchmarks.objectives import objective_benchmark
    from layernas_tf.search import make_searcher
    from layernas_tf.search.harness import own_time

    benchmark = objective_benchmark(FLAGS.objective, FLAGS.search_space)
    problem = benchmark.problem(FLAGS.flops_fraction)
    results = {}
    print(f"{FLAGS.algorithm} on {FLAGS.objective} at {FLAGS.flops_fraction:.0%}, budget {FLAGS.budget}")
    print("| batch | ms per proposal, per seed |\n|---|---|")
    for batch in map(int, FLAGS.batches):
        per_seed = []
        for seed in range(FLAGS.seeds):
            searcher = make_searcher(FLAGS.algorithm, problem, FLAGS.budget, seed)
            seconds = own_time(searcher, benchmark, seed, batch)
            per_seed.append(1000 * seconds / max(1, len(searcher.trials)))
        results[str(batch)] = per_seed
        print(f"| ask({batch}) | " + ", ".join(f"{ms:.2f}" for ms in per_seed) + " |", flush=True)
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "own_time.json").write_text(json.dumps({
        "algorithm": FLAGS.algorithm, "objective": FLAGS.objective, "flops_fraction": FLAGS.flops_fraction,
        "budget": FLAGS.budget, "ms_per_proposal": results}, indent=2))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
