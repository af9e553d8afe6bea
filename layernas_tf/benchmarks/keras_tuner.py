"""LayerNAS against Keras Tuner's own tuners on one HyperModel, under one parameter target.

    layernas-keras-tuner-benchmark --trials=12 --epochs=3 --target_params=6000 --out=runs/keras_tuner

`--measure=compare` (default): the same HyperModel (a small CNN on scikit-learn's 8x8 digits, not a
MobileNet), the same number of trials, for LayerNAS (`Target("params", P)`) and for Keras Tuner's
RandomSearch and BayesianOptimization with `max_model_size=P` (they build every proposal and skip
the oversized ones). Per tuner: the share of trials over the target, the best validation accuracy
within the target and the wall time. Prints a table and writes `DIR/keras_tuner.json`.

`--measure=costing`: the time LayerNAS spends costing candidates (building and counting them with
the generic Keras counter, no training) per proposal, on a MobileNet-sized hypermodel at 32x32
(`--costing_hypermodel`), against the wall time of one 1-epoch trial of its default candidate on
the digits upsampled to 32x32x3. Trials return a fixed reward, so only costing is timed. Writes
`DIR/costing_HYPERMODEL.json`.
"""

from __future__ import annotations

import json
import math
import pathlib
import tempfile
import time

from absl import app, flags

from layernas_tf.benchmarks.hypermodels import build_digits_cnn, build_mobilenet_v2_stages, digits  # noqa: F401

FLAGS = flags.FLAGS
flags.DEFINE_list("measure", ["compare"], "What to run: compare, costing (or both).")
flags.DEFINE_integer("trials", 12, "Trials per tuner.", lower_bound=1)
flags.DEFINE_integer("epochs", 3, "Training epochs per trial.", lower_bound=1)
flags.DEFINE_integer("target_params", 6000, "Target: at most this many trainable parameters.", lower_bound=1)
flags.DEFINE_list("seeds", ["1"], "Tuner seeds; the table averages over them.")
flags.DEFINE_list("tuners", ["layernas", "random", "bayesian"], "Tuners to compare.")
flags.DEFINE_string("costing_hypermodel", "mobilenet_v2_stages",
                    "What --measure=costing costs: mobilenet_v2_stages (a MobileNetV2 HyperModel written as a Keras "
                    "Tuner user would, width and per-stage expansion and kernel searched) or a space name (its "
                    "SpaceHyperModel, costed by building and counting instead of the analytic profiler).")
