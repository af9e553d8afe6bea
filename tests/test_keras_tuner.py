"""LayerNAS as a Keras Tuner tuner: the space it reads, bad input, and Keras Tuner's contract."""

import io
import contextlib
import math

import keras
import keras_tuner
import numpy as np
import pytest

import layernas_tf
from layernas_tf.api import make_problem
from layernas_tf.keras_count import count_model
from layernas_tf.keras_tuner import (SEARCHER_SETTINGS, CostFunctionError, LayerNAS, LayerTable, SpaceHyperModel,
                                     UnsearchableSpaceError)
from layernas_tf.search import InfeasibleTargetError, make_searcher

SCORE = keras_tuner.Objective("score", "max")


def _digits(n_train=600, n_val=200):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    return (x[:n_train], y[:n_train]), (x[n_train:n_train + n_val], y[n_train:n_train + n_val])


def build_cnn(hp):
    """Three convolutions whose widths are searched, on 8x8 digits."""
    model = keras.Sequential([keras.Input((8, 8, 1))])
    for i in range(3):
        model.add(keras.layers.Conv2D(hp.Choice(f"filters_{i}", [4, 8, 16]), 3, padding="same", activation="relu"))
    if hp.Boolean("pool"):
        model.add(keras.layers.MaxPooling2D())
    model.add(keras.layers.GlobalAveragePooling2D())
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(hp.Fixed("learning_rate", 0.01)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _reward(values):
    """A fixed, deterministic stand-in for training: any function of the values will do."""
    return sum(math.sin(1.0 + 7 * i + 3 * float(v)) for i, v in enumerate(values[k] for k in sorted(values)))


class ScoredCNN(keras_tuner.HyperModel):
    """`build_cnn` whose 'training' returns `_reward` of the values, and records every training."""

    def __init__(self, fail=False, interrupt_at=None):
        super().__init__()
        self.trained, self.fail, self.interrupt_at = [], fail, interrupt_at

    def build(self, hp):
        return build_cnn(hp)

    def fit(self, hp, model, *args, **kwargs):
        self.trained.append(dict(hp.values))
        if self.interrupt_at is not None and len(self.trained) == self.interrupt_at:
            raise KeyboardInterrupt  # the process dies in the middle of this trial
        if self.fail:
            raise RuntimeError("out of memory")
        return {"score": _reward(hp.values)}


def _params(values):
    hp = keras_tuner.HyperParameters()
    hp.values = dict(values)
    return count_model(build_cnn(hp)).params


# -- the space ----------------------------------------------------------------------------------------


def test_layers_follow_declaration_order_and_fixed_values_stay_fixed():
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 16, 64, step=16, default=32)
    hp.Fixed("dropout", 0.1)
    hp.Boolean("batch_norm", default=True)
    hp.Choice("activation", ["relu", "gelu"])
    hp.Float("l2", 0.001, 0.1, step=10, sampling="log")
    hp.Int("depth", 3, 3)
    table = LayerTable(hp)
    assert table.names == ["units", "batch_norm", "activation", "l2"]
    assert table.options[:3] == [(16, 32, 48, 64), (False, True), ("relu", "gelu")]
    assert table.options[3] == pytest.approx((0.001, 0.01, 0.1))
    assert table.default == [1, 1, 0, 0]
    assert table.fixed == {"dropout": 0.1, "depth": 3}
    assert table.values((3, 0, 1, 2)) == {"dropout": 0.1, "depth": 3, "units": 64, "batch_norm": False,
                                          "activation": "gelu", "l2": pytest.approx(0.1)}
    assert table.encoding(table.values((3, 0, 1, 2))) == (3, 0, 1, 2)


def test_a_float_without_step_is_refused_naming_it():
    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [8, 16])
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    with pytest.raises(UnsearchableSpaceError, match=r"'learning_rate' is a Float from 0.0001 to 0.01 without a step"):
        LayerTable(hp)


def test_a_conditional_hyperparameter_is_refused_before_any_training(tmp_path):
    def build(hp):
        kind = hp.Choice("kind", ["dense", "conv"])
        with hp.conditional_scope("kind", ["conv"]):
            if kind == "conv":
                hp.Choice("kernel", [3, 5])
        return build_cnn(hp)

    with pytest.raises(UnsearchableSpaceError, match=r"'kernel' is declared under conditional_scope"):
        LayerNAS(build, objective="val_accuracy", max_trials=3, target=layernas_tf.Target("params", 1e4),
                 directory=str(tmp_path))


