"""Per-block latency tables: keys, predictions, the benchmark_model log parser, kits timed locally and
through a command, and tables read from CSV, JSON and logs."""

import json
import random
import sys

import numpy as np
import pytest

import searchspaces
from conftest import REPO
from layernas_tf.latency.kit import CALIBRATION_MODELS
from layernas_tf.latency.block_table import (
    LatencyTable,
    LatencyTableError,
    Part,
    TableLatency,
    architecture_parts,
    fit_calibration,
    kit_file_name,
    load_table,
    model_id,
    model_key,
    parse_benchmark_log,
    space_parts,
    table_from_measurements,
)

# Verbatim benchmark_model output (desktop build), as printed for a MobileNet.
BENCHMARK_MODEL_LOG = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/kit/int8~block-i56-c24-x72-o40-k5-s2-q24-arelu.tflite]
INFO: #threads used for CPU inference: [4]
INFO: Loaded model /data/local/tmp/kit/int8~block-i56-c24-x72-o40-k5-s2-q24-arelu.tflite
INFO: The input model file size (MB): 0.0217
INFO: Initialized session in 3.041ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=3519 first=301 curr=133 min=126 max=1210 avg=141.3 std=30

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=7032 first=140 curr=139 min=126 max=560 avg=139.8 std=12

INFO: Inference timings in us: Init: 3041, First inference: 301, Warmup (avg): 141.3, Inference (avg): 139.8
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your one's own risk.
INFO: Memory footprint delta from the start of the tool (MB): init=2.83984 overall=10.4531
"""

# The same summary as the Android benchmark app writes it to logcat, with an exponent-form value.
LOGCAT_LOG = """\
12-01 10:00:00.101  8123  8123 I tflite  : Graph: [/sdcard/kit/int8~head-i7-c160-o960-p1280-n1000-ahard_swish.tflite]
12-01 10:00:02.412  8123  8123 I tflite  : count=50 first=1300000 curr=1190000 min=1180000 max=1300000 avg=1.2e+06 std=1000
12-01 10:00:02.413  8123  8123 I tflite  : Inference timings in us: Init: 5685, First inference: 1300000, Warmup (avg): 1.21e+06, Inference (avg): 1.2e+06
"""


def test_parser_reads_the_average_of_each_benchmark_model_run():
    runs = parse_benchmark_log(BENCHMARK_MODEL_LOG + "\n" + LOGCAT_LOG)
    assert runs == [("/data/local/tmp/kit/int8~block-i56-c24-x72-o40-k5-s2-q24-arelu.tflite", pytest.approx(0.1398)),
                    ("/sdcard/kit/int8~head-i7-c160-o960-p1280-n1000-ahard_swish.tflite", pytest.approx(1200.0))]


def test_parser_ignores_output_without_a_summary_line():
    assert parse_benchmark_log("INFO: STARTING!\nERROR: Could not open 'x.tflite'.\n") == []


@pytest.mark.parametrize("name", searchspaces.SPACE_NAMES)
def test_every_part_key_round_trips_and_covers_random_candidates(name):
    space = searchspaces.get_space(name)
    parts = space_parts(space, space.input_size, space.num_classes)
    assert all(Part.from_key(key) == part and part.key == key for key, part in parts.items())
    rng = random.Random(0)
    for _ in range(200):
        arch = space.resolve(space.random(rng))
        assert {p.key for p in architecture_parts(arch)} <= set(parts)


def test_mobilenet_spaces_have_a_few_hundred_distinct_parts():
    counts = {n: len(space_parts(searchspaces.get_space(n), 224, 1000))
              for n in ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")}
    assert counts == {"mobilenet_v2": 352, "mobilenet_v3_large": 356, "mobilenet_v3_small": 224}


def test_a_block_key_names_what_fixes_its_cost():
    space = searchspaces.get_space("mobilenet_v3_large")
    keys = [p.key for p in architecture_parts(space.resolve(space.default))]
    assert keys[0] == "stem-i224-c3-o16-k3-s2-ahard_swish"
    assert keys[4] == "block-i56-c24-x72-o40-k5-s2-q24-arelu"  # block_3: 40 filters, k5, stride 2, SE
    assert keys[-1] == "head-i7-c160-o960-p1280-n1000-ahard_swish"


def _synthetic_table(space, input_size, num_classes, noise=0.0):
    """Entries proportional to a part's key length, whole models = 0.2 + 1.1 x parts."""
    parts = space_parts(space, input_size, num_classes)
    entries = {key: 0.01 * len(key) + 0.001 * part.out_filters for key, part in parts.items()}
    table = LatencyTable("int8", 1, "synthetic", entries)
    rng = random.Random(1)
    measured = dict(entries)
    for _ in range(6):
        encoding = space.random(rng)
        total = sum(entries[p.key] for p in architecture_parts(space.resolve(encoding)))
        measured[model_key(space, input_size, num_classes, encoding)] = 0.2 + 1.1 * total + noise
    return table_from_measurements(measured, "int8", 1, "synthetic",
                                   {model_id(space, input_size, num_classes): (space, input_size, num_classes)})


