"""Where a trial's wall time goes, what the search adds over plain Keras, and what cuts tracing.

    python -m layernas_tf.benchmarks.trial --candidates=4 --out=runs/trial_benchmark

1. Overhead: the same candidates (the first LayerNAS proposals for the default target) are trained
   with identical data, seeds and compile settings by a plain `build; compile; fit; evaluate` loop
   (before and after, averaged, after an untimed warm-up) and through `layernas_tf.api.search`
   (profiling, store writes, callbacks, session clearing). Overhead = (search - plain) / plain.
2. Breakdown: each search trial's time split into build, tracing, training steps, evaluation,
   profiling and store writes.
3. Tracing: one candidate trained under each `steps_per_execution` setting (and with Grappler's
   graph optimizations off), reporting the first compiled call's extra time and the epoch time.
Prints tables and writes DIR/trial_benchmark.json and DIR/trial_benchmark.png.

    layernas-trial-benchmark --workers=1,2 --candidates=8 --out=runs/trial_benchmark

4. Parallel trials (with --workers): the same candidates trained through the local executor with each
   number of worker processes (after one untimed warm-up trial per worker, so TensorFlow's start-up
   is not counted), plus one worker given every core. Writes DIR/parallel.json:
   {"trials_per_minute": {"1": float, "2": float, ...}, "speedup": ..., "same_rewards": ...}.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("search_space", "cifar_mobilenet_v2", "Search space.")
flags.DEFINE_string("dataset", "digits", "Dataset (see layernas_tf.main).")
flags.DEFINE_integer("candidates", 4, "Candidates trained by each path.", lower_bound=1)
flags.DEFINE_integer("epochs", 3, "Proxy epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
flags.DEFINE_list("steps_per_execution", ["1", "8", "32"], "Settings compared in the tracing study.")
flags.DEFINE_string("out", "runs/trial_benchmark", "Output folder.")
flags.DEFINE_list("workers", [], "Run the parallel study instead: local worker counts to compare, e.g. 1,2.")

PHASES = ("data", "build", "trace", "train", "eval", "cleanup", "store", "other")


def main(argv):
    del argv
    if FLAGS.workers:
        return parallel_study([int(w) for w in FLAGS.workers])
    from layernas_tf import quiet

    tf = quiet.import_tensorflow()
    import keras

    import searchspaces
    from layernas_tf import api
    from layernas_tf.costs import candidate_costs
    from layernas_tf.search import make_searcher
    from searchspaces.builder import build
    from train.data import load_dataset
    from train.trainer import TrainSettings, compile_model, fit_and_evaluate

    tf.config.experimental.enable_op_determinism()
    space = searchspaces.get_space(FLAGS.search_space)
    data = load_dataset(FLAGS.dataset, space.input_size, 0)
    train = data.batched("train", FLAGS.batch_size, shuffle=True, seed=0)
    validation = data.batched("validation", FLAGS.batch_size)
    steps = data.steps_per_epoch("train", FLAGS.batch_size)
    settings = TrainSettings(epochs=FLAGS.epochs, batch_size=FLAGS.batch_size)
    madds = api.Target("madds", float(candidate_costs(space, space.default, space.input_size, data.num_classes).madds))

    def plain_pass(encodings):
        walls = []
        for encoding in encodings:
            start = time.perf_counter()
            keras.utils.set_random_seed(api.trial_seed(0, encoding))
            model = build(space, encoding, (space.input_size, space.input_size, 3), data.num_classes, bn_momentum=0.9)
            compile_model(model, settings, steps)
            model.fit(train, epochs=FLAGS.epochs, verbose=0)
            model.evaluate(validation, verbose=0)
            walls.append(time.perf_counter() - start)
            keras.backend.clear_session()
        return walls

    # 1+2. A warm-up (fills the data cache, loads kernels), then plain Keras, the search and plain
    # Keras again on the same candidates; the search is compared with the mean of the two plain passes.
    problem = api.make_problem(space, madds, space.input_size, data.num_classes)
    planner = make_searcher("layernas", problem, FLAGS.candidates, 0)  # first-layer children: reward-independent
    encodings = []
    while len(encodings) < FLAGS.candidates:
        encoding = planner.ask(1)[0]
        planner.tell(encoding, 0.0)
        encodings.append(space.to_string(encoding))
    plain_pass([space.to_string(space.default)])
    plain_before = plain_pass(encodings)
    search_start = time.perf_counter()
    result = api.search(space, train, validation, madds, max_trials=FLAGS.candidates, epochs=FLAGS.epochs,
                        search_dir=tempfile.mkdtemp(prefix="trial_benchmark_"), num_classes=data.num_classes,
                        compile_fn=lambda m: compile_model(m, settings, steps))
    search_wall = time.perf_counter() - search_start
    if [t.encoding for t in result.trials] != encodings:
        raise app.UsageError(f"--candidates={FLAGS.candidates}: the search trained other candidates than planned; "
                             "use at most the first layer's options")
    plain_after = plain_pass(encodings)
    plain_walls = [(a + b) / 2 for a, b in zip(plain_before, plain_after)]
    breakdown = []
    for trial, store_seconds in zip(result.trials, result.store_seconds):
        row = {phase: trial.timings.get(phase, 0.0) for phase in PHASES}
        row["store"] = store_seconds
        breakdown.append(row)
    unaccounted = search_wall - sum(sum(r.values()) for r in breakdown)
    for row in breakdown:  # searcher, seeding and loop time between the timed phases
        row["other"] = unaccounted / len(breakdown)
    plain_wall = sum(plain_walls)
    overhead_pct = 100.0 * (search_wall - plain_wall) / plain_wall

    # 3. Tracing study on the default candidate.
    tracing = []
    variants = [(int(s), True) for s in FLAGS.steps_per_execution] + [(int(FLAGS.steps_per_execution[-1]), False)]
    for spe, grappler in variants:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not grappler})
        keras.utils.set_random_seed(0)
        model = build(space, space.default, (space.input_size, space.input_size, 3), data.num_classes, bn_momentum=0.9)
        compile_model(model, TrainSettings(epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, steps_per_execution=spe),
                      steps)
        start = time.perf_counter()
        trained = fit_and_evaluate(model, train, validation, FLAGS.epochs)
        tracing.append({"steps_per_execution": spe, "grappler": grappler, "wall": time.perf_counter() - start,
                        "val_accuracy": trained.val_accuracy, **trained.timings})
        keras.backend.clear_session()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})

    totals = {phase: sum(r[phase] for r in breakdown) for phase in PHASES}
    trial_total = sum(totals.values())
    print(f"\n{FLAGS.candidates} candidates of {space.name} on {data.name} ({data.sizes['train']} train images, "
          f"batch {FLAGS.batch_size}, {FLAGS.epochs} epochs)\n")
    print("| path | wall s | per trial s | trials/min |\n|---|---|---|---|")
    for name, wall in (("plain compile+fit+evaluate", plain_wall), ("layernas_tf search", search_wall)):
        print(f"| {name} | {wall:.1f} | {wall / FLAGS.candidates:.2f} | {60 * FLAGS.candidates / wall:.2f} |")
    print(f"\nsearch overhead over plain Keras: {overhead_pct:+.1f}%\n")
    print("| phase | seconds per trial | share |\n|---|---|---|")
    for phase in PHASES:
        print(f"| {phase} | {totals[phase] / FLAGS.candidates:.3f} | {100 * totals[phase] / trial_total:.1f}% |")
    print("\n| steps_per_execution | grappler | trace s | train s | eval s | wall s | val acc |\n|---|---|---|---|---|---|---|")
    for r in tracing:
        print(f"| {r['steps_per_execution']} | {'on' if r['grappler'] else 'off'} | {r['trace']:.2f} | {r['train']:.2f} | "
              f"{r['eval']:.2f} | {r['wall']:.2f} | {r['val_accuracy']:.3f} |")

    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"search_space": space.name, "dataset": data.name, "candidates": [t.encoding for t in result.trials], "epochs": FLAGS.epochs,
               "batch_size": FLAGS.batch_size, "plain_wall_s": plain_wall, "search_wall_s": search_wall,
               "plain_per_candidate_s": {"before": plain_before, "after": plain_after}, "overhead_pct": overhead_pct, "breakdown_s": breakdown,
               "share_pct": {p: 100 * totals[p] / trial_total for p in PHASES}, "tracing_study": tracing}
    (out / "trial_benchmark.json").write_text(json.dumps(payload, indent=2))
    _plot(breakdown, out / "trial_benchmark.png")
    print(f"\nwrote {out / 'trial_benchmark.json'} and {out / 'trial_benchmark.png'}; median trial "
          f"{statistics.median(sum(r.values()) for r in breakdown):.1f} s")


def _planned_encodings(space, num_classes: int, count: int):
    """The first `count` LayerNAS proposals for the default's MAdds (rewards told as 0: a fixed list)."""
    from layernas_tf import api
    from layernas_tf.costs import candidate_costs
    from layernas_tf.search import make_searcher

    target = api.Target("madds", float(candidate_costs(space, space.default, space.input_size, num_classes).madds))
    planner = make_searcher("layernas", api.make_problem(space, target, space.input_size, num_classes), 10 ** 4, 0)
    encodings = []
    while len(encodings) < count:
        for encoding in planner.ask(count - len(encodings)):
            planner.tell(encoding, 0.0)
            encodings.append(tuple(encoding))
    return encodings


