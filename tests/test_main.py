"""The main job end to end on tiny runs: resume after SIGKILL, export checked with the interpreter,
an image folder and mock TFDS as data, and bad flags."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO

# A tiny run: 8x8 images, a few dozen examples per split, one epoch per candidate.
TINY = ["--image_size=8", "--max_examples=48", "--batch_size=16", "--proxy_epochs=1", "--final_epochs=1",
        "--max_trials=4", "--calibration_images=16", "--target_madds=5e5"]


def _main(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "layernas_tf.main", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def _stored(search_dir):
    db = sqlite3.connect(search_dir / "trials.sqlite")
    try:
        return db.execute("SELECT number, encoding, status, reward, finished_at FROM trials ORDER BY number").fetchall()
    finally:
        db.close()


def _completed(search_dir):
    return [row for row in _stored(search_dir) if row[2] == "completed"]


def _stored_count(search_dir):
    """Trials completed so far; 0 while the store is still being created by the running job."""
    try:
        return len(_completed(search_dir)) if (search_dir / "trials.sqlite").exists() else 0
    except sqlite3.OperationalError:  # the file exists but its tables are not created yet
        return 0


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Three classes of 24 PNG images each: a bright square at a class-specific corner on noise."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for label, name in enumerate(("alpha", "beta", "gamma")):
        (root / name).mkdir()
        for i in range(24):
            image = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8)
            y, x = [(0, 0), (0, 6), (6, 0)][label]
            image[y:y + 6, x:x + 6] = 250
            (root / name / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    return root


@pytest.fixture(scope="module")
def finished_run(image_folder, tmp_path_factory):
    search_dir = tmp_path_factory.mktemp("run") / "search"
    done = _main(f"--dataset=folder:{image_folder}", f"--search_dir={search_dir}", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    return search_dir, done


def test_run_writes_results_plots_exports_and_logs(finished_run):
    search_dir, done = finished_run
    results = json.loads((search_dir / "results.json").read_text())
    assert results["trials"] == {"completed": 4, "failed": 0, "repeated": 0}
    winner = results["winner"]
    assert winner["madds"] <= 5e5 and set(winner["accuracy"]) == {"keras", "tflite_float", "tflite_int8"}
    assert set(winner["latency_ms"]) == {"float", "int8"} and all(v > 0 for v in winner["latency_ms"].values())
    for path in winner["tflite"].values():
        assert os.path.getsize(path) > 1000
    assert (search_dir / "export" / "winner" / "winner_saved_model" / "saved_model.pb").exists()
    assert (search_dir / "export" / "winner" / "labels.txt").read_text() == "alpha\nbeta\ngamma\n"
    assert winner["record"] == str(search_dir / "export" / "winner" / "winner.json")
    for plot in ("pareto.png", "search.png"):
        assert (search_dir / plot).stat().st_size > 5000
    assert list((search_dir / "tensorboard" / "search").glob("events.out.tfevents.*"))
    assert len(list((search_dir / "tensorboard" / "trials").glob("trial_*"))) == 4
    assert f"winner {winner['encoding']}" in done.stdout and "int8 ms" in done.stdout
    assert f'model_asset_path="{winner["tflite"]["int8"]}"' in done.stdout  # how to load it
    phases = results["phases"]  # LayerNAS's sweep and refinement, split at the sweep's last hand-out
    assert phases["sweep"]["trials"] + phases["refine"]["trials"] == 4 and phases["sweep"]["trials"] >= 1
    assert f"sweep: {phases['sweep']['trials']} trials in" in done.stdout


def test_the_record_says_what_was_exported_beside_the_default_architecture(finished_run):
    import searchspaces
    from layernas_tf.costs import candidate_costs

    search_dir, _ = finished_run
    results = json.loads((search_dir / "results.json").read_text())
    record = json.loads((search_dir / "export" / "winner" / "winner.json").read_text())
    winner = results["winner"]
    assert (record["encoding"], record["madds"], record["params"]) == (winner["encoding"], winner["madds"],
                                                                       winner["params"])
    assert record["test_accuracy"] == winner["accuracy"] and record["latency_ms"] == winner["latency_ms"]
    assert record["latency_threads"] == 1 and record["labels"] == ["alpha", "beta", "gamma"]
    assert record["input"] == {"float": {"shape": [1, 8, 8, 3], "dtype": "float32", "value_range": [0.0, 255.0]},
                               "int8": {"shape": [1, 8, 8, 3], "dtype": "uint8", "value_range": [0.0, 255.0]}}
    assert len(record["blocks"]) == 7 and record["blocks"][0].startswith("block_0:")
    assert record["metadata"] is True and record["command"].startswith("python -m layernas_tf.main --dataset=folder:")
    space = searchspaces.get_space("cifar_mobilenet_v2")
    default = record["default_architecture"]
    costs = candidate_costs(space, space.default, 8, 3)
    assert (default["encoding"], default["madds"], default["params"]) == ("0-1-1-5-5-5-5", costs.madds, costs.params)
    stored = {row[1]: row[3] for row in _completed(search_dir)}
    if default["encoding"] in stored:  # the search trained it: its stored proxy accuracy
        assert default["source"] == "stored trial of the search"
        assert default["proxy_val_accuracy"] == pytest.approx(stored[default["encoding"]])
    else:  # trained by the export with the search's proxy settings, and not stored
        assert default["source"] == "trained with the search's proxy training"
        assert 0 <= default["proxy_val_accuracy"] <= 1


def test_exported_int8_model_scores_what_the_report_says(finished_run, image_folder):
    from layernas_tf.latency.timing import predict
    from train.data import load_dataset

    search_dir, _ = finished_run
    winner = json.loads((search_dir / "results.json").read_text())["winner"]
    data = load_dataset(f"folder:{image_folder}", image_size=8, seed=0, max_examples=48)
    images, labels = data.numpy_images("test", data.sizes["test"], raw=True)  # pixels, as an app passes them
    with open(winner["tflite"]["int8"], "rb") as f:
        scores = predict(f.read(), images)
    assert scores.shape == (len(labels), 3)
    assert np.mean(scores.argmax(-1) == labels) == pytest.approx(winner["accuracy"]["tflite_int8"])


def test_search_resumes_after_sigkill_without_retraining(finished_run, image_folder, tmp_path):
    search_dir = tmp_path / "search"
    args = [sys.executable, "-m", "layernas_tf.main", f"--dataset=folder:{image_folder}", f"--search_dir={search_dir}",
            *TINY]
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while time.time() < deadline and process.poll() is None:
        if _stored_count(search_dir) >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = _completed(search_dir)
    assert 2 <= len(before) < 4
    done = _main(f"--dataset=folder:{image_folder}", f"--search_dir={search_dir}", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _stored(search_dir)
    assert all(row in after for row in before), (before, after)  # completed trials were not trained again
    results = json.loads((search_dir / "results.json").read_text())
    assert results["resumed_trials"] >= len(before)
    # The same search as the uninterrupted run: the same candidates and the same winner.
    reference_dir, _ = finished_run
    assert sorted(row[1] for row in after) == sorted(row[1] for row in _stored(reference_dir))
    assert results["winner"]["encoding"] == json.loads((reference_dir / "results.json").read_text())["winner"]["encoding"]


def test_rerun_with_other_flags_is_refused_naming_the_difference(finished_run, image_folder):
    search_dir, _ = finished_run
    done = _main(f"--dataset=folder:{image_folder}", f"--search_dir={search_dir}", *TINY, "--proxy_epochs=2")
    assert done.returncode == 1
    assert "ERROR: " in done.stderr and "epochs: recorded 1, requested 2" in done.stderr
    assert "Traceback" not in done.stderr  # a user error, not a crash


def test_unknown_search_space_is_refused():
    done = _main("--search_space=resnet50")
    assert done.returncode != 0
    assert "--search_space" in done.stderr and "cifar_mobilenet_v2" in done.stderr


def test_target_below_the_smallest_model_states_the_smallest_cost(tmp_path):
    done = _main("--target_madds=1000", "--image_size=8", "--max_examples=20", f"--search_dir={tmp_path}")
    assert done.returncode != 0
    assert "--target_madds: cost target <= 1000 is impossible: the smallest achievable cost is" in done.stderr
    assert not (tmp_path / "trials.sqlite").exists()


def test_two_targets_are_refused():
    done = _main("--target_madds=5e6", "--target_params=1e5")
    assert done.returncode != 0 and "give at most one of --target_madds" in done.stderr


def test_mock_tfds_dataset_runs_the_main_job(tmp_path):
    import tensorflow_datasets as tfds
    from absl import flags

    from layernas_tf import main as job

    # Proxy training on a class-balanced subset, cached on disk: the split exceeds the memory budget.
    argv = ["layernas", "--dataset=mnist", f"--data_dir={tmp_path / 'tfds'}", f"--search_dir={tmp_path / 'search'}",
            *TINY, "--max_trials=2", "--proxy_examples=20", "--cache_memory_mb=0.001", "--executor=in_process",
            f"--cache_dir={tmp_path / 'cache'}"]
    flags.FLAGS(argv)
    try:
        with tfds.testing.mock_data(num_examples=60):
            job.main(["layernas"])
    finally:
        flags.FLAGS.unparse_flags()
    results = json.loads((tmp_path / "search" / "results.json").read_text())
    assert results["dataset"] == "mnist" and results["trials"] == {"completed": 2, "failed": 0, "repeated": 0}
    cached = [p.name for p in (tmp_path / "cache").glob("layernas_cache_*/*.index")]
    assert any("_train_8_20_" in name for name in cached) and any("_train_8_48_all" in name for name in cached)
    assert os.path.getsize(results["winner"]["tflite"]["int8"]) > 1000


@pytest.mark.parametrize("argv, message", [
    (["--layernas_settings=fill=middle"],
     "--layernas_settings: layernas fill='middle' is not allowed; choose one of cheapest, default"),
    (["--layernas_settings=per_bucket=two"], "--layernas_settings: layernas setting per_bucket='two': expected int"),
    (["--target_madds=0"], "--target_madds must be > 0"),
    (["--target_params=-5"], "flag --target_params=-5: -5.0 is not a non-negative number"),
    (["--target_madds=5e6", "--target_madds_min=6e6"], "--target_madds_min must not exceed --target_madds"),
    (["--learning_rate=0"], "--learning_rate must be > 0"),
    (["--image_size=4"], r"--image_size must be 0 \(the search space's input size\) or at least 8"),
    (["--dataset=folder:/no/such/dir"], "--dataset=folder:/no/such/dir: folder '/no/such/dir' does not exist"),
    (["--searcher=random", "--layernas_settings=per_bucket=2"],
     "--layernas_settings applies to --searcher=layernas only, not --searcher=random"),
    (["--searcher=grid"], r"flag --searcher=grid: value should be one of <layernas\|random\|evolution\|ppo"),
    (["--cache=ssd"], r"flag --cache=ssd: value should be one of <auto\|memory\|disk\|none>"),
    (["--max_consecutive_failures=0"], "flag --max_consecutive_failures=0: 0 is not a positive integer"),
])
def test_bad_flags_are_refused_when_parsed_naming_the_flag(argv, message):
    from absl import flags
    from absl.testing import flagsaver

    from layernas_tf import main as job  # noqa: F401 - defines the flags

    with flagsaver.flagsaver():
        with pytest.raises(flags.IllegalFlagValueError, match=message):
            flags.FLAGS(["layernas", *argv])
    flags.FLAGS.unparse_flags()


def test_a_bad_flag_stops_the_job_before_any_work(tmp_path):
    started = time.perf_counter()
    done = _main("--layernas_settings=fill=middle", f"--search_dir={tmp_path / 'search'}")
    assert done.returncode != 0
    assert "--layernas_settings: layernas fill='middle' is not allowed" in done.stderr
    assert not (tmp_path / "search").exists()
    assert time.perf_counter() - started < 60  # no data loaded, nothing trained


def _latency_csv(path, scale=1.0):
    """A device table for cifar_mobilenet_v2 at 8x8, 10 classes, as a user brings it back: key,ms rows for
    every part and for the kit's calibration models (whole model = 0.05 ms + the sum of its parts)."""
    import searchspaces
    from layernas_tf.latency.kit import calibration_encodings
    from layernas_tf.latency.block_table import architecture_parts, model_key, space_parts

    space = searchspaces.get_space("cifar_mobilenet_v2")
    entries = {k: scale * (0.002 + 1e-6 * p.input_size ** 2 * max(p.out_filters, 1))
               for k, p in space_parts(space, 8, 10).items()}
    rows = dict(entries)
    for encoding in calibration_encodings(space, 8, 10):
        parts = sum(entries[p.key] for p in architecture_parts(space.resolve(encoding, 8, 10)))
        rows[model_key(space, 8, 10, encoding)] = 0.05 + parts
    path.write_text("key,ms\n" + "".join(f"{k},{v!r}\n" for k, v in rows.items()))
    default_parts = sum(entries[p.key] for p in architecture_parts(space.resolve(space.default, 8, 10)))
    return 0.05 + default_parts


