"""The Ray executor on a local Ray cluster that the tests start (2 CPUs, no dashboard) and stop:
a search through it, the driver killed mid-search and resumed, a worker killed during a trial."""

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO
from test_main import TINY, _main, _stored

ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """`ray start --head` on this machine, as a user would; `ray stop` afterwards."""
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    port = _free_port()
    started = subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                              "--disable-usage-stats"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)


RAY_TINY = [*TINY, "--executor=ray", "--max_trials=4"]


def test_a_search_runs_through_the_ray_executor(cluster, tmp_path):
    done = _main("--dataset=digits", f"--search_dir={tmp_path}", f"--ray_address={cluster}", *RAY_TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["trials"] == {"completed": 4, "failed": 0, "repeated": 0}
    assert results["executor"] == "ray" and results["trials_at_once"] == 2
    assert os.path.getsize(results["winner"]["tflite"]["int8"]) > 1000


def test_a_killed_driver_resumes_on_the_cluster(cluster, tmp_path):
    args = [sys.executable, "-m", "layernas_tf.main", "--dataset=digits", f"--search_dir={tmp_path}",
            f"--ray_address={cluster}", *RAY_TINY]
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    completed = []
    while time.time() < deadline and process.poll() is None:
        try:
            completed = [row for row in _stored(tmp_path) if row[2] == "completed"]
        except Exception:  # noqa: BLE001 - the store is still being created
            completed = []
        if completed:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = [row for row in _stored(tmp_path) if row[2] == "completed"]
    assert 1 <= len(before) < 4
    done = _main("--dataset=digits", f"--search_dir={tmp_path}", f"--ray_address={cluster}", *RAY_TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _stored(tmp_path)
    assert all(row in after for row in before)  # completed trials kept as they were, not trained again
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["trials"]["completed"] == 4 and results["resumed_trials"] >= len(before)


def test_a_killed_ray_worker_is_recorded_and_its_trial_retried(cluster, tmp_path):
    import parallel_helpers
    import searchspaces
    from layernas_tf import api
    from layernas_tf.executors import RayExecutor

    ray.cloudpickle.register_pickle_by_value(parallel_helpers)  # the cluster's workers cannot import tests/
    ray.init(address=cluster, logging_level="ERROR", log_to_driver=False)
    markers = tmp_path / "markers"
    markers.mkdir()
    killer = threading.Thread(target=lambda: os.kill(parallel_helpers.wait_for_pid(str(markers)), signal.SIGKILL),
                              daemon=True)
    killer.start()
    try:
        with RayExecutor(cluster, cpus_per_trial=1) as executor:
            result = api.search(searchspaces.get_space("cifar_mobilenet_v2"),
                                functools.partial(parallel_helpers.stall_once, str(markers)), None,
                                api.Target("madds", 5e5), max_trials=3, epochs=1, search_dir=str(tmp_path / "search"),
                                input_size=8, num_classes=2, executor=executor, trial_retries=1)
    finally:
        ray.shutdown()
    retried = [t for t in result.trials if t.attempts == 2]
    assert len(retried) == 1 and retried[0].status == "completed", [(t.status, t.error) for t in result.trials]
    assert "attempt 1: WorkerLost:" in retried[0].error
    assert result.counts == {"completed": 3, "failed": 0, "repeated": 0}