def test_a_hypermodel_without_searchable_hyperparameters_is_refused(tmp_path):
    def build(hp):
        hp.Fixed("units", 8)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(hp.get("units"))])

    with pytest.raises(UnsearchableSpaceError, match=r"declares no searchable hyperparameter \(Fixed: units\)"):
        LayerNAS(build, objective="loss", max_trials=3, target=layernas_tf.Target("params", 1e4),
                 directory=str(tmp_path))


# -- costs and bad input --------------------------------------------------------------------------------


def test_a_target_no_candidate_meets_names_the_cheapest_candidate_and_its_cost(tmp_path):
    cheapest = {"learning_rate": 0.01, "filters_0": 4, "filters_1": 4, "filters_2": 4, "pool": False}
    with pytest.raises(InfeasibleTargetError) as info:
        LayerNAS(build_cnn, objective="val_accuracy", max_trials=3, target=layernas_tf.Target("params", 300),
                 directory=str(tmp_path))
    assert str(info.value) == (f"target params <= 300: the cheapest candidate, {cheapest}, has params "
                               f"{_params(cheapest):,}; no candidate of this hypermodel meets params <= 300")


@pytest.mark.parametrize("cost_fn, message", [
    (lambda values: values["units"] / 0, r"cost_fn raised ZeroDivisionError: division by zero for values \{'units': 8"),
    (lambda values: "cheap", r"cost_fn returned 'cheap' for values \{'units': 8"),
    (lambda values: float("nan"), r"cost_fn returned nan for values \{'units': 8"),
])
def test_a_cost_fn_that_raises_or_returns_a_non_number_names_the_values(tmp_path, cost_fn, message):
    def build(hp):
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(hp.Choice("units", [8, 16]))])

    with pytest.raises(CostFunctionError, match=message):
        LayerNAS(build, objective="loss", max_trials=3, target=layernas_tf.Target("madds", 1e4), cost_fn=cost_fn,
                 directory=str(tmp_path))


def test_cost_fn_is_used_and_costs_are_cached_per_candidate(tmp_path):
    calls = []

    def cost_fn(values):
        calls.append(dict(values))
        return 100.0 * values["filters_0"] + values["filters_1"] + values["filters_2"]

    hypermodel = ScoredCNN()
    tuner = LayerNAS(hypermodel, objective=SCORE, max_trials=10, target=layernas_tf.Target("madds", 1000),
                     cost_fn=cost_fn, directory=str(tmp_path), seed=3)
    tuner.search(verbose=0)
    keys = [tuple(sorted(c.items())) for c in calls]
    assert len(keys) == len(set(keys)) == tuner.oracle.candidate_costs.evaluations
    assert hypermodel.trained and all(cost_fn(v) <= 1000 for v in hypermodel.trained)
    assert all(v["filters_0"] <= 8 for v in hypermodel.trained)  # 16 filters cost at least 1600


# -- Keras Tuner's contract ---------------------------------------------------------------------------


class EpochLog(keras.callbacks.Callback):
    """Records every epoch's validation accuracy (in a class list: Keras Tuner copies callbacks)."""

    epochs = []

    def on_epoch_end(self, epoch, logs=None):
        EpochLog.epochs.append(logs["val_accuracy"])