def test_a_candidate_is_the_calibrated_sum_of_its_parts():
    space = searchspaces.get_space("mobilenet_v3_small")
    table = _synthetic_table(space, 224, 1000)
    calibration = table.calibration["mobilenet_v3_small@224x1000"]
    assert calibration["intercept_ms"] == pytest.approx(0.2) and calibration["scale"] == pytest.approx(1.1)
    predict = TableLatency(table, space, 224, 1000)
    rng = random.Random(5)
    for _ in range(50):
        encoding = space.random(rng)
        parts = sum(table.entries_ms[p.key] for p in architecture_parts(space.resolve(encoding)))
        assert predict(encoding) == pytest.approx(0.2 + 1.1 * parts, rel=1e-12)


def test_a_table_without_some_parts_is_refused_naming_them():
    space = searchspaces.get_space("mobilenet_v3_small")
    table = _synthetic_table(space, 224, 1000)
    dropped = sorted(table.entries_ms)[:3]
    for key in dropped:
        del table.entries_ms[key]
    with pytest.raises(LatencyTableError, match=f"lacks 3 part\\(s\\) of mobilenet_v3_small@224x1000 \\(int8\\), "
                                                f"e.g. {dropped[0]}"):
        TableLatency(table, space, 224, 1000, source="--latency_table=x.csv")


def test_a_table_without_calibration_for_the_space_is_refused():
    space = searchspaces.get_space("cifar_mobilenet_v2")
    table = _synthetic_table(space, 32, 10)
    table.calibration = {}
    with pytest.raises(LatencyTableError, match="no whole-model calibration for cifar_mobilenet_v2@32x10"):
        TableLatency(table, space, 32, 10)


def test_calibration_reports_its_leave_one_out_error():
    exact = fit_calibration([("a", 1.2, 1.0), ("b", 2.3, 2.0), ("c", 3.4, 3.0)])
    assert exact["mean_abs_error_pct"] == pytest.approx(0.0, abs=1e-9)
    off = fit_calibration([("a", 1.0, 1.0), ("b", 2.4, 2.0), ("c", 3.0, 3.0)])
    assert off["mean_abs_error_pct"] > 5


def test_calibration_fits_relative_errors():
    samples = [("a", 0.5, 0.4), ("b", 1.1, 1.0), ("c", 3.5, 3.0), ("d", 5.0, 4.5)]
    fit = fit_calibration(samples)
    measured = np.array([s[1] for s in samples])
    design = np.c_[np.ones(4), [s[2] for s in samples]] / measured[:, None]
    intercept, scale = np.linalg.lstsq(design, np.ones(4), rcond=None)[0]
    assert (fit["intercept_ms"], fit["scale"]) == (pytest.approx(intercept), pytest.approx(scale))
    plain_scale = np.polyfit([s[2] for s in samples], measured, 1)[0]
    assert abs(fit["scale"] - plain_scale) > 0.01  # weighting changes the answer on these samples


def test_the_fingerprint_changes_with_any_entry():
    space = searchspaces.get_space("cifar_mobilenet_v2")
    table = _synthetic_table(space, 32, 10)
    other = _synthetic_table(space, 32, 10)
    assert table.fingerprint() == other.fingerprint()
    other.entries_ms[sorted(other.entries_ms)[0]] += 1e-6
    assert table.fingerprint() != other.fingerprint()


def _write_forms(tmp_path, table, space, size, classes):
    """The same measurements as a CSV, a flat JSON and a directory of benchmark_model logs."""
    ident = model_id(space, size, classes)
    measured = dict(table.entries_ms)
    for encoding, ms, _ in table.calibration[ident]["samples"]:
        measured[model_key(space, size, classes, space.parse(encoding))] = ms
    (tmp_path / "table.csv").write_text("key,ms\n" + "".join(f"{k},{v!r}\n" for k, v in measured.items()))
    (tmp_path / "flat.json").write_text(json.dumps(measured))
    logs = tmp_path / "logs"
    logs.mkdir()
    for i, (key, ms) in enumerate(measured.items()):
        (logs / f"{i}.log").write_text(f"INFO: Graph: [/data/local/tmp/kit/{kit_file_name('int8', key)}]\n"
                                       f"INFO: Inference timings in us: Init: 1, First inference: 2, "
                                       f"Warmup (avg): 3, Inference (avg): {ms * 1000!r}\n")
    return ident