def test_a_latency_search_stores_its_table_and_refuses_another_on_resume(tmp_path):
    target_ms = _latency_csv(tmp_path / "phone.csv")
    _latency_csv(tmp_path / "other_phone.csv", scale=0.9)  # a faster phone: the target stays feasible
    search_dir = tmp_path / "search"
    flags_ = [f"--search_dir={search_dir}", "--image_size=8", "--max_examples=48", "--batch_size=16",
              "--proxy_epochs=1", "--final_epochs=1", "--max_trials=3", "--calibration_images=16",
              "--executor=in_process", f"--target_latency_ms={target_ms}"]
    done = _main(*flags_, f"--latency_table={tmp_path / 'phone.csv'}")
    assert done.returncode == 0, done.stderr[-3000:]
    stored = json.loads((search_dir / "latency_predictor.json").read_text())
    db = sqlite3.connect(search_dir / "trials.sqlite")
    config = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM config")}
    db.close()
    from layernas_tf.latency.block_table import LatencyTable

    fingerprint = LatencyTable(**{k: stored["table"][k] for k in ("quantization", "num_threads", "device",
                                                                   "entries_ms", "calibration")}).fingerprint()
    assert config["latency_fingerprint"] == fingerprint and config["latency_predictor"] == "table"
    results = json.loads((search_dir / "results.json").read_text())
    assert results["latency_model"]["fingerprint"] == fingerprint
    assert results["winner"]["cost"] <= target_ms
    before = _completed(search_dir)

    resumed = _main(*flags_)  # no --latency_table: the stored table, not this machine's
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _completed(search_dir) == before
    assert "the table predictor stored in" in resumed.stderr

    refused = _main(*flags_, f"--latency_table={tmp_path / 'other_phone.csv'}")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"latency_fingerprint: recorded '{fingerprint}', requested '" in refused.stderr
    assert _completed(search_dir) == before


