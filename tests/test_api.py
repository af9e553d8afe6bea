"""The Python API with the caller's own tf.data pipelines and compile settings."""

import numpy as np
import pytest
import tensorflow as tf

import searchspaces
from layernas_tf import api
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
    assert result.counts == {"completed": 3, "failed": 1}
    assert [s for s, _ in seen] == statuses
    assert result.winner is not None and result.winner.status == COMPLETED and result.winner.madds <= 5e5
    assert set(result.trials[0].timings) >= {"profile", "build", "trace", "train", "eval"}


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