flags.DEFINE_integer("costing_trials", 30, "Proposals in the costing measurement.", lower_bound=1)
flags.DEFINE_float("costing_fraction", 0.5, "Costing target: this share of the default candidate's MAdds.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("out", "runs/keras_tuner", "Output folder.")

TUNERS = ("layernas", "random", "bayesian")
MEASURES = ("compare", "costing")


@flags.validator("measure", message=f"--measure: one or more of {', '.join(MEASURES)}")
def _check_measure(values):
    return bool(values) and all(v in MEASURES for v in values)


@flags.validator("tuners", message=f"--tuners: one or more of {', '.join(TUNERS)}")
def _check_tuners(values):
    return bool(values) and all(v in TUNERS for v in values)


@flags.validator("seeds", message="--seeds: positive integers, e.g. 1,2")
def _check_seeds(values):
    return bool(values) and all(v.isdigit() and int(v) > 0 for v in values)


def _tuner(name: str, seed: int, directory: str):
    import keras_tuner

    import layernas_tf
    from layernas_tf.keras_tuner import LayerNAS

    common = dict(objective="val_accuracy", max_trials=FLAGS.trials, seed=seed, directory=directory,
                  project_name=name, max_consecutive_failed_trials=FLAGS.trials + 1)
    if name == "layernas":
        return LayerNAS(build_digits_cnn, target=layernas_tf.Target("params", FLAGS.target_params), **common)
    cls = keras_tuner.RandomSearch if name == "random" else keras_tuner.BayesianOptimization
    return cls(build_digits_cnn, max_model_size=FLAGS.target_params, **common)


def compare() -> dict:
    import keras_tuner

    from layernas_tf.keras_count import count_model

    (x, y), (x_val, y_val) = digits()
    runs = {name: [] for name in FLAGS.tuners}
    for seed in map(int, FLAGS.seeds):
        for name in FLAGS.tuners:
            with tempfile.TemporaryDirectory() as directory:
                start = time.perf_counter()
                tuner = _tuner(name, seed, directory)
                tuner.search(x, y, epochs=FLAGS.epochs, validation_data=(x_val, y_val), verbose=0)
                seconds = time.perf_counter() - start
            trials = []
            for trial in tuner.oracle.trials.values():
                hp = keras_tuner.HyperParameters()
                hp.values = dict(trial.hyperparameters.values)
                trials.append({"values": hp.values, "params": count_model(build_digits_cnn(hp)).params,
                               "status": trial.status, "val_accuracy": trial.score})
            within = [t["val_accuracy"] for t in trials if t["params"] <= FLAGS.target_params
                      and t["status"] == "COMPLETED" and t["val_accuracy"] is not None]
            run = {"seed": seed, "seconds": seconds, "trials": trials,
                   "over_target_share": sum(t["params"] > FLAGS.target_params for t in trials) / max(1, len(trials)),
                   "trained": sum(t["status"] == "COMPLETED" for t in trials),
                   "best_val_accuracy_within_target": max(within, default=None)}
            runs[name].append(run)
            print(f"{name} seed {seed}: {len(trials)} trials, {run['over_target_share']:.0%} over target, best "
                  f"{run['best_val_accuracy_within_target']}, {seconds:.0f} s", flush=True)
    print(f"\nTarget: params <= {FLAGS.target_params:,}; {FLAGS.trials} trials of {FLAGS.epochs} epochs per tuner; "
          f"seeds {','.join(FLAGS.seeds)} (means)\n")
    print("| tuner | trials over target | trials trained | best val accuracy within target | wall time (s) |")
    print("|---|---|---|---|---|")
    for name, seeds in runs.items():
        bests = [r["best_val_accuracy_within_target"] for r in seeds if r["best_val_accuracy_within_target"] is not None]
        best = f"{sum(bests) / len(bests):.4f}" if bests else "none"
        print(f"| {name} | {_mean(r['over_target_share'] for r in seeds):.0%} | "
              f"{_mean(r['trained'] for r in seeds):.1f} | {best} | {_mean(r['seconds'] for r in seeds):.0f} |")
    return {"target_params": FLAGS.target_params, "trials": FLAGS.trials, "epochs": FLAGS.epochs, "runs": runs}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def costing() -> dict:
    import keras
    import keras_tuner

    import layernas_tf
    import searchspaces
    from layernas_tf.keras_count import count_model
    from layernas_tf.keras_tuner import LayerNAS, SpaceHyperModel

    def fixed_reward(values):  # a fixed reward: this run measures costing only
        return {"score": sum(math.sin(1.0 + 7 * i + 3 * float(values[k])) for i, k in enumerate(sorted(values)))}

    if FLAGS.costing_hypermodel == "mobilenet_v2_stages":
        class Costed(keras_tuner.HyperModel):
            def build(self, hp):
                return build_mobilenet_v2_stages(hp)

            def fit(self, hp, model, *args, **kwargs):
                return fixed_reward(hp.values)
    else:
        class Costed(SpaceHyperModel):
            """The space as a user's HyperModel: no analytic costs, so LayerNAS builds and counts."""

            layernas_cost = None

            def fit(self, hp, model, *args, **kwargs):
                return fixed_reward(hp.values)

    class FreeTrials(LayerNAS):
        def run_trial(self, trial, *args, **kwargs):  # no build: only the oracle's costing is timed
            return self.hypermodel.fit(trial.hyperparameters, None)

    hypermodel = (Costed() if FLAGS.costing_hypermodel == "mobilenet_v2_stages"
                  else Costed(searchspaces.get_space(FLAGS.costing_hypermodel), input_size=32, num_classes=10))
    default_model = hypermodel.build(keras_tuner.HyperParameters())
    default_costs = count_model(default_model)
    target = layernas_tf.Target("madds", FLAGS.costing_fraction * default_costs.madds)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        tuner = FreeTrials(hypermodel, objective=keras_tuner.Objective("score", "max"), max_trials=FLAGS.costing_trials,
                           target=target, seed=1, directory=directory)
        tuner.search(verbose=0)
        search_seconds = time.perf_counter() - start
    oracle = tuner.oracle
    proposals = len(oracle.handouts)
    costed, builds = oracle.candidate_costs.evaluations, oracle.candidate_costs.builds
    per_proposal = oracle.costing_seconds() / max(1, proposals)

    (x, y), (x_val, y_val) = digits(32, 3)
    keras.backend.clear_session()
    start = time.perf_counter()
    model = hypermodel.build(keras_tuner.HyperParameters())
    model.fit(x, y, epochs=1, batch_size=32, validation_data=(x_val, y_val), verbose=0)
    trial_seconds = time.perf_counter() - start
    name = FLAGS.costing_hypermodel
    result = {"hypermodel": name, "input_size": 32, "searched_hyperparameters": len(oracle.table.names),
              "options": sum(oracle.table.num_options), "default_params": default_costs.params,
              "default_madds": default_costs.madds, "layers": len(default_model.layers),
              "target": target.describe(), "proposals": proposals, "trials": len(oracle.trials),
              "candidates_costed": costed, "models_built": builds, "costing_seconds": oracle.costing_seconds(),
              "costing_seconds_per_build": oracle.costing_seconds() / max(1, builds),
              "costing_seconds_per_proposal": per_proposal, "search_seconds": search_seconds,
              "one_epoch_digits_trial_seconds": trial_seconds, "share_of_trial": per_proposal / trial_seconds}
    print(f"\n{name} at 32x32 ({default_costs.params:,} params, {len(default_model.layers)} layers, "
          f"{result['searched_hyperparameters']} hyperparameters, {result['options']} options), target {target.describe()}")
    print("| proposals | candidates costed | models built | costing s | s per build | costing s per proposal "
          "| 1-epoch digits trial s | share |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {proposals} | {costed} | {builds} | {oracle.costing_seconds():.1f} | "
          f"{result['costing_seconds_per_build']:.3f} | "
          f"{per_proposal:.2f} | {trial_seconds:.1f} | {result['share_of_trial']:.1%} |")
    return result


def main(argv):
    del argv
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    if "compare" in FLAGS.measure:
        (out / "keras_tuner.json").write_text(json.dumps(compare(), indent=2))
    if "costing" in FLAGS.measure:
        (out / f"costing_{FLAGS.costing_hypermodel}.json").write_text(json.dumps(costing(), indent=2))
    print(f"\nwrote {out}")


def run():
    from layernas_tf.quiet import import_tensorflow

    import_tensorflow()
    app.run(main)


if __name__ == "__main__":
    run()