def test_search_trains_only_candidates_within_target_on_the_users_data_callbacks_and_epochs(tmp_path):
    (x, y), (x_val, y_val) = _digits()
    target = layernas_tf.Target("params", 2000)
    tuner = LayerNAS(build_cnn, objective="val_accuracy", max_trials=4, target=target, seed=1,
                     directory=str(tmp_path), project_name="digits")
    EpochLog.epochs = []
    tuner.search(x, y, epochs=2, validation_data=(x_val, y_val), callbacks=[EpochLog()], verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 4 and all(t.status == "COMPLETED" for t in trials)
    assert len(EpochLog.epochs) == 2 * 4
    assert sorted(max(EpochLog.epochs[i:i + 2]) for i in range(0, 8, 2)) == sorted(t.score for t in trials)
    for trial in trials:
        costs = tuner.oracle.trial_costs[trial.trial_id]
        assert costs["params"] == _params(trial.hyperparameters.values) <= 2000
    best = tuner.oracle.get_best_trials(4)
    assert [t.score for t in best] == sorted((t.score for t in trials), reverse=True)
    model = tuner.get_best_models(1)[0]
    assert count_model(model).params == tuner.oracle.trial_costs[best[0].trial_id]["params"]
    accuracy = model.evaluate(x_val, y_val, verbose=0)[1]
    assert accuracy == pytest.approx(best[0].score, abs=1e-6)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        tuner.results_summary(2)
    assert f"Trial {best[0].trial_id} summary" in printed.getvalue()
    assert f"Score: {best[0].score}" in printed.getvalue()


def test_resume_from_the_directory_does_not_retrain_a_finished_trial(tmp_path):
    target = layernas_tf.Target("params", 3000)

    def run(hypermodel, directory):
        tuner = LayerNAS(hypermodel, objective=SCORE, max_trials=9, target=target, seed=2,
                         directory=str(directory), project_name="p")
        tuner.search(verbose=0)
        return tuner

    reference = ScoredCNN()
    uninterrupted = run(reference, tmp_path / "reference")
    first = ScoredCNN(interrupt_at=5)
    with pytest.raises(KeyboardInterrupt):
        run(first, tmp_path / "resumed")
    second = ScoredCNN()
    resumed = run(second, tmp_path / "resumed")
    # The interrupted fifth trial runs again; none of the four finished ones does.
    assert second.trained[0] == first.trained[4]
    assert first.trained[:4] + second.trained == reference.trained
    def values(tuner):
        return [t.hyperparameters.values for _, t in sorted(tuner.oracle.trials.items())]

    assert values(resumed) == values(uninterrupted) == reference.trained
    assert resumed.oracle.get_best_trials()[0].score == uninterrupted.oracle.get_best_trials()[0].score


def test_max_consecutive_failed_trials_stops_the_search(tmp_path):
    hypermodel = ScoredCNN(fail=True)
    tuner = LayerNAS(hypermodel, objective=SCORE, max_trials=9, target=layernas_tf.Target("params", 3000),
                     max_consecutive_failed_trials=2, directory=str(tmp_path))
    with pytest.raises(RuntimeError, match="Number of consecutive failures exceeded the limit of 2"):
        tuner.search(verbose=0)
    assert len(hypermodel.trained) == 2
    assert [t.status for t in tuner.oracle.trials.values()] == ["FAILED", "FAILED"]
    assert [t.reward for t in tuner.oracle.searcher.trials] == [None, None]


# -- the project's spaces -----------------------------------------------------------------------------


class ScoredSpace(SpaceHyperModel):
    def fit(self, hp, model, *args, **kwargs):
        return {"score": _reward({str(i): o for i, o in enumerate(self.encoding(hp.values))})}


def test_space_hypermodel_proposes_what_the_project_searcher_proposes(tmp_path):
    hypermodel = ScoredSpace("mobilenet_v3_small", input_size=32, num_classes=10)
    target = layernas_tf.Target("madds", 3.0e6)
    tuner = LayerNAS(hypermodel, objective=SCORE, max_trials=14, target=target, seed=5, directory=str(tmp_path))
    tuner.search(verbose=0)

    problem = make_problem(hypermodel.space, target, 32, 10)
    searcher = make_searcher("layernas", problem, 14, 5, **SEARCHER_SETTINGS)
    while not searcher.done:
        proposals = searcher.ask(1)
        if not proposals:
            break
        for encoding in proposals:
            searcher.tell(encoding, _reward({str(i): o for i, o in enumerate(encoding)}))
    ours = [h.encoding for h in searcher.handouts]
    assert [tuple(h["encoding"]) for h in tuner.oracle.handouts] == ours
    trained = [hypermodel.encoding(t.hyperparameters.values) for t in tuner.oracle.trials.values()]
    assert trained == list(dict.fromkeys(ours))  # repeats are answered, not trained
    assert all(problem.cost_of(e) <= 3.0e6 for e in trained)


# -- costing without training -------------------------------------------------------------------------


def _table_and_costs(build):
    from layernas_tf.keras_tuner import CandidateCosts

    hp = keras_tuner.HyperParameters()
    build(hp)
    table = LayerTable(hp)
    return table, CandidateCosts(table, hp, "madds", hypermodel=keras_tuner.HyperModel.__new__(_Wrapped).wrap(build))


class _Wrapped(keras_tuner.HyperModel):
    def wrap(self, build):
        keras_tuner.HyperModel.__init__(self)
        self._build_fn = build
        return self

    def build(self, hp):
        return self._build_fn(hp)


def test_per_layer_look_ups_predict_built_counts_exactly_with_few_builds():
    import random

    from layernas_tf.benchmarks.hypermodels import build_digits_cnn

    table, costs = _table_and_costs(build_digits_cnn)
    assert costs.learn(checks=4)
    builds = costs.builds
    rng = random.Random(0)
    candidates = {tuple(rng.randrange(n) for n in table.num_options) for _ in range(40)}
    predicted = {e: costs.costs(e) for e in candidates}
    assert costs.builds - builds < len(candidates) and costs.predicted  # some are look-ups
    for encoding, value in predicted.items():
        hp = keras_tuner.HyperParameters()
        hp.values = table.values(encoding)
        assert value == count_model(build_digits_cnn(hp)), table.values(encoding)


def test_look_ups_are_off_when_a_hyperparameter_changes_the_layers():
    table, costs = _table_and_costs(build_cnn)  # 'pool' adds a layer
    assert not costs.learn(checks=2)
    encoding = (2, 1, 0, 1)
    assert costs.costs(encoding).params == _params(table.values(encoding))
    assert encoding in costs.built


def _filter_sum(values):
    return float(sum(values[f"filters_{i}"] for i in range(3)))


def _oracle_search(tmp_path, hypermodel, max_trials, target, seed):
    """A plain Keras Tuner tuner served by the LayerNAS oracle alone, costed by `_filter_sum`."""
    from layernas_tf.keras_tuner import LayerNASOracle

    oracle = LayerNASOracle(objective=SCORE, max_trials=max_trials, target=layernas_tf.Target("madds", target),
                            cost_fn=_filter_sum, seed=seed)
    keras_tuner.Tuner(oracle=oracle, hypermodel=hypermodel, directory=str(tmp_path)).search(verbose=0)
    return oracle


def test_the_oracle_alone_serves_a_plain_keras_tuner_tuner_with_cost_fn(tmp_path):
    cost_fn = _filter_sum
    hypermodel = ScoredCNN()
    oracle = _oracle_search(tmp_path, hypermodel, 6, 20, seed=1)
    assert len(hypermodel.trained) == len(oracle.trials) >= 3
    assert all(cost_fn(values) <= 20 for values in hypermodel.trained)


def test_an_oracle_without_cost_fn_or_hypermodel_and_a_bad_target_are_refused():
    from layernas_tf.keras_tuner import LayerNASOracle

    with pytest.raises(TypeError, match=r"target must be a layernas_tf.Target"):
        LayerNASOracle(objective="val_accuracy", max_trials=3, target=("params", 100))
    oracle = LayerNASOracle(objective="val_accuracy", max_trials=3, target=layernas_tf.Target("params", 100))
    oracle.hyperparameters.Choice("units", [8, 16])
    with pytest.raises(ValueError, match=r"needs cost_fn\(values\) -> float, or the hypermodel"):
        oracle.prepare()


def test_a_candidate_layernas_asks_for_again_is_trained_again_as_a_trial_of_its_own(tmp_path):
    class NoisyCNN(ScoredCNN):
        """Each training of the same values scores differently, as another seed would."""

        def fit(self, hp, model, *args, **kwargs):
            again = sum(values == hp.values for values in self.trained)
            self.trained.append(dict(hp.values))
            noise = np.random.default_rng([again, *(int(v) for v in hp.values.values())]).normal(0, 0.3)
            return {"score": _reward(hp.values) + noise}

    hypermodel = NoisyCNN()
    oracle = _oracle_search(tmp_path, hypermodel, 40, 30, seed=0)
    trained = [tuple(sorted(v.items())) for v in hypermodel.trained]
    assert len(trained) > len(set(trained))  # some values were trained more than once
    assert len(hypermodel.trained) == len(oracle.trials)  # each training is a Keras Tuner trial
    asked = [tuple(h["encoding"]) for h in oracle.handouts if h["trial_id"] is not None]
    assert asked == [tuple(h.encoding) for h in oracle.searcher.handouts if oracle._meets_target(h.encoding)]
    assert all("repeat_of" not in h for h in oracle.handouts)
