"""The Python API with the caller's own tf.data pipelines and compile settings."""

import numpy as np
import pytest
import tensorflow as tf

import searchspaces
from layernas_tf import api
from layernas_tf.runner import LiveData
from layernas_tf.search import InfeasibleTargetError
from layernas_tf.store import COMPLETED, FAILED, IncompatibleSearchError

SPACE = searchspaces.get_space("cifar_mobilenet_v2")


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (n, 8, 8, 3)).astype(np.float32)
    labels = (images[:, :4, :4, 0].mean(axis=(1, 2)) > 0).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)


def _target():
    return api.Target("madds", 5e5)


def test_failed_trial_is_recorded_and_the_search_goes_on(tmp_path):
    compiled = []

    def compile_fn(model):
        compiled.append(model.name)
        if len(compiled) == 2:  # the second candidate diverges
            model.compile(_exploding(), "sparse_categorical_crossentropy",
                          metrics=["accuracy"])
        else:
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

    seen = []
    result = api.search(SPACE, _data(), _data(seed=1), _target(), max_trials=4, epochs=1, search_dir=str(tmp_path),
                        compile_fn=compile_fn, input_size=8, num_classes=2,
                        on_trial=lambda record, best: seen.append((record.status, best)))
    statuses = [t.status for t in result.trials]
    assert statuses == [COMPLETED, FAILED, COMPLETED, COMPLETED]
    assert result.trials[1].reward is None and "not finite" in result.trials[1].error
    assert result.counts == {"completed": 3, "failed": 1, "repeated": 0}
    assert [s for s, _ in seen] == statuses
    assert result.winner is not None and result.winner.status == COMPLETED and result.winner.madds <= 5e5
    assert set(result.trials[0].timings) >= {"data", "build", "trace", "train", "eval", "cleanup"}


def _exploding():
    import keras

    return keras.optimizers.SGD(learning_rate=1e30)


def test_caller_compile_and_fit_settings_are_used(tmp_path):
    import keras

    calls = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            calls.append(epoch)

    result = api.search(SPACE, _data(), _data(seed=1), _target(), max_trials=2, epochs=2, search_dir=str(tmp_path),
                        compile_fn=lambda m: m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"]),
                        fit_kwargs={"callbacks": [Record()]}, input_size=8, num_classes=2)
    assert calls == [0, 1, 0, 1]
    assert all(0.0 <= t.reward <= 1.0 for t in result.trials)


def test_impossible_target_names_the_smallest_cost():
    with pytest.raises(InfeasibleTargetError, match="smallest achievable cost is 285912"):
        api.search(SPACE, _data(), _data(), api.Target("madds", 1000), input_size=8, num_classes=2)


def test_same_dir_other_settings_is_refused(tmp_path):
    api.search(SPACE, _data(), _data(), _target(), max_trials=1, epochs=1, search_dir=str(tmp_path),
               input_size=8, num_classes=2)
    with pytest.raises(IncompatibleSearchError, match="max_trials: recorded 1, requested 2"):
        api.search(SPACE, _data(), _data(), _target(), max_trials=2, epochs=1, search_dir=str(tmp_path),
                   input_size=8, num_classes=2)


def test_bad_target_is_refused():
    with pytest.raises(ValueError, match="target metric 'flops'; allowed: madds, params, latency_ms"):
        api.Target("flops", 1e6)
    with pytest.raises(ValueError, match="need 0 <= min"):
        api.Target("madds", 1e6, 2e6)


