"""Phone-ready export: raw-pixel inputs, TFLite Model Metadata written by MediaPipe's writer, labels."""

import subprocess
import sys

import flatbuffers
import numpy as np
import pytest

from export import deploy, metadata, tflite
from layernas_tf.latency.timing import make_interpreter, measure_latency, predict
from searchspaces import get_space
from searchspaces.builder import build


def _model(size=16, classes=10):
    space = get_space("cifar_mobilenet_v2")
    return build(space, (0,) * space.num_layers, (size, size, 3), classes)


def test_float_model_takes_raw_pixels_and_scales_them_inside():
    model = _model()
    pixels = np.random.default_rng(0).integers(0, 241, (8, 16, 16, 3)).astype(np.uint8)
    expected = model.predict(pixels.astype(np.float32) * (2 / 240) - 1, verbose=0)
    flatbuffer = tflite.convert(model, "float", pixel_max=240.0)
    detail = make_interpreter(flatbuffer).get_input_details()[0]
    assert detail["dtype"] == np.float32 and list(detail["shape"]) == [1, 16, 16, 3]
    np.testing.assert_allclose(predict(flatbuffer, pixels), expected, atol=1e-4)


def test_int8_model_takes_uint8_pixels_as_they_are_and_stays_integer_inside():
    model = _model()
    pixels = np.random.default_rng(1).integers(0, 256, (16, 16, 16, 3)).astype(np.uint8)
    flatbuffer = tflite.convert(model, "int8", pixels[:8], pixel_max=255.0)
    interpreter = make_interpreter(flatbuffer)
    detail = interpreter.get_input_details()[0]
    assert detail["dtype"] == np.uint8 and detail["quantization"] == (1.0, 0)
    assert interpreter.get_output_details()[0]["dtype"] == np.uint8
    float_tensors = [t["name"] for t in interpreter.get_tensor_details()
                     if t["dtype"] == np.float32 and t["index"] != detail["index"]]
    assert float_tensors == []  # nothing runs in float inside
    expected = model.predict(pixels.astype(np.float32) * (2 / 255) - 1, verbose=0)
    assert np.abs(predict(flatbuffer, pixels) - expected).max() < 0.1
    assert measure_latency(flatbuffer, runs=3, warmup=1).median_ms > 0


def test_metadata_holds_the_general_info_normalization_and_packed_labels():
    flatbuffer = tflite.convert(_model(classes=3), "float", pixel_max=255.0)
    written = metadata.with_metadata(flatbuffer, ["cat", "dog", "bird"], "winner (float)", "0.1.0",
                                     "space: cifar_mobilenet_v2; MAdds: 1,000")
    read = metadata.read_metadata(written)
    assert read["files"] == {"labels.txt": "cat\ndog\nbird"}
    info = read["metadata"]
    assert (info["name"], info["version"], info["description"]) == (
        "winner (float)", "0.1.0", "space: cifar_mobilenet_v2; MAdds: 1,000")
    assert info["min_parser_version"] == "1.0.0"
    image = info["subgraph_metadata"][0]["input_tensor_metadata"][0]
    normalization = image["process_units"][0]["options"]
    assert (normalization["mean"], normalization["std"]) == ([0.0], [1.0])
    # The graph is unchanged: the same scores with and without metadata.
    pixels = np.random.default_rng(2).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(predict(written, pixels), predict(flatbuffer, pixels))


def test_upstream_metadata_module_still_lacks_its_parser_version_binding():
    """The workaround in export.metadata exists because this import fails; when a MediaPipe release ships
    the binding again, this test fails: drop the workaround and raise the pin."""
    code = "import mediapipe.tasks.python.metadata.metadata"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "No module named 'mediapipe.tasks.cc'" in done.stderr
    assert metadata.binding_missing()


def test_the_workaround_leaves_no_module_behind():
    metadata._import_writer()
    assert not [name for name in sys.modules if name.startswith("mediapipe.tasks.cc")]


def _metadata_buffer(**files):
    """A ModelMetadata flatbuffer with one associated file of each given type (name -> (type, version))."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    model = fb.ModelMetadataT()
    model.associatedFiles = []
    for name, (kind, version) in files.items():
        entry = fb.AssociatedFileT()
        entry.name, entry.type, entry.version = name, kind, version
        model.associatedFiles.append(entry)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"M001")
    return bytes(builder.Output())


def test_minimum_parser_version_follows_the_schema_history():
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    labels = fb.AssociatedFileType.TENSOR_AXIS_LABELS
    assert metadata.minimum_parser_version(_metadata_buffer(a=(labels, None))) == "1.0.0"
    assert metadata.minimum_parser_version(_metadata_buffer(a=(fb.AssociatedFileType.VOCABULARY, None))) == "1.0.1"
    assert metadata.minimum_parser_version(_metadata_buffer(a=(labels, "2"))) == "1.4.1"
    assert metadata.minimum_parser_version(
        _metadata_buffer(a=(fb.AssociatedFileType.SCANN_INDEX_FILE, None), b=(labels, None))) == "1.4.0"


def test_labels_default_to_class_indices():
    assert deploy.class_labels(None, 3) == ["0", "1", "2"]


def test_fewer_names_than_classes_are_refused_naming_the_counts():
    with pytest.raises(ValueError, match="labels: 2 class names for a model with 3 classes"):
        deploy.class_labels(["a", "b"], 3)
    with pytest.raises(ValueError, match="non-empty single lines"):
        deploy.class_labels(["a", "b\nc", "d"], 3)


def test_export_refuses_missing_names_before_writing(tmp_path):
    pixels = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="labels: 2 class names for a model with 10 classes"):
        deploy.export_winner(_model(), str(tmp_path / "out"), pixels, pixels, np.zeros(2), labels=["a", "b"])
    assert not (tmp_path / "out").exists()


def test_the_mediapipe_pin_is_one_range_and_the_installed_release_meets_it():
    import importlib.metadata
    import re

    from packaging.requirements import Requirement

    from conftest import REPO

    pinned = re.search(r'^MEDIAPIPE = "(.+)"$', (REPO / "setup.py").read_text(), re.M).group(1)
    assert pinned == metadata.MEDIAPIPE_REQUIREMENT
    assert importlib.metadata.version("mediapipe") in Requirement(pinned).specifier


def test_without_the_metadata_writer_the_files_are_written_with_one_warning(tmp_path, monkeypatch, caplog):
    def unavailable():
        raise metadata.MetadataUnavailableError("no writer here")

    monkeypatch.setattr(metadata, "_import_writer", unavailable)
    monkeypatch.setattr(deploy, "_WARNED", set())
    pixels = np.random.default_rng(3).integers(0, 256, (4, 16, 16, 3)).astype(np.uint8)
    reports = [deploy.export_winner(_model(classes=2), str(tmp_path / name), pixels, pixels, np.arange(4) % 2,
                                    labels=["no", "yes"], latency_runs=1) for name in ("a", "b")]
    assert [r.metadata for r in reports] == [False, False]
    assert (tmp_path / "a" / "labels.txt").read_text() == "no\nyes\n"
    assert all((tmp_path / name / f"winner_{kind}.tflite").exists() for name in "ab" for kind in deploy.FORMATS)
    warnings = [r.getMessage() for r in caplog.records if "carry no metadata" in r.getMessage()]
    assert len(warnings) == 1 and "no writer here" in warnings[0]
