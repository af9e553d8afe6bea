"""Memory over a long search: the RSS of the process that trains, trial by trial.

    layernas-memory-benchmark --trials=100 --executor=local --out=runs/memory_benchmark/local
    layernas-memory-benchmark --trials=100 --executor=in_process --out=runs/memory_benchmark/in_process

Runs one search of `--search_space` on `--dataset` with short proxy training and reads, after each
trial, the resident set size of the process that trains: the driver itself with `in_process`, the
one worker process with `local` (`--workers=1`; it is replaced every `--max_trials_per_worker`
trials). Writes `memory_benchmark.json` and `rss.png`. The check: RSS after the last trial within
10% of RSS after trial 10 (the first trials load TensorFlow, data and caches).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json
import pathlib
import shutil
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("search_space", "cifar_mobilenet_v2", "Search space.")
flags.DEFINE_string("dataset", "digits", "Dataset (as for the main job).")
flags.DEFINE_integer("trials", 100, "Trials to run.", lower_bound=11)
flags.DEFINE_integer("proxy_epochs", 1, "Proxy epochs per trial.", lower_bound=1)
flags.DEFINE_integer("max_examples", 64, "Cap on examples per split.", lower_bound=1)
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
flags.DEFINE_string("out", "runs/memory_benchmark", "Output folder.")
flags.DEFINE_enum("executor", "local", ["in_process", "local"], "Where trials run.")
flags.DEFINE_integer("max_trials_per_worker", 0, "With local: replace the worker after this many trials "
                     "(0: never).", lower_bound=0)

GROWTH_LIMIT_PCT = 10.0


def rss_mb(pid: int = 0) -> float:
    """Resident set size of process `pid` (0: this one), in MB."""
    with open(f"/proc/{pid or 'self'}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def main(argv):
    del argv
    from layernas_tf import quiet

    tf = quiet.import_tensorflow()
    import searchspaces
    from layernas_tf import api
    from layernas_tf.costs import candidate_costs
    from train.data import load_dataset
    from train.spec import DataSpec, TrainSettings

    tf.config.experimental.enable_op_determinism()
    space = searchspaces.get_space(FLAGS.search_space)
    data = load_dataset(FLAGS.dataset, space.input_size, 0, max_examples=FLAGS.max_examples)
    settings = TrainSettings(epochs=FLAGS.proxy_epochs, batch_size=FLAGS.batch_size)
    target = api.Target("madds", float(candidate_costs(space, space.default, space.input_size, data.num_classes).madds))
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "search", ignore_errors=True)  # a fresh search each run, never a resumed one
    rows = []
    start = time.perf_counter()
    print(f"{'trial':>6} {'rss_mb':>9} {'seconds':>8}")

    if FLAGS.executor == "local":
        from layernas_tf.executors import LocalExecutor

        executor = LocalExecutor(1, max_trials_per_worker=FLAGS.max_trials_per_worker)
    else:
        from layernas_tf.executors import InProcessExecutor

        executor = InProcessExecutor()

    def training_rss() -> float:
        return rss_mb(executor.worker_pids()[0]) if FLAGS.executor == "local" else rss_mb()

    def on_trial(record, best):
        rows.append({"trial": record.number + 1, "rss_mb": training_rss(), "seconds": time.perf_counter() - start,
                     "status": record.status})
        if record.number % 10 == 9 or record.number == 0:
            print(f"{record.number + 1:>6} {rows[-1]['rss_mb']:>9.1f} {rows[-1]['seconds']:>8.0f}", flush=True)

    rss_start = rss_mb()
    data_spec = DataSpec(FLAGS.dataset, space.input_size, 0, max_examples=FLAGS.max_examples,
                         batch_size=FLAGS.batch_size)
    with executor:
        api.search(space, data_spec, None, target, max_trials=FLAGS.trials, epochs=FLAGS.proxy_epochs,
                   search_dir=str(out / "search"), compile_fn=settings, input_size=space.input_size,
                   num_classes=data.num_classes, on_trial=on_trial, executor=executor,
                   config={"benchmark": "memory", "max_examples": FLAGS.max_examples})
    # The highest reading of the last ten trials: with local workers, a reading just after a worker
    # was replaced would show a fresh process, so the last reading alone could flatter.
    after_10, last = rows[9]["rss_mb"], max(r["rss_mb"] for r in rows[-10:])
    growth = 100.0 * (last - after_10) / after_10
    payload = {"search_space": space.name, "dataset": FLAGS.dataset, "proxy_epochs": FLAGS.proxy_epochs,
               "executor": FLAGS.executor, "max_trials_per_worker": FLAGS.max_trials_per_worker,
               "max_examples": FLAGS.max_examples, "trials": len(rows), "rss_before_search_mb": rss_start,
               "rss_after_10_mb": after_10, "rss_last_10_max_mb": last, "rss_max_mb": max(r["rss_mb"] for r in rows),
               "growth_pct": growth,
               "growth_limit_pct": GROWTH_LIMIT_PCT, "within_limit": abs(growth) <= GROWTH_LIMIT_PCT, "rows": rows}
    (out / "memory_benchmark.json").write_text(json.dumps(payload, indent=2))
    _plot(rows, out / "rss.png")
    print(f"RSS after trial 10: {after_10:.1f} MB; highest in trials {len(rows) - 9}-{len(rows)}: {last:.1f} MB "
          f"({growth:+.1f}%, limit "
          f"{GROWTH_LIMIT_PCT:g}%): {'OK' if abs(growth) <= GROWTH_LIMIT_PCT else 'OVER'}")
    print(f"wrote {out / 'memory_benchmark.json'} and {out / 'rss.png'}")


def _plot(rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    ax.plot([r["trial"] for r in rows], [r["rss_mb"] for r in rows], marker=".", linewidth=1)
    ax.axhline(rows[9]["rss_mb"] * (1 + GROWTH_LIMIT_PCT / 100), color="tab:red", linestyle="--", linewidth=1,
               label=f"trial 10 + {GROWTH_LIMIT_PCT:g}%")
    ax.set_xlabel("trial")
    ax.set_ylabel("RSS of the training process (MB)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
