"""The main job: LayerNAS over Keras MobileNet candidates, then train, export and report the winner.

    python -m layernas_tf.main                      # digits, cifar_mobilenet_v2, MAdds <= the default's
    layernas --dataset=cifar10 --search_space=mobilenet_v3_small --target_madds=30e6 --search_dir=runs/c10

Flow: data -> LayerNAS (each candidate built, proxy-trained on train, scored on validation, costed by
the profiler, stored in --search_dir) -> the winner (and with --bucket_winners the best of other cost
buckets) trained for --final_epochs -> phone-ready float and int8 .tflite (raw pixels in, metadata and
labels inside; with --qat, after a quantization-aware fine-tune), SavedModel and a JSON record in
--search_dir/export/<name>/ -> interpreter accuracy on the test split and latency -> report.
The final training and export are `layernas_tf.finalize`, which `layernas-export` runs for any stored
candidate. Killing the job and rerunning the same command resumes the search without retraining stored
trials.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dataclasses
import importlib.util
import json
import pathlib
import sys
import time

from absl import app, flags, logging

import searchspaces
from layernas_tf.api import SEARCHERS, TooManyFailuresError
from layernas_tf.executors import EXECUTORS, default_workers
from layernas_tf.report import progress_bar as _progress_bar
from train.spec import CACHES, FOLDER_PREFIX, MIN_IMAGE_SIZE
from layernas_tf.search import parse_settings
from layernas_tf.search.layernas import sweep_upper_bound
from layernas_tf.settings_flag import define_layernas_settings
from layernas_tf.search.problem import InfeasibleTargetError
from layernas_tf.store import IncompatibleSearchError

FLAGS = flags.FLAGS
flags.DEFINE_enum("search_space", "cifar_mobilenet_v2", list(searchspaces.SPACE_NAMES), "Search space.")
flags.DEFINE_string("dataset", "digits", "'digits' (offline default), 'folder:<dir>' or a TFDS name (e.g. cifar10).")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_integer("image_size", 0, f"Image side in pixels, at least {MIN_IMAGE_SIZE}; 0 = the search space's "
                     "input size.", lower_bound=0)
flags.DEFINE_integer("max_examples", None, "Cap on examples per split (quick runs).", lower_bound=1)
flags.DEFINE_integer("proxy_examples", None, "Proxy-train each candidate on a fixed, seeded, class-balanced subset "
                     "of this many train examples (the final training uses all of them).", lower_bound=1)
flags.DEFINE_enum("cache", "auto", list(CACHES), "Where the decoded uint8 splits are cached: 'memory', 'disk' (a "
                  "directory of the training process), 'none', or 'auto' (memory if a split fits "
                  "--cache_memory_mb, else disk).")
flags.DEFINE_float("cache_memory_mb", None, "Memory budget of --cache=auto per split, in MB (default: a quarter "
                   "of physical memory).", lower_bound=0)
flags.DEFINE_string("cache_dir", None, "Base directory of --cache=disk caches (default: the system temp directory).")
flags.DEFINE_float("target_madds", None, "Cost target: at most this many multiply-adds.", lower_bound=0)
flags.DEFINE_float("target_madds_min", 0.0, "Optional lower bound on MAdds.", lower_bound=0)
flags.DEFINE_float("target_params", None, "Cost target: at most this many parameters.", lower_bound=0)
flags.DEFINE_float("target_params_min", 0.0, "Optional lower bound on parameters.", lower_bound=0)
flags.DEFINE_float("target_latency_ms", None, "Cost target: at most this TFLite latency (ms), predicted from a "
                   "per-block latency table (see --latency_predictor).", lower_bound=0)
flags.DEFINE_float("target_latency_ms_min", 0.0, "Optional lower bound on latency (ms).", lower_bound=0)
flags.DEFINE_enum("latency_format", "int8", ["float", "int8"], "TFLite format a latency target refers to.")
flags.DEFINE_enum("latency_predictor", "table", ["table", "linear"], "How --target_latency_ms predicts a "
                  "candidate: 'table' (sum of its measured blocks, calibrated on whole models) or 'linear' "
                  "(a + b*MAdds + c*params fitted on 10 measured candidates).")
flags.DEFINE_string("latency_table", None, "Latency table measured where the model will run: this tool's JSON, a "
                    "CSV of key,ms, or benchmark_model logs (a file, or a directory of *.log) of the files of a "
                    "latency kit (layernas-profile --latency_kit). Default: measured on this machine.")
flags.DEFINE_string("latency_command", None, "Time each latency-kit file with this command, which prints "
                    "benchmark_model output; {tflite} is the local file, {name} its path inside the kit, e.g. "
                    "'adb shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/kit/{name}'.")
flags.DEFINE_integer("latency_threads", 1, "Interpreter threads the latency target refers to.", lower_bound=1)
flags.DEFINE_string("latency_kit_dir", None, "Where latency kits are converted (default: "
                    "~/.cache/layernas_tf/latency_kit, shared by every search and space).")
flags.DEFINE_integer("max_trials", 0, "At most this many candidates are trained; 0: one LayerNAS sweep over every "
                     "layer of --search_space (62 trials for cifar_mobilenet_v2).", lower_bound=0)
flags.DEFINE_enum("searcher", "layernas", list(SEARCHERS), "Search algorithm (constraint-aware: proposes only "
                  "candidates within the target). optuna_tpe and pyglove_evolution need the [bench] extra.")
define_layernas_settings()
flags.DEFINE_enum("executor", "local", list(EXECUTORS), "Where trials run: 'in_process' (one at a time, in this "
                  "process), 'local' (--workers spawned processes on this machine) or 'ray' (a Ray cluster).")
flags.DEFINE_integer("workers", None, "Trials at once: local worker processes (default: one per GPU; on CPU, "
                     f"{default_workers()} on this machine), or Ray trials in flight (default: what the cluster's "
                     "resources allow).", lower_bound=1)
flags.DEFINE_string("ray_address", None, "With --executor=ray: 'auto' or HOST:PORT of a running cluster (ray start "
                    "--head); unset: a local Ray instance.")
flags.DEFINE_float("cpus_per_trial", 1, "With --executor=ray: CPUs reserved per trial.", lower_bound=0)
flags.DEFINE_float("gpus_per_trial", 0, "With --executor=ray: GPUs reserved per trial (fractions share a GPU).",
                   lower_bound=0)
flags.DEFINE_integer("trial_retries", 1, "Run a trial again this many times when its worker dies under it "
                     "(SIGKILL, out of memory, a lost node).", lower_bound=0)
flags.DEFINE_integer("max_consecutive_failures", 3, "Stop after this many failed trials in a row (a bug, not bad "
                     "candidates); the stored trials are kept and a rerun resumes.", lower_bound=1)
flags.DEFINE_integer("proxy_epochs", 3, "Training epochs per candidate during the search.", lower_bound=1)
flags.DEFINE_integer("final_epochs", 15, "Training epochs of the winner.", lower_bound=1)
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
flags.DEFINE_float("learning_rate", 5e-3, "Peak Adam learning rate (cosine decay), > 0.", lower_bound=0)
flags.DEFINE_float("bn_momentum", 0.9, "BatchNormalization momentum of the candidates.", lower_bound=0, upper_bound=0.999)
flags.DEFINE_integer("bucket_winners", 0, "Also train and export the best of this many cost buckets near the "
                     "target (0: the winner only).", lower_bound=0)
flags.DEFINE_string("search_dir", "runs/search", "Trial store, logs and exports; rerun with it to resume.")
flags.DEFINE_bool("qat", False, "Quantization-aware fine-tune before the int8 conversion.")
flags.DEFINE_integer("qat_epochs", 2, "Epochs of the quantization-aware fine-tune.", lower_bound=1)
flags.DEFINE_integer("calibration_images", 200, "Train images for int8 calibration.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the data split, the search and every candidate's training.")

TARGET_FLAGS = ("target_madds", "target_params", "target_latency_ms")


@flags.multi_flags_validator(list(TARGET_FLAGS), message="give at most one of --target_madds, --target_params, "
                             "--target_latency_ms (none: MAdds of the space's default candidate)")
def _one_target(values):
    return sum(values[f] is not None for f in TARGET_FLAGS) <= 1


for _name in TARGET_FLAGS:
    flags.register_validator(_name, lambda value: value is None or value > 0,
                             message=f"--{_name} must be > 0 (a cost the model may not exceed)")
    flags.register_multi_flags_validator(
        [_name, f"{_name}_min"], lambda v, n=_name: v[n] is None or v[f"{n}_min"] <= v[n],
        message=f"--{_name}_min must not exceed --{_name}")
flags.register_validator("learning_rate", lambda value: value > 0, message="--learning_rate must be > 0")
flags.register_validator("image_size", lambda value: value == 0 or value >= MIN_IMAGE_SIZE,
                         message=f"--image_size must be 0 (the search space's input size) or at least {MIN_IMAGE_SIZE}")


@flags.validator("dataset", message="--dataset: expected 'digits', 'folder:<existing directory>' or a TFDS name")
def _dataset_names_something(value):
    if value.startswith(FOLDER_PREFIX):
        directory = value[len(FOLDER_PREFIX):]
        if not os.path.isdir(directory):
            raise flags.ValidationError(f"--dataset={value}: folder {directory!r} does not exist")
    return bool(value)


@flags.validator("latency_table")
def _latency_table_exists(value):
    if value is not None and not os.path.exists(value):
        raise flags.ValidationError(f"--latency_table={value}: no such file or directory")
    return True


@flags.validator("latency_command")
def _latency_command_names_the_file(value):
    if value is not None and "{tflite}" not in value and "{name}" not in value:
        raise flags.ValidationError(f"--latency_command={value!r} must contain {{tflite}} (the local file) or "
                                    "{name} (its path inside the kit)")
    return True


@flags.multi_flags_validator(["latency_predictor", "latency_table", "latency_command"])
def _one_latency_source(values):
    if values["latency_table"] and values["latency_command"]:
        raise flags.ValidationError("give --latency_table or --latency_command, not both")
    if values["latency_predictor"] == "linear" and (values["latency_table"] or values["latency_command"]):
        raise flags.ValidationError("--latency_table and --latency_command need --latency_predictor=table")
    return True


@flags.multi_flags_validator(["searcher", "layernas_settings"])
def _settings_match_the_searcher(values):
    if values["layernas_settings"] and values["searcher"] != "layernas":
        raise flags.ValidationError(f"--layernas_settings applies to --searcher=layernas only, "
                                    f"not --searcher={values['searcher']}")
    return True


@flags.validator("searcher")
def _searcher_installed(value):
    missing = {"optuna_tpe": "optuna", "pyglove_evolution": "pyglove"}.get(value)
    if missing and importlib.util.find_spec(missing) is None:
        raise flags.ValidationError(f"--searcher={value} needs {missing}: pip install -e \".[bench]\"")
    return True


def target_from_flags(space, input_size: int, num_classes: int):
    """The `Target` the flags ask for (default: MAdds of the space's default candidate)."""
    from layernas_tf.api import Target
    from layernas_tf.costs import candidate_costs

    for name in TARGET_FLAGS:
        value = getattr(FLAGS, name)
        if value is not None:
            return Target(name.replace("target_", ""), value, getattr(FLAGS, f"{name}_min")), name
    madds = candidate_costs(space, space.default, input_size, num_classes).madds
    return Target("madds", float(madds), FLAGS.target_madds_min), "target_madds"


@dataclasses.dataclass
class Job:
    """What the data phase settles for the later phases."""

    space: object
    data: object
    image_size: int
    target: object
    latency_fn: object
    latency_config: dict
    max_trials: int
    settings: dict
    data_spec: object
    train_settings: object
    search_dir: pathlib.Path


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from layernas_tf.runner import setup_worker_tensorflow

    setup_worker_tensorflow()  # op determinism, GPU memory growth
    start = time.perf_counter()
    job = _data_phase()
    search_started_at = time.time()  # the store's finish times are wall-clock times
    result, runner = _search_phase(job)
    search_seconds = time.perf_counter() - start
    setup, finalists, finals, reference = _final_training_phase(job, result, runner)
    exports = _export_phase(job, setup, finalists, finals, reference)
    _report_phase(job, result, exports, runner.slots, search_seconds, start, search_started_at)


def _data_phase() -> Job:
    """Load the data, settle the target (refusing one no candidate meets) and the proxy training."""
    from export.deploy import class_labels
    from train.data import load_dataset
    from train.spec import DataSpec, TrainSettings

    space = searchspaces.get_space(FLAGS.search_space)
    image_size = FLAGS.image_size or space.input_size
    settings = parse_settings("layernas", FLAGS.layernas_settings) if FLAGS.searcher == "layernas" else {}
    try:
        data = load_dataset(FLAGS.dataset, image_size, FLAGS.seed, FLAGS.data_dir, max_examples=FLAGS.max_examples)
    except ValueError as e:
        raise app.UsageError(f"--dataset={FLAGS.dataset}: {e}")
    logging.info("data %s: %s examples, %d classes, %dx%d", data.name, data.sizes, data.num_classes, image_size, image_size)
    try:  # refused now, not after the search
        class_labels(list(data.class_names) or None, data.num_classes)
    except ValueError as e:
        raise app.UsageError(f"--dataset={FLAGS.dataset}: {e}")
    target, target_flag = target_from_flags(space, image_size, data.num_classes)
    if target.metric != "latency_ms":
        _check_target(space, target, target_flag, image_size, data.num_classes, None)
    search_dir = pathlib.Path(FLAGS.search_dir)
    latency_fn = None
    latency_config = {}
    if target.metric == "latency_ms":
        latency_fn = _latency_predictor(space, image_size, data.num_classes, search_dir)
        latency_config = {"latency_predictor": FLAGS.latency_predictor, "latency_threads": FLAGS.latency_threads,
                          "latency_fingerprint": _fingerprint(latency_fn)}
        _check_target(space, target, target_flag, image_size, data.num_classes, latency_fn)
    one_sweep = sweep_upper_bound(space.num_options, 1, 1)
    max_trials = FLAGS.max_trials or one_sweep
    if FLAGS.searcher == "layernas" and max_trials < one_sweep:
        logging.warning("--max_trials=%d is below one sweep over every layer (%d trials for %s): the search will "
                        "only vary the first layers", max_trials, one_sweep, space.name)
    data_spec = DataSpec(FLAGS.dataset, image_size, FLAGS.seed, FLAGS.data_dir, FLAGS.max_examples,
                         FLAGS.proxy_examples, FLAGS.batch_size, FLAGS.cache, FLAGS.cache_memory_mb, FLAGS.cache_dir)
    logging.info("cache: train %s, validation %s; proxy training on %d of %d train examples",
                 data.cache_mode("train", FLAGS.cache, FLAGS.cache_memory_mb),
                 data.cache_mode("validation", FLAGS.cache, FLAGS.cache_memory_mb),
                 data.examples("train", FLAGS.proxy_examples), data.sizes["train"])
    train_settings = TrainSettings(epochs=FLAGS.proxy_epochs, batch_size=FLAGS.batch_size,
                                   learning_rate=FLAGS.learning_rate)
    return Job(space, data, image_size, target, latency_fn, latency_config, max_trials, settings, data_spec,
               train_settings, search_dir)


def _search_phase(job: Job):
    """Run (or resume) the search in --search_dir; returns the `SearchResult` and the executor, still open."""
    from layernas_tf import api, report
    from layernas_tf.executors import make_executor

    space, target = job.space, job.target
    logging.info("search %s (%d layers, %s candidates) with %s for %s", space.name, space.num_layers,
                 f"{space.num_candidates:,}", FLAGS.searcher, target.describe())
    tensorboard = report.TensorBoardLogger(str(job.search_dir / "tensorboard"), space, target.metric)
    progress = _progress_bar(job.max_trials)
    runner = make_executor(FLAGS.executor, FLAGS.workers, FLAGS.ray_address, FLAGS.cpus_per_trial,
                           FLAGS.gpus_per_trial)
    logging.info("executor %s: %d trials at a time", FLAGS.executor, runner.slots)

    def on_resume(stored):
        progress.update(sum(t.status != "running" for t in stored))

    status = {}  # the progress bar's postfix: trials running, best reward and its cost

    def on_trial(record, best):
        tensorboard.log(record, best)
        if best is not None:
            status.update(best=f"{best.reward:.4f}", cost=f"{best.cost:,.4g}")
        progress.set_postfix(status, refresh=False)
        progress.update(1)

    def on_running(count):
        status["running"] = count
        progress.set_postfix(status)
    try:
        result = api.search(
            space, job.data_spec, None, target, max_trials=job.max_trials, epochs=FLAGS.proxy_epochs,
            search_dir=str(job.search_dir), compile_fn=job.train_settings, input_size=job.image_size,
            num_classes=job.data.num_classes, bn_momentum=FLAGS.bn_momentum, seed=FLAGS.seed, searcher=FLAGS.searcher,
            searcher_settings=job.settings, latency_fn=job.latency_fn,
            max_consecutive_failures=FLAGS.max_consecutive_failures, executor=runner,
            trial_retries=FLAGS.trial_retries,
            config={"dataset": FLAGS.dataset, "max_examples": FLAGS.max_examples, "batch_size": FLAGS.batch_size,
                    "learning_rate": FLAGS.learning_rate, "latency_format": FLAGS.latency_format,
                    "proxy_examples": FLAGS.proxy_examples, **job.latency_config},
            on_trial=on_trial, on_resume=on_resume, on_running=on_running, verbose=0)
    except TooManyFailuresError as e:
        runner.close()
        logging.error("%s", e)
        print(f"ERROR: {e}")
        raise SystemExit(1)
    except IncompatibleSearchError as e:  # a resume with other flags: nothing was run or changed
        runner.close()
        hint = " (searcher.KEY is --layernas_settings=KEY=VALUE)" if "searcher." in str(e) else ""
        print(f"ERROR: {e}{hint}", file=sys.stderr)
        raise SystemExit(1)
    finally:
        progress.close()
    if result.winner is None:
        runner.close()
        logging.error("no trial completed within the target: %s; see the errors above", result.counts)
        raise SystemExit(1)
    return result, runner


def search_setup(job: Job, config: dict):
    """The `finalize.SearchSetup` of this job's search."""
    from layernas_tf.finalize import SearchSetup

    return SearchSetup(job.space, job.data_spec, job.train_settings, job.image_size, job.data.num_classes,
                       FLAGS.bn_momentum, FLAGS.seed, str(job.search_dir), config, job.target.describe())


def _final_training_phase(job: Job, result, runner):
    """Train the winner (and --bucket_winners others) on the whole train split, through the search's
    executor (finalists train in parallel and their weights come back in the outcomes); closes it."""
    from layernas_tf import api
    from layernas_tf.finalize import FinalTrainingError, Finalist, default_reference, default_trial, train_finalists

    finalists = [Finalist("winner", result.winner.encoding, result.winner, f"winner of {job.target.describe()}")]
    others = [t for t in result.bucket_winners(FLAGS.bucket_winners + 1) if t.number != result.winner.number]
    finalists += [Finalist(f"bucket_{rank}_{r.encoding}", r.encoding, r, f"best of cost bucket {rank}")
                  for rank, r in enumerate(others[:FLAGS.bucket_winners], start=1)]
    setup = search_setup(job, api.recorded_config(str(job.search_dir)))
    try:
        finals, default_accuracy = train_finalists(runner, setup, finalists, _final_settings(), result.trials)
    except FinalTrainingError as e:
        logging.error("%s", e)
        raise SystemExit(1)
    finally:
        runner.close()
    reference = default_reference(setup, default_accuracy, default_trial(setup, result.trials) is not None)
    return setup, finalists, finals, reference


def _final_settings():
    from layernas_tf.finalize import FinalSettings

    return FinalSettings(FLAGS.final_epochs, FLAGS.qat, FLAGS.qat_epochs, FLAGS.calibration_images,
                         FLAGS.latency_threads)


def _export_phase(job: Job, setup, finalists, finals, reference):
    """Phone-ready files of each finalist, checked with the interpreter, under --search_dir/export/."""
    from layernas_tf.finalize import command_line, export_finalists

    return export_finalists(setup, job.data, finalists, finals, _final_settings(), reference,
                            command_line("layernas_tf.main"))


def _report_phase(job: Job, result, exports, trials_at_once: int, search_seconds: float, start: float,
                  search_started_at: float) -> None:
    """Print the best trials and the exports, plot the search and write results.json."""
    from layernas_tf import report
    from layernas_tf.finalize import print_exports

    target, search_dir = job.target, job.search_dir
    print(f"\nbest trials within the target ({target.describe()}):")
    print(report.summary_table(result.trials, result.winner, target.metric, target.min_value, target.max_value,
                               scores=result.scores))
    print()
    print_exports(exports)
    report.plot_pareto(result.trials, result.winner, target.min_value, target.max_value, target.metric,
                       str(search_dir / "pareto.png"))
    report.plot_search(result.trials, target.min_value, target.max_value, str(search_dir / "search.png"),
                       scores=result.scores)
    winner = exports["winner"]
    extra = {
        "search_space": job.space.name, "dataset": FLAGS.dataset, "target": target.describe(),
        "winner_final_val_accuracy": winner.final.reward, "executor": FLAGS.executor,
        "trials_at_once": trials_at_once, "resumed_trials": result.resumed_trials,
        "seconds": {"search": search_seconds, "total": time.perf_counter() - start},
        "bucket_winners": [{"encoding": e.finalist.encoding, "madds": e.record["madds"], "params": e.record["params"],
                            "val_accuracy": e.record["proxy_val_accuracy"], "accuracy": e.report.accuracy,
                            "latency_ms": e.report.latency_ms, "tflite": e.report.tflite, "record": e.record_path}
                           for name, e in exports.items() if name != "winner"],
    }
    sweep_trials = result.searcher_state.get("sweep_trials")
    if sweep_trials is not None and not result.resumed_trials:  # a resumed search's times span two runs
        extra["phases"] = report.phase_rates(result.trials, sweep_trials, search_started_at)
        print("sweep: {trials} trials in {minutes} min ({trials_per_min} trials/min)".format(**extra["phases"]["sweep"]))
        print("refinement: {trials} trials in {minutes} min ({trials_per_min} trials/min)".format(
            **extra["phases"]["refine"]))
    if job.latency_fn is not None:
        extra["latency_model"] = {k: v for k, v in job.latency_fn.to_json().items() if k != "entries_ms"}
        extra["latency_model"]["winner_predicted_ms"] = job.latency_fn(job.space.parse(result.winner.encoding))
    payload = report.results_payload(result.winner, winner.report, result.counts, extra)
    payload["winner"].update(cost=result.winner.cost, record=winner.record_path)
    report.write_json(payload, str(search_dir / "results.json"))
    print(f"\n{result.counts['completed']} trials completed, {result.counts['failed']} failed; "
          f"winner {result.winner.encoding}: {result.winner.madds:,} MAdds, {result.winner.params:,} params")
    print(f"wrote {search_dir / 'results.json'}, pareto.png, search.png, export/ and tensorboard/ "
          f"in {time.perf_counter() - start:.0f} s")


def _latency_predictor(space, image_size: int, num_classes: int, search_dir: pathlib.Path):
    """The latency predictor of this search: the one stored in --search_dir when resuming (so a resumed
    search sees the same costs), else one built from the flags; stored in --search_dir when new."""
    from layernas_tf import quiet
    from layernas_tf.finalize import LATENCY_PREDICTOR_FILE, stored_latency_fn
    from layernas_tf.latency import kit as latency_kit
    from layernas_tf.latency.block_table import LatencyTableError, TableLatency, load_table, model_id
    from layernas_tf.latency.linear_model import calibrate_latency_model

    stored_path = search_dir / LATENCY_PREDICTOR_FILE
    stored = json.loads(stored_path.read_text()) if stored_path.exists() else None
    explicit = FLAGS.latency_table or FLAGS.latency_command
    spaces = {model_id(space, image_size, num_classes): (space, image_size, num_classes)}
    try:
        if stored and stored["predictor"] == FLAGS.latency_predictor and not explicit:
            logging.info("latency: the %s predictor stored in %s", stored["predictor"], stored_path)
            return stored_latency_fn(str(search_dir), space, image_size, num_classes)
        if FLAGS.latency_predictor == "linear":
            with quiet.native_output_captured():  # converter notices of the calibration models
                fn = calibrate_latency_model(space, image_size, num_classes, FLAGS.latency_format, seed=FLAGS.seed,
                                             num_threads=FLAGS.latency_threads)
            payload = {"predictor": "linear", "model": fn.to_json()}
        else:
            if FLAGS.latency_table:
                table = load_table(FLAGS.latency_table, FLAGS.latency_format, FLAGS.latency_threads, spaces)
                source = f"--latency_table={FLAGS.latency_table}"
            else:
                table = latency_kit.cached_table(list(spaces.values()), FLAGS.latency_format, FLAGS.latency_threads,
                                                 FLAGS.latency_kit_dir, FLAGS.latency_command)
                source = "--latency_command" if FLAGS.latency_command else "the latency table of this machine"
            fn = TableLatency(table, space, image_size, num_classes, source=source)
            payload = {"predictor": "table", "table": table.to_json()}
    except LatencyTableError as e:
        flag = "--latency_command" if FLAGS.latency_command else "--latency_table"
        raise app.UsageError(f"{flag}: {e}")
    calibration = fn.to_json().get("calibration", {})
    logging.info("latency predictor %s (%s .tflite, %d thread(s)): %s", FLAGS.latency_predictor, FLAGS.latency_format,
                 FLAGS.latency_threads, {k: v for k, v in (calibration or fn.to_json()).items() if k != "samples"})
    if not stored_path.exists():  # never overwrite: a different predictor is refused by the store
        search_dir.mkdir(parents=True, exist_ok=True)
        stored_path.write_text(json.dumps(payload))
    return fn


def _fingerprint(latency_fn) -> str:
    import hashlib

    payload = latency_fn.to_json()
    if payload.get("predictor") == "table":
        return payload["fingerprint"]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _check_target(space, target, target_flag: str, image_size: int, num_classes: int, latency_fn) -> None:
    """Refuse a target no candidate meets, naming the flag and the smallest cost."""
    from layernas_tf import api

    try:
        api.make_problem(space, target, image_size, num_classes, latency_fn)
    except InfeasibleTargetError as e:
        raise app.UsageError(f"--{target_flag}: {e} for --search_space={space.name} at {image_size}x{image_size}, "
                             f"{num_classes} classes")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