def test_csv_json_and_logs_give_the_same_table(tmp_path):
    space = searchspaces.get_space("cifar_mobilenet_v2")
    table = _synthetic_table(space, 32, 10)
    ident = _write_forms(tmp_path, table, space, 32, 10)
    spaces = {ident: (space, 32, 10)}
    table.save(str(tmp_path / "ours.json"))
    loaded = [load_table(str(tmp_path / name), "int8", 1, spaces) for name in ("table.csv", "flat.json", "logs",
                                                                               "ours.json")]
    for other in loaded:
        assert other.entries_ms == pytest.approx(table.entries_ms, rel=1e-9)
        assert other.calibration[ident]["scale"] == pytest.approx(table.calibration[ident]["scale"])
    with pytest.raises(LatencyTableError, match="the logs time int8 models, but the latency target is float"):
        load_table(str(tmp_path / "logs"), "float", 1, spaces)


def test_malformed_tables_are_refused_naming_the_entry(tmp_path):
    (tmp_path / "bad.csv").write_text("block-i8-c16-o16,fast\n")
    with pytest.raises(LatencyTableError, match="entry 'block-i8-c16-o16' = 'fast' is not a number"):
        load_table(str(tmp_path / "bad.csv"), "int8", 1, {})
    with pytest.raises(LatencyTableError, match="does not exist"):
        load_table(str(tmp_path / "none.csv"), "int8", 1, {})


# ---------------------------------------------------------------------------------------------
# Kits (TensorFlow conversion, LiteRT timing): a small space at 8x8 keeps them to a few dozen files.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    from layernas_tf.latency.kit import write_kit

    space = searchspaces.get_space("nas_bench_macro")
    out = tmp_path_factory.mktemp("kit")
    manifest = write_kit(str(out), "int8", [(space, 8, 10)], workers=1)
    return space, out, manifest


def test_a_kit_holds_every_part_and_its_calibration_models(kit):
    space, out, manifest = kit
    parts = space_parts(space, 8, 10)
    files = {p.name for p in out.glob("*.tflite")}
    assert {kit_file_name("int8", k) for k in parts} <= files
    assert len(manifest["spaces"]["nas_bench_macro@8x10"]["models"]) == CALIBRATION_MODELS == 16
    assert manifest["files"] == sorted(files) and len(files) == len(parts) + CALIBRATION_MODELS
    assert json.loads((out / "manifest.json").read_text())["quantization"] == "int8"


@pytest.fixture(scope="module")
def local_table(kit):
    from layernas_tf.latency.kit import build_table

    space, out, _ = kit
    table = build_table([(space, 8, 10)], "int8", 1, str(out), workers=1, passes=3)
    table.save(str(out / "table.json"))
    return table


def test_a_kit_timed_locally_predicts_its_own_calibration_models(kit, local_table):
    space, _, _ = kit
    assert local_table.build["converted"] == 0  # the kit's files were reused
    assert local_table.build["timed"] == len(space_parts(space, 8, 10)) + CALIBRATION_MODELS
    predict = TableLatency(local_table, space, 8, 10)
    samples = local_table.calibration["nas_bench_macro@8x10"]["samples"]
    assert len(samples) == CALIBRATION_MODELS
    for encoding, measured, parts in samples:
        assert measured > 0 and parts > 0
        assert predict(space.parse(encoding)) == pytest.approx(
            local_table.calibration["nas_bench_macro@8x10"]["intercept_ms"]
            + local_table.calibration["nas_bench_macro@8x10"]["scale"] * parts)


def test_the_profiler_prints_predicted_and_measured_latency(kit, local_table):
    import subprocess

    _, out, _ = kit
    done = subprocess.run([sys.executable, "-m", "layernas_tf.latency.cli", "--search_space=nas_bench_macro",
                           "--input_size=8", "--num_classes=10", "--arch=11111111", "--latency", "--quantize=int8",
                           f"--latency_table={out / 'table.json'}", "--runs=10"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report["predicted_latency_ms"]) == {"int8"}  # the table's format
    assert report["predicted_latency_ms"]["int8"] > 0 and report["latency_ms"]["int8"] > 0
    assert "int8: measured" in done.stdout and "predicted" in done.stdout


def test_the_command_path_runs_benchmark_model_style_output_through_the_parser(kit):
    from layernas_tf.latency.kit import time_with_command

    space, out, _ = kit
    files = sorted(str(p) for p in out.glob("int8~block-*.tflite"))[:2]
    command = f"{sys.executable} -m layernas_tf.latency.benchmark_model --graph={{tflite}} --num_runs=20"
    timed = time_with_command(files, f"cd {REPO} && {command}", str(out))
    assert set(timed) == set(files)
    assert all(0 < ms < 100 for ms in timed.values())


def test_a_failing_command_is_refused_naming_the_file(kit):
    from layernas_tf.latency.kit import time_with_command

    _, out, _ = kit
    first = sorted(str(p) for p in out.glob("int8~block-*.tflite"))[0]
    with pytest.raises(LatencyTableError, match=r"--latency_command for int8~block-.*exit code 3"):
        time_with_command([first], "echo no timings here; exit 3", str(out))