def parallel_study(worker_counts):
    """Trials per minute of the same candidates with each number of local workers."""
    import os

    import searchspaces
    from layernas_tf.executors import LocalExecutor, default_threads_per_trial, run_specs
    from layernas_tf.runner import TrialSpec
    from train.spec import DataSpec, TrainSettings

    space = searchspaces.get_space(FLAGS.search_space)
    data = DataSpec(FLAGS.dataset, space.input_size, 0, batch_size=FLAGS.batch_size)
    from train.data import load_dataset

    num_classes = load_dataset(FLAGS.dataset, space.input_size, 0).num_classes
    encodings = _planned_encodings(space, num_classes, FLAGS.candidates)
    settings = TrainSettings(epochs=FLAGS.epochs, batch_size=FLAGS.batch_size)

    def specs(start):
        return [TrialSpec(start + i, space, e, data, settings, FLAGS.epochs, space.input_size, num_classes)
                for i, e in enumerate(encodings)]

    cores = os.cpu_count() or 1
    arms = [(str(w), w, default_threads_per_trial()) for w in worker_counts]
    if cores > default_threads_per_trial():
        arms.append((f"1 ({cores} threads)", 1, cores))
    rows, rewards = [], {}
    for label, workers, threads in arms:
        with LocalExecutor(workers, threads_per_worker=threads) as executor:
            start = time.perf_counter()
            warm = [TrialSpec(10 ** 6 + i, space, space.default, data, settings, 1, space.input_size, num_classes)
                    for i in range(workers)]
            run_specs(executor, warm)  # TensorFlow start-up and the data cache, once per worker
            warmup = time.perf_counter() - start
            start = time.perf_counter()
            outcomes = run_specs(executor, specs(0))
            wall = time.perf_counter() - start
        failed = [o.error for o in outcomes if o.status != "completed"]
        if failed:
            raise RuntimeError(f"{len(failed)} trials failed with {workers} workers: {failed[0]}")
        rewards[label] = [o.reward for o in outcomes]
        rows.append({"label": label, "workers": workers, "threads_per_worker": threads, "wall_s": wall,
                     "warmup_s": warmup, "trials_per_minute": 60 * len(outcomes) / wall,
                     "mean_trial_s": statistics.fmean(sum(o.timings.values()) for o in outcomes)})
        print(f"{label:>14} workers x {threads} threads: {len(outcomes)} trials in {wall:.1f} s = "
              f"{rows[-1]['trials_per_minute']:.2f} trials/min (warm-up {warmup:.1f} s)", flush=True)
    per_minute = {r["label"]: r["trials_per_minute"] for r in rows}
    base = per_minute[str(worker_counts[0])]
    payload = {
        "search_space": space.name, "dataset": FLAGS.dataset, "epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size,
        "cores": cores, "candidates": [space.to_string(e) for e in encodings],
        "trials_per_minute": {str(w): per_minute[str(w)] for w in worker_counts},
        "speedup": {str(w): per_minute[str(w)] / base for w in worker_counts},
        "one_worker_all_cores_trials_per_minute": next((r["trials_per_minute"] for r in rows if "threads" in r["label"]),
                                                       None),
        "same_rewards": all(v == rewards[str(worker_counts[0])] for k, v in rewards.items() if "threads" not in k),
        "rows": rows,
    }
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "parallel.json").write_text(json.dumps(payload, indent=2))
    print("\n| workers | threads each | trials/min | speed-up |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['threads_per_worker']} | {r['trials_per_minute']:.2f} | "
              f"{r['trials_per_minute'] / base:.2f}x |")
    print(f"\nsame rewards with every worker count: {payload['same_rewards']}; wrote {out / 'parallel.json'}")


def _plot(breakdown, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    bottom = [0.0] * len(breakdown)
    for phase in PHASES:
        values = [r[phase] for r in breakdown]
        ax.bar(range(len(breakdown)), values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("trial")
    ax.set_ylabel("seconds")
    ax.set_title("where a trial's time goes", fontsize=10)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