def test_bucket_winners_pick_the_best_per_cost_range():
    from layernas_tf.store import TrialRecord

    trials = [TrialRecord(i, f"e{i}", cost, 0, 0, COMPLETED, reward) for i, (cost, reward) in
              enumerate([(10, 0.5), (20, 0.7), (30, 0.6), (90, 0.9), (95, 0.8), (150, 0.99)])]
    result = api.SearchResult(SPACE, api.Target("madds", 100), trials, trials[3], {}, [], 0)
    # buckets of 25: [0, 25) holds costs 10, 20; [25, 50) holds 30; [75, 100] holds 90, 95; 150 is out
    assert [t.number for t in result.bucket_winners(4)] == [3, 2, 1]
    assert [t.number for t in result.bucket_winners(1)] == [3]
    # With the searcher's scores, buckets rank as the searcher does, not by the raw reward.
    scored = api.SearchResult(SPACE, api.Target("madds", 100), trials, trials[4], {}, [], 0,
                              scores={"e0": 0.6, "e1": 0.5, "e2": 0.6, "e3": 0.7, "e4": 0.8, "e5": 0.9})
    assert [t.number for t in scored.bucket_winners(4)] == [4, 2, 0]


def _generator_data(n=64, seed=0, batch=8):
    """A pipeline that does not know its size (cardinality -2), like a generator or a filtered dataset."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (n, 8, 8, 3)).astype(np.float32)
    labels = (images[:, :4, :4, 0].mean(axis=(1, 2)) > 0).astype(np.int32)
    ds = tf.data.Dataset.from_generator(lambda: iter(zip(images, labels)), output_signature=(
        tf.TensorSpec((8, 8, 3), tf.float32), tf.TensorSpec((), tf.int32)))
    return ds.batch(batch)


def test_unknown_size_dataset_still_trains_with_a_learning_rate_halfway(tmp_path):
    import keras

    train = _generator_data()
    assert int(train.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    rates = []

    class Rate(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    api.search(SPACE, train, _data(seed=1), _target(), max_trials=1, epochs=2, search_dir=str(tmp_path),
               input_size=8, num_classes=2, fit_kwargs={"callbacks": [Rate()]})
    # 8 batches x 2 epochs, one callback per 8 steps: the rate at the end of epoch 1 is half the peak.
    assert len(rates) == 2
    assert rates[0] == pytest.approx(5e-3 * 0.5, rel=0.05)


def test_a_bug_in_every_trial_stops_the_search_after_three_failures(tmp_path):
    def broken_compile(model):
        raise TypeError("compile_fn forgot the metrics")

    with pytest.raises(api.TooManyFailuresError) as error:
        api.search(SPACE, _data(), _data(seed=1), _target(), max_trials=4, epochs=1, search_dir=str(tmp_path),
                   compile_fn=broken_compile, input_size=8, num_classes=2)
    message = str(error.value)
    assert "3 trials failed in a row" in message and "TypeError: compile_fn forgot the metrics" in message
    assert "All 3 trials so far are stored" in message and "rerun with the same search directory to resume" in message
    # The failures are stored; a rerun with the cause fixed resumes after them.
    resumed = api.search(SPACE, _data(), _data(seed=1), _target(), max_trials=4, epochs=1, search_dir=str(tmp_path),
                         compile_fn=lambda m: m.compile("adam", "sparse_categorical_crossentropy",
                                                        metrics=["accuracy"]),
                         input_size=8, num_classes=2, max_consecutive_failures=3)
    assert resumed.resumed_trials == 3 and [t.status for t in resumed.trials[:3]] == [FAILED] * 3
    assert resumed.counts["completed"] >= 1


def test_random_search_repeats_are_answered_from_the_store(tmp_path):
    from layernas_tf.costs import cost_function

    cheapest = min(cost_function(SPACE, "madds", 8, 2)(e) for e in [(0,) * SPACE.num_layers])
    trainings = []

    def compile_fn(model):
        trainings.append(model.name)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

    # Only the cheapest candidate meets this target, so random search keeps proposing it.
    result = api.search(SPACE, _data(), _data(seed=1), api.Target("madds", cheapest), max_trials=3, epochs=1,
                        search_dir=str(tmp_path), compile_fn=compile_fn, input_size=8, num_classes=2,
                        searcher="random")
    assert len(trainings) == 1
    assert [t.repeat_of for t in result.trials] == [None, 0, 0]
    assert len({t.reward for t in result.trials}) == 1
    assert result.counts == {"completed": 1, "failed": 0, "repeated": 2}


def test_unknown_searcher_is_refused():
    with pytest.raises(ValueError, match="searcher='random_unaware'; allowed: layernas, random, evolution, ppo"):
        api.search(SPACE, _data(), _data(), _target(), searcher="random_unaware", input_size=8, num_classes=2)


def test_chance_check_warns_once_when_every_trial_is_at_chance():
    labels = np.arange(32) % 2
    validation = tf.data.Dataset.from_tensor_slices((np.zeros((32, 1), np.float32), labels)).batch(10)
    check = api.ChanceCheck(LiveData(None, validation))
    chance, ceiling = check.band()
    assert chance == 0.5 and ceiling == pytest.approx(0.5 + 3 * (0.25 / 32) ** 0.5)
    assert not check.check([0.5, 0.55])  # too few trials to tell
    assert not check.check([0.5, 0.9, 0.5])  # one trial learned
    assert check.check([0.5, 0.55, 0.6])
    assert not check.check([0.5, 0.55, 0.6])  # once


def test_verbose_1_shows_a_progress_bar_of_trials_running_best_and_cost_and_the_callbacks_still_run(tmp_path, capsys):
    seen = []
    result = api.search(SPACE, _data(), _data(seed=1), api.Target("madds", 1e6), max_trials=2, epochs=1, search_dir=str(tmp_path),
                        input_size=8, num_classes=2, on_trial=lambda record, best: seen.append(best))
    bar = capsys.readouterr().err
    assert len(seen) == 2 and len(result.trials) == 2
    best = seen[-1]  # the default (576,000 MAdds at 8x8) is within the target, so a best exists from trial 1
    assert "trials: 100%" in bar and "2/2 [" in bar
    assert f"best={best.reward:.4f}" in bar and f"cost={best.cost:,.4g}" in bar and "running=" in bar


def test_verbose_0_is_silent_and_the_callbacks_still_run(tmp_path, capsys):
    seen = []
    api.search(SPACE, _data(), _data(seed=1), _target(), max_trials=2, epochs=1, search_dir=str(tmp_path),
               input_size=8, num_classes=2, on_trial=lambda record, best: seen.append(record.status), verbose=0)
    captured = capsys.readouterr()
    assert seen == [COMPLETED, COMPLETED]
    assert "trials:" not in captured.err and "best=" not in captured.err and captured.out == ""


def test_a_bad_verbose_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match=r"verbose=2; allowed: 0 \(silent\) or 1 \(a progress bar\)"):
        api.search(SPACE, _data(), _data(), _target(), input_size=8, num_classes=2, verbose=2)


def test_a_stored_search_ranks_its_trials_as_the_search_did(tmp_path):
    from layernas_tf.store import TrialStore

    result = api.search(SPACE, _data(), _data(seed=1), _target(), max_trials=4, epochs=1, search_dir=str(tmp_path),
                        input_size=8, num_classes=2)
    with TrialStore(str(tmp_path), api.recorded_config(str(tmp_path))) as store:
        before = store.trials()
    stored = api.stored_search(str(tmp_path), SPACE)
    assert stored.winner == result.winner and stored.scores == result.scores
    assert stored.target == result.target and [t.encoding for t in stored.trials] == [t.encoding for t in result.trials]
    with TrialStore(str(tmp_path), api.recorded_config(str(tmp_path))) as store:
        assert store.trials() == before  # nothing written
    with pytest.raises(ValueError, match="space 'mobilenet_v3_small' is not the space of the search"):
        api.stored_search(str(tmp_path), searchspaces.get_space("mobilenet_v3_small"))
    with pytest.raises(FileNotFoundError, match="holds no search"):
        api.stored_search(str(tmp_path / "elsewhere"), SPACE)