@pytest.mark.parametrize("argv, message", [
    (["--latency_table=/no/such/table.csv"], "--latency_table=/no/such/table.csv: no such file or directory"),
    (["--latency_command=adb shell benchmark_model"], r"--latency_command='adb shell benchmark_model' must contain "
                                                      r"\{tflite\}"),
    (["--latency_predictor=linear", "--latency_command=run {tflite}"],
     "--latency_table and --latency_command need --latency_predictor=table"),
])
def test_bad_latency_flags_are_refused_when_parsed(argv, message):
    test_bad_flags_are_refused_when_parsed_naming_the_flag(argv, message)


def _export(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "layernas_tf.export_main", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_export_command_takes_the_best_stored_candidate_within_a_new_target(finished_run):
    from layernas_tf.api import stored_search
    from layernas_tf.finalize import choose
    import searchspaces

    search_dir, _ = finished_run
    before = _stored(search_dir)
    result = stored_search(str(search_dir), searchspaces.get_space("cifar_mobilenet_v2"))
    completed = [t for t in result.trials if t.status == "completed"]
    target = sorted(t.params for t in completed)[1]  # excludes the cheapest trial by params
    expected = max((t for t in completed if t.params <= target), key=lambda t: (result.score(t), t.reward, -t.number))
    assert choose(result, "params", target) == expected
    done = _export(f"--search_dir={search_dir}", f"--target_params={target}", "--final_epochs=1",
                   "--calibration_images=16")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = search_dir / "export" / expected.encoding
    record = json.loads((folder / f"{expected.encoding}.json").read_text())
    assert record["encoding"] == expected.encoding and record["params"] <= target
    assert record["chosen_by"] == f"--target_params={target:g}" and record["labels"] == ["alpha", "beta", "gamma"]
    assert record["proxy_val_accuracy"] == pytest.approx(expected.reward)
    assert record["command"] == (f"python -m layernas_tf.export_main --search_dir={search_dir} "
                                 f"--target_params={target} --final_epochs=1 --calibration_images=16")
    assert {p.name for p in folder.iterdir()} >= {f"{expected.encoding}_float.tflite", f"{expected.encoding}_int8.tflite",
                                                  "labels.txt"}
    assert "int8 ms" in done.stdout and str(folder) in done.stdout
    assert _stored(search_dir) == before  # the stored trials are never changed


def test_export_command_refuses_a_target_no_stored_candidate_meets(finished_run):
    search_dir, _ = finished_run
    cheapest = min(row[0] for row in sqlite3.connect(search_dir / "trials.sqlite").execute(
        "SELECT madds FROM trials WHERE status = 'completed'"))
    done = _export(f"--search_dir={search_dir}", "--target_madds=1000")
    assert done.returncode != 0
    assert (f"--target_madds=1000: no stored candidate has madds <= 1,000: the cheapest stored candidate costs "
            f"{cheapest:,}") in done.stderr


def test_export_command_refuses_an_encoding_that_does_not_parse(finished_run):
    search_dir, _ = finished_run
    done = _export(f"--search_dir={search_dir}", "--encoding=1-2-x")
    assert done.returncode != 0 and "--encoding=1-2-x:" in done.stderr
    done = _export(f"--search_dir={search_dir}", "--encoding=1-2-3")
    assert done.returncode != 0
    assert "--encoding=1-2-3: encoding for search space 'cifar_mobilenet_v2' must have 7 layers, got 3" in done.stderr


def test_export_command_refuses_a_directory_without_a_search(tmp_path):
    done = _export(f"--search_dir={tmp_path}")
    assert done.returncode != 0 and f"--search_dir={tmp_path} holds no search (no trials.sqlite)" in done.stderr


def test_an_export_folder_of_other_files_is_never_overwritten(finished_run, tmp_path):
    import dataclasses

    import searchspaces
    from layernas_tf.finalize import SearchSetup, export_dir
    from train.spec import DataSpec, TrainSettings

    setup = SearchSetup(searchspaces.get_space("cifar_mobilenet_v2"), DataSpec(), TrainSettings(), 8, 3, 0.9, 0,
                        str(tmp_path), {"space": "cifar_mobilenet_v2"}, "madds <= 5e5")
    identity = {"search": setup.fingerprint, "encoding": "0-0-0-0-0-0-0"}
    assert export_dir(setup, "winner", identity) == tmp_path / "export" / "winner"  # nothing there yet
    (tmp_path / "export" / "winner").mkdir(parents=True)
    (tmp_path / "export" / "winner" / "winner_int8.tflite").write_bytes(b"another search's model")
    assert export_dir(setup, "winner", identity) == tmp_path / "export" / "winner_2"
    (tmp_path / "export" / "winner" / "winner.json").write_text(json.dumps({"identity": identity}))
    assert export_dir(setup, "winner", identity) == tmp_path / "export" / "winner"  # its own earlier export
    other = dataclasses.replace(setup, config={"space": "cifar_mobilenet_v2", "seed": 1})
    assert export_dir(other, "winner", {**identity, "search": other.fingerprint}) == tmp_path / "export" / "winner_2"
