"""Export any point of a stored search's front as phone-ready files.

    layernas-export --search_dir=runs/search --target_madds=3e6         # best stored candidate <= 3e6 MAdds
    layernas-export --search_dir=runs/search --encoding=0-1-1-2-2-2-2 --qat

The candidate is the best stored one within the target, ranked as the searcher ranks its own trials
(the store replayed into a fresh searcher), or the given --encoding. It is trained for --final_epochs on
the whole train split with the search's own data and settings, then exported, checked and recorded
exactly as the main job exports its winner (`layernas_tf.finalize`), into --search_dir/export/<name>/.
The stored trials are read, never written.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("search_dir", None, "A search directory written by `layernas` (its trials.sqlite).")
flags.DEFINE_string("encoding", None, "Export this candidate (dash-separated option indices, e.g. 0-1-1-5-5-5-5).")
flags.DEFINE_float("target_madds", None, "Export the best stored candidate with at most this many MAdds.")
flags.DEFINE_float("target_params", None, "Export the best stored candidate with at most this many parameters.")
flags.DEFINE_float("target_latency_ms", None, "Export the best stored candidate with at most this predicted "
                   "latency (ms); only for a search run with a latency target.")
flags.DEFINE_string("name", None, "Export folder name under --search_dir/export (default: the encoding).")
flags.DEFINE_integer("final_epochs", 15, "Training epochs of the exported candidate.", lower_bound=1)
flags.DEFINE_bool("qat", False, "Quantization-aware fine-tune before the int8 conversion.")
flags.DEFINE_integer("qat_epochs", 2, "Epochs of the quantization-aware fine-tune.", lower_bound=1)
flags.DEFINE_integer("calibration_images", 200, "Train images for int8 calibration.", lower_bound=1)
flags.DEFINE_integer("latency_threads", 1, "Interpreter threads of the latency measurement.", lower_bound=1)
flags.DEFINE_string("data_dir", None, "TFDS data directory of the search's dataset.")
flags.mark_flag_as_required("search_dir")

CHOICE_FLAGS = ("encoding", "target_madds", "target_params", "target_latency_ms")


@flags.multi_flags_validator(list(CHOICE_FLAGS), message="give at most one of --encoding, --target_madds, "
                             "--target_params, --target_latency_ms (none: the search's own winner)")
def _one_choice(values):
    return sum(values[f] is not None for f in CHOICE_FLAGS) <= 1


for _name in CHOICE_FLAGS[1:]:
    flags.register_validator(_name, lambda value: value is None or value > 0, message=f"--{_name} must be > 0")


@flags.validator("search_dir")
def _holds_a_search(value):
    if value is not None and not os.path.exists(os.path.join(value, "trials.sqlite")):
        raise flags.ValidationError(f"--search_dir={value} holds no search (no trials.sqlite)")
    return True


def choose_finalist(setup_config: dict, space, search_dir: str):
    """The `Finalist` the flags ask for, chosen from the stored search before any training, and the
    stored search (`api.SearchResult`).

    Raises:
      app.UsageError: an encoding that does not parse, or a target no stored candidate meets (naming the
        flag and the cheapest stored cost).
    """
    from layernas_tf.api import stored_search
    from layernas_tf.finalize import Finalist, NoCandidateError, choose, stored_latency_fn

    if FLAGS.encoding is not None:
        try:
            encoding = space.to_string(space.parse(FLAGS.encoding))
        except ValueError as e:
            raise app.UsageError(f"--encoding={FLAGS.encoding}: {e}")
    latency_fn = stored_latency_fn(search_dir, space, setup_config["input_size"], setup_config["num_classes"])
    result = stored_search(search_dir, space, latency_fn)
    if FLAGS.encoding is not None:
        trial = next((t for t in result.trials if t.encoding == encoding and t.repeat_of is None), None)
        if trial is None:
            logging.info("--encoding=%s was not trained by the search: no proxy accuracy to compare", encoding)
        return Finalist(FLAGS.name or encoding, encoding, trial, f"--encoding={encoding}"), result
    flag = next((f for f in CHOICE_FLAGS[1:] if getattr(FLAGS, f) is not None), None)
    if flag is None:
        if result.winner is None:
            raise app.UsageError(f"--search_dir={search_dir}: the search has no winner yet; give --encoding")
        return Finalist(FLAGS.name or result.winner.encoding, result.winner.encoding, result.winner,
                        f"winner of {result.target.describe()}"), result
    metric = flag.replace("target_", "")
    if metric == "latency_ms" and result.target.metric != "latency_ms":
        raise app.UsageError(f"--{flag}: the search in {search_dir} stored no latency of its trials (its target is "
                             f"{result.target.describe()}); use --target_madds or --target_params")
    try:
        trial = choose(result, metric, getattr(FLAGS, flag))
    except NoCandidateError as e:
        raise app.UsageError(f"--{flag}={getattr(FLAGS, flag):g}: {e}")
    return Finalist(FLAGS.name or trial.encoding, trial.encoding, trial, f"--{flag}={getattr(FLAGS, flag):g}"), result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    import searchspaces
    from layernas_tf.api import Target, recorded_config

    search_dir = FLAGS.search_dir
    config = recorded_config(search_dir)
    space = searchspaces.get_space(config["space"])
    finalist, result = choose_finalist(config, space, search_dir)
    logging.info("exporting %s (%s)", finalist.encoding, finalist.chosen_by)

    from layernas_tf.executors import make_executor
    from layernas_tf.finalize import (FinalSettings, FinalTrainingError, SearchSetup, command_line, default_reference,
                                      default_trial, export_finalists, print_exports, train_finalists)
    from layernas_tf.runner import setup_worker_tensorflow
    from train.data import load_dataset
    from train.spec import DataSpec, TrainSettings

    setup_worker_tensorflow()
    data_spec = DataSpec(config["dataset"], config["input_size"], config["seed"], FLAGS.data_dir,
                         config.get("max_examples"), config.get("proxy_examples"), config.get("batch_size", 32))
    data = load_dataset(data_spec.dataset, data_spec.image_size, data_spec.seed, data_spec.data_dir,
                        max_examples=data_spec.max_examples)
    proxy_training = TrainSettings(epochs=config["epochs"], batch_size=data_spec.batch_size,
                                   learning_rate=config.get("learning_rate", TrainSettings.learning_rate))
    setup = SearchSetup(space, data_spec, proxy_training, config["input_size"], config["num_classes"],
                        config["bn_momentum"], config["seed"], search_dir, config,
                        Target(**config["target"]).describe())
    settings = FinalSettings(FLAGS.final_epochs, FLAGS.qat, FLAGS.qat_epochs, FLAGS.calibration_images,
                             FLAGS.latency_threads)
    trials = result.trials
    runner = make_executor("in_process")
    try:
        finals, default_accuracy = train_finalists(runner, setup, [finalist], settings, trials)
    except FinalTrainingError as e:
        logging.error("%s", e)
        raise SystemExit(1)
    finally:
        runner.close()
    reference = default_reference(setup, default_accuracy, default_trial(setup, trials) is not None)
    exports = export_finalists(setup, data, [finalist], finals, settings, reference,
                               command_line("layernas_tf.export_main"))
    print_exports(exports)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
