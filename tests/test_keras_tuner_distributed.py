"""Keras Tuner's chief/worker mode: one LayerNAS oracle in the chief serves two worker processes."""

import collections
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

TARGET_PARAMS = 3000
MAX_TRIALS = 8
WORKERS = ("worker0", "worker1")


def run_tuner(directory: str, log_path: str) -> None:
    """What each process runs: the same script, its role set by KERASTUNER_TUNER_ID."""
    import keras_tuner

    import layernas_tf
    from layernas_tf.keras_tuner import LayerNAS
    from test_keras_tuner import SCORE, _reward, build_cnn

    class SlowScoredCNN(keras_tuner.HyperModel):
        def build(self, hp):
            return build_cnn(hp)

        def fit(self, hp, model, *args, **kwargs):
            start = time.time()
            time.sleep(1.0)  # long enough for the other worker to ask meanwhile
            with open(log_path, "a") as log:
                log.write(json.dumps({"tuner": os.environ["KERASTUNER_TUNER_ID"], "values": hp.values,
                                      "start": start, "end": time.time()}) + "\n")
            return {"score": _reward(hp.values)}

    tuner = LayerNAS(SlowScoredCNN(), objective=SCORE, max_trials=MAX_TRIALS,
                     target=layernas_tf.Target("params", TARGET_PARAMS), seed=4, directory=directory,
                     project_name="distributed")
    tuner.search(verbose=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_chief_and_two_workers_train_every_trial_once_within_the_target(tmp_path):
    from test_keras_tuner import _params

    tests = pathlib.Path(__file__).parent
    log_path = tmp_path / "trained.jsonl"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERASTUNER_ORACLE_IP="127.0.0.1",
               KERASTUNER_ORACLE_PORT=str(_free_port()),
               PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests), os.environ.get("PYTHONPATH", "")]))
    code = f"import test_keras_tuner_distributed as t; t.run_tuner({str(tmp_path)!r}, {str(log_path)!r})"
    processes = {}
    for tuner_id in ("chief",) + WORKERS:
        processes[tuner_id] = subprocess.Popen([sys.executable, "-c", code], env=dict(env, KERASTUNER_TUNER_ID=tuner_id),
                                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if tuner_id == "chief":
            time.sleep(3)  # let the chief open its port first
    try:
        outputs = {k: p.communicate(timeout=420)[0] for k, p in processes.items()}
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.kill()
    for tuner_id, p in processes.items():
        assert p.returncode == 0, f"{tuner_id} failed:\n{outputs[tuner_id][-3000:]}"

    trained = [json.loads(line) for line in log_path.read_text().splitlines()]
    keys = [tuple(sorted(t["values"].items())) for t in trained]
    assert len(keys) == len(set(keys)), "a candidate was trained twice"
    assert {t["tuner"] for t in trained} == set(WORKERS)
    assert all(_params(t["values"]) <= TARGET_PARAMS for t in trained)

    state = json.loads((tmp_path / "distributed" / "oracle.json").read_text())
    handouts = state["layernas"]["handouts"]
    ran = [h for h in handouts if h["trial_id"] is not None]
    assert len(ran) == len(trained) and all(h["told_order"] is not None for h in handouts)
    # LayerNAS handed out more than one trial while results were pending: both workers were served.
    per_told = collections.Counter(h["told_before"] for h in ran)
    assert max(per_told.values()) >= 2
    overlapping = any(a["start"] < b["end"] and b["start"] < a["end"]
                      for a in trained for b in trained if a["tuner"] != b["tuner"])
    assert overlapping
