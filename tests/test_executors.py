"""Local worker processes: a killed worker is replaced and its trial retried; a trial gives the same
reward whichever worker runs it."""

import functools
import os
import signal
import threading

import pytest

import searchspaces
from layernas_tf import api
from layernas_tf.executors import LocalExecutor, run_specs
from layernas_tf.runner import TrialSpec
from parallel_helpers import stall_once, tiny_data, wait_for_pid
from train.spec import DataSpec, TrainSettings

SPACE = searchspaces.get_space("cifar_mobilenet_v2")


def test_a_killed_worker_is_replaced_and_its_trial_retried(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    killed = []

    def kill_the_stalled_worker():
        pid = wait_for_pid(str(markers))
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_stalled_worker, daemon=True)
    killer.start()
    with LocalExecutor(2) as executor:
        result = api.search(SPACE, functools.partial(stall_once, str(markers)), None, api.Target("madds", 5e5),
                            max_trials=3, epochs=1, search_dir=str(tmp_path / "search"), input_size=8,
                            num_classes=2, executor=executor, trial_retries=1)
        assert executor.replaced == 1
    killer.join(timeout=1)
    assert killed
    retried = [t for t in result.trials if t.attempts == 2]
    assert len(retried) == 1 and retried[0].status == "completed"
    assert "attempt 1: WorkerLost: worker" in retried[0].error and "killed by SIGKILL" in retried[0].error
    assert result.counts == {"completed": 3, "failed": 0, "repeated": 0}


def test_the_same_candidate_gives_the_same_reward_with_one_and_two_workers():
    data = DataSpec("digits", image_size=8, max_examples=64, batch_size=16)
    specs = [TrialSpec(i, SPACE, encoding, data, TrainSettings(epochs=1), 1, 8, 10)
             for i, encoding in enumerate([SPACE.default, (0,) * SPACE.num_layers])]
    outcomes = {}
    for arm, workers, recycle_after in (("one", 1, 20), ("two", 2, 20), ("fresh", 1, 1)):
        with LocalExecutor(workers, max_trials_per_worker=recycle_after) as executor:
            outcomes[arm] = run_specs(executor, specs)
            # A worker is replaced after its share of trials (what Keras leaks per model stays bounded).
            assert executor.recycled == (2 if arm == "fresh" else 0)
    for one, two, fresh in zip(outcomes["one"], outcomes["two"], outcomes["fresh"]):
        assert one.status == two.status == fresh.status == "completed", (one.error, two.error, fresh.error)
        assert (one.reward, one.metrics["val_loss"]) == (two.reward, two.metrics["val_loss"])
        assert (one.reward, one.metrics["val_loss"]) == (fresh.reward, fresh.metrics["val_loss"])


def test_live_datasets_are_refused_for_worker_processes(tmp_path):
    train, validation = tiny_data()
    with pytest.raises(ValueError, match="live tf.data datasets cannot be sent to worker processes"):
        api.search(SPACE, train, validation, api.Target("madds", 5e5), executor="local", input_size=8,
                   num_classes=2, search_dir=str(tmp_path))
    with pytest.raises(ValueError, match="compile_fn cannot be sent to worker processes"):
        api.search(SPACE, tiny_data, None, api.Target("madds", 5e5), executor="local", input_size=8, num_classes=2,
                   compile_fn=lambda model: model.compile("adam"), search_dir=str(tmp_path))


def test_a_trial_leaves_no_traced_graph_alive_in_its_process():
    # TensorFlow's gradient registry kept each trained model's train step (and so its whole traced
    # graph) alive for the life of the process: ~70 MB per trial. run_trial unregisters them.
    import gc

    from layernas_tf.runner import run_trial
    from train.trainer import custom_gradient_names

    def graphs():
        gc.collect()
        return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())

    data = DataSpec("digits", image_size=8, max_examples=64, batch_size=16)
    specs = [TrialSpec(i, SPACE, encoding, data, TrainSettings(epochs=1), 1, 8, 10)
             for i, encoding in enumerate([SPACE.default, (0,) * SPACE.num_layers, (1,) * SPACE.num_layers])]
    outcome = run_trial(specs[0])
    assert outcome.status == "completed", outcome.error
    names, after_one = custom_gradient_names(), graphs()
    for spec in specs[1:]:
        assert run_trial(spec).status == "completed"
    assert custom_gradient_names() == names
    assert graphs() == after_one


def test_a_trial_traces_its_train_step_once_and_trains_as_before(monkeypatch):
    # Keras creates the optimizer's and metrics' variables inside the first trace when no strategy is
    # set, and a tf.function whose first trace creates variables is traced again: two train graphs
    # per trial. Building that state first leaves one, and the same weights, data order and reward.
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    import train.trainer
    from layernas_tf.runner import run_trial

    traces = []
    train_step = TensorFlowTrainer.train_step

    def counted(self, data):
        traces.append(1)
        return train_step(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted)
    data = DataSpec("digits", image_size=8, max_examples=64, batch_size=16)
    spec = TrialSpec(0, SPACE, SPACE.default, data, TrainSettings(epochs=2), 2, 8, 10)
    built = run_trial(spec)
    assert built.status == "completed", built.error
    assert len(traces) == 1
    traces.clear()
    monkeypatch.setattr(train.trainer, "build_training_state", lambda model, dataset: False)
    lazy = run_trial(spec)
    assert len(traces) == 2
    assert (lazy.reward, lazy.metrics) == (built.reward, built.metrics)
