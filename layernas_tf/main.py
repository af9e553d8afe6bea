"""The main job: LayerNAS over Keras MobileNet candidates, then train, export and report the winner.

    python -m layernas_tf.main                      # digits, cifar_mobilenet_v2, MAdds <= the default's
    layernas --dataset=cifar10 --search_space=mobilenet_v3_small --target_madds=30e6 --search_dir=runs/c10

Flow: data -> LayerNAS (each candidate built, proxy-trained on train, scored on validation, costed by
the profiler, stored in --search_dir) -> the winner (and with --bucket_winners the best of other cost
buckets) trained for --final_epochs -> SavedModel, float and int8 .tflite (with --qat, after a
quantization-aware fine-tune) -> interpreter accuracy on the test split and latency -> report.
Killing the job and rerunning the same command resumes the search without retraining stored trials.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dataclasses
import importlib.util
import json
import pathlib
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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from layernas_tf import quiet

    from layernas_tf.runner import build_with_weights, setup_worker_tensorflow

    setup_worker_tensorflow()  # op determinism, GPU memory growth

    from export import deploy
    from layernas_tf import api, report
    from layernas_tf.executors import make_executor, run_specs
    from layernas_tf.runner import TrialSpec
    from train.data import load_dataset
    from train.spec import DataSpec, TrainSettings

    start = time.perf_counter()
    space = searchspaces.get_space(FLAGS.search_space)
    image_size = FLAGS.image_size or space.input_size
    settings = parse_settings("layernas", FLAGS.layernas_settings) if FLAGS.searcher == "layernas" else {}
    try:
        data = load_dataset(FLAGS.dataset, image_size, FLAGS.seed, FLAGS.data_dir, max_examples=FLAGS.max_examples)
    except ValueError as e:
        raise app.UsageError(f"--dataset={FLAGS.dataset}: {e}")
    logging.info("data %s: %s examples, %d classes, %dx%d", data.name, data.sizes, data.num_classes, image_size, image_size)
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
    logging.info("search %s (%d layers, %s candidates) with %s for %s", space.name, space.num_layers,
                 f"{space.num_candidates:,}", FLAGS.searcher, target.describe())
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
    tensorboard = report.TensorBoardLogger(str(search_dir / "tensorboard"), space, target.metric)
    progress = _progress_bar(max_trials)
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
            space, data_spec, None, target, max_trials=max_trials, epochs=FLAGS.proxy_epochs,
            search_dir=str(search_dir), compile_fn=train_settings, input_size=image_size,
            num_classes=data.num_classes, bn_momentum=FLAGS.bn_momentum, seed=FLAGS.seed, searcher=FLAGS.searcher,
            searcher_settings=settings, latency_fn=latency_fn, max_consecutive_failures=FLAGS.max_consecutive_failures,
            executor=runner, trial_retries=FLAGS.trial_retries,
            config={"dataset": FLAGS.dataset, "max_examples": FLAGS.max_examples, "batch_size": FLAGS.batch_size,
                    "learning_rate": FLAGS.learning_rate, "latency_format": FLAGS.latency_format,
                    "proxy_examples": FLAGS.proxy_examples, **latency_config},
            on_trial=on_trial, on_resume=on_resume, on_running=on_running, verbose=0)
    except TooManyFailuresError as e:
        runner.close()
        logging.error("%s", e)
        print(f"ERROR: {e}")
        raise SystemExit(1)
    finally:
        progress.close()
    search_seconds = time.perf_counter() - start
    if result.winner is None:
        runner.close()
        logging.error("no trial completed within the target: %s; see the errors above", result.counts)
        raise SystemExit(1)

    finalists = [result.winner] + [t for t in result.bucket_winners(FLAGS.bucket_winners + 1)
                                   if t.number != result.winner.number][:FLAGS.bucket_winners]
    final_settings = dataclasses.replace(train_settings, epochs=FLAGS.final_epochs)
    # Final training through the same runner and executor as the search: finalists train in parallel,
    # and their weights come back in the outcomes (from any node), to be exported here.
    specs = [TrialSpec(rank, space, space.parse(r.encoding), data_spec.for_final_training(), final_settings,
                       FLAGS.final_epochs, image_size, data.num_classes, bn_momentum=FLAGS.bn_momentum,
                       seed=FLAGS.seed, final=True, return_weights=True) for rank, r in enumerate(finalists)]
    try:
        finals = run_specs(runner, specs)
    finally:
        runner.close()
    calibration_images, _ = data.numpy_images("train", FLAGS.calibration_images)
    test_images, test_labels = data.numpy_images("test", data.sizes["test"])
    exports = {}
    for rank, record in enumerate(finalists):
        name = "winner" if rank == 0 else f"bucket_{rank}_{record.encoding}"
        final = finals[rank]
        if final.status != "completed":
            logging.error("final training of %s %s failed: %s", name, record.encoding, final.error)
            raise SystemExit(1)
        logging.info("%s %s: validation accuracy %.4f after %d epochs (%s %s)", name, record.encoding, final.reward,
                     FLAGS.final_epochs, final.host, final.device)
        model = build_with_weights(specs[rank], final.weights)
        int8_model = None
        if FLAGS.qat:
            from export.qat import qat_finetune

            train_ds = data.batched("train", FLAGS.batch_size, shuffle=True, seed=FLAGS.seed, cache=FLAGS.cache,
                                    cache_memory_mb=FLAGS.cache_memory_mb, cache_dir=FLAGS.cache_dir)
            int8_model = qat_finetune(model, space, record.encoding, train_ds, FLAGS.qat_epochs,
                                      input_size=image_size, num_classes=data.num_classes)
        with quiet.native_output_captured():  # converter and interpreter notices
            exported = deploy.export_winner(model, str(search_dir / "export"), calibration_images, test_images,
                                            test_labels, int8_model, name=name)
        exports[name] = (record, final, exported)
    winner_record, winner_final, winner_export = exports["winner"]

    print(f"\nbest trials within the target ({target.describe()}):")
    print(report.summary_table(result.trials, result.winner, target.metric, target.min_value, target.max_value,
                               scores=result.scores))
    print(f"\n{'model':<34} {'val_acc':>8} {'keras':>7} {'float':>7} {'int8':>7} {'float ms':>9} {'int8 ms':>8}")
    for name, (record, final, exp) in exports.items():
        print(f"{name:<34} {final.reward:>8.4f} {exp.accuracy['keras']:>7.4f} {exp.accuracy['tflite_float']:>7.4f} "
              f"{exp.accuracy['tflite_int8']:>7.4f} {exp.latency_ms['float']:>9.3f} {exp.latency_ms['int8']:>8.3f}")
    for name, (_, _, exp) in exports.items():
        for warning in exp.warnings():
            logging.warning("%s: %s", name, warning)
            print(f"WARNING {name}: {warning}")
    report.plot_pareto(result.trials, result.winner, target.min_value, target.max_value, target.metric,
                       str(search_dir / "pareto.png"))
    report.plot_search(result.trials, target.min_value, target.max_value, str(search_dir / "search.png"),
                       scores=result.scores)
    extra = {
        "search_space": space.name, "dataset": FLAGS.dataset, "target": target.describe(),
        "winner_final_val_accuracy": winner_final.reward, "executor": FLAGS.executor, "trials_at_once": runner.slots, "resumed_trials": result.resumed_trials,
        "seconds": {"search": search_seconds, "total": time.perf_counter() - start},
        "bucket_winners": [{"encoding": r.encoding, "madds": r.madds, "params": r.params, "val_accuracy": r.reward,
                            "accuracy": e.accuracy, "latency_ms": e.latency_ms, "tflite": e.tflite}
                           for name, (r, _, e) in exports.items() if name != "winner"],
    }
    if latency_fn is not None:
        extra["latency_model"] = {k: v for k, v in latency_fn.to_json().items() if k != "entries_ms"}
        extra["latency_model"]["winner_predicted_ms"] = latency_fn(space.parse(winner_record.encoding))
    payload = report.results_payload(winner_record, winner_export, result.counts, extra)
    payload["winner"]["cost"] = winner_record.cost
    report.write_json(payload, str(search_dir / "results.json"))
    print(f"\n{result.counts['completed']} trials completed, {result.counts['failed']} failed; "
          f"winner {winner_record.encoding}: {winner_record.madds:,} MAdds, {winner_record.params:,} params")
    print(f"wrote {search_dir / 'results.json'}, pareto.png, search.png, export/ and tensorboard/ "
          f"in {time.perf_counter() - start:.0f} s")


LATENCY_PREDICTOR_FILE = "latency_predictor.json"


def _latency_predictor(space, image_size: int, num_classes: int, search_dir: pathlib.Path):
    """The latency predictor of this search: the one stored in --search_dir when resuming (so a resumed
    search sees the same costs), else one built from the flags; stored in --search_dir when new."""
    from layernas_tf import quiet
    from layernas_tf.latency import kit as latency_kit
    from layernas_tf.latency.block_table import LatencyTable, LatencyTableError, TableLatency, load_table, model_id
    from layernas_tf.latency.linear_model import LatencyModel, calibrate_latency_model

    stored_path = search_dir / LATENCY_PREDICTOR_FILE
    stored = json.loads(stored_path.read_text()) if stored_path.exists() else None
    explicit = FLAGS.latency_table or FLAGS.latency_command
    spaces = {model_id(space, image_size, num_classes): (space, image_size, num_classes)}
    try:
        if stored and stored["predictor"] == FLAGS.latency_predictor and not explicit:
            logging.info("latency: the %s predictor stored in %s", stored["predictor"], stored_path)
            if stored["predictor"] == "linear":
                return LatencyModel.from_json(space, image_size, num_classes, stored["model"])
            raw = stored["table"]
            table = LatencyTable(raw["quantization"], raw["num_threads"], raw["device"], raw["entries_ms"],
                                 raw["calibration"], raw.get("build", {}))
            return TableLatency(table, space, image_size, num_classes, source=str(stored_path))
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
