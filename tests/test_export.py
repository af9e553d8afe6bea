import json
import subprocess
import sys

import numpy as np
import pytest

import searchspaces
from conftest import REPO
from export import tflite
from layernas_tf.latency.timing import measure_latency, predict
from searchspaces import get_space
from searchspaces.builder import build


def _smallest(space):
    """The candidate with option 0 everywhere (narrowest, smallest kernel)."""
    return (0,) * space.num_layers


@pytest.mark.parametrize("name", searchspaces.SPACE_NAMES)
def test_float_and_int8_tflite_agree_with_keras(name):
    space = get_space(name)
    size = 32
    model = build(space, _smallest(space), (size, size, 3), 10)
    images = np.random.default_rng(0).uniform(-1, 1, (16, size, size, 3)).astype(np.float32)
    expected = model.predict(images, verbose=0)
    float_scores = predict(tflite.convert(model, "float"), images)
    np.testing.assert_allclose(float_scores, expected, atol=1e-4)
    int8_model = tflite.convert(model, "int8", images)
    int8_scores = predict(int8_model, images)
    assert int8_scores.shape == (16, 10)
    # Softmax outputs quantized to int8 steps of 1/256: close to the float scores.
    assert np.abs(int8_scores - expected).max() < 0.1


def test_int8_conversion_without_calibration_is_refused():
    model = build(get_space("cifar_mobilenet_v2"), "default")
    with pytest.raises(ValueError, match="needs calibration_images"):
        tflite.convert(model, "int8")


def test_unknown_quantization_is_refused():
    model = build(get_space("cifar_mobilenet_v2"), "default")
    with pytest.raises(ValueError, match="unknown quantization 'int4'; allowed: float, int8"):
        tflite.convert(model, "int4")


def test_latency_measurement_reports_runs_and_order():
    model = build(get_space("cifar_mobilenet_v2"), "default")
    stats = measure_latency(tflite.convert(model, "float"), num_threads=1, warmup=2, runs=7)
    assert stats.runs == 7 and stats.num_threads == 1
    assert 0 < stats.p10_ms <= stats.median_ms <= stats.p90_ms


def test_qat_wraps_a_v3_candidate_and_converts_to_int8():
    import tf_keras

    from export.qat import quantize_model

    space = get_space("mobilenet_v3_small")
    model = build(space, space.default, (32, 32, 3), 10, keras_module=tf_keras)
    qat = quantize_model(model)
    names = {type(layer).__name__ for layer in qat.layers}
    assert "QuantizeWrapperV2" in names and "QuantizeLayer" in names
    images = np.random.default_rng(1).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(images, np.arange(8) % 10, epochs=1, verbose=0)
    scores = predict(tflite.convert(qat, "int8", images), images)
    assert scores.shape == (8, 10)


@pytest.mark.parametrize("name", ["cifar_mobilenet_v2", "mobilenet_v3_small"])
def test_qat_finetune_starts_from_the_trained_keras3_weights(name):
    import tensorflow as tf
    import tf_keras

    from export.qat import copy_weights_by_name, qat_finetune

    import keras

    keras.utils.set_random_seed(0)
    space = get_space(name)
    encoding = space.random(__import__("random").Random(3))
    # BatchNorm momentum 0.9 (as in proxy training): with the published 0.99 the moving statistics are
    # not ready after a few dozen steps, so inference outputs stay near uniform and argmax is noise.
    trained = build(space, encoding, (32, 32, 3), 4, bn_momentum=0.9)
    images = np.random.default_rng(2).uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    labels = np.arange(16) % 4
    images[np.arange(16), :8, :8, 0] = labels[:, None, None] - 1.5  # a learnable cue per class
    trained.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    for _ in range(10):  # until the premise holds: confident and correct on its training images
        trained.fit(images, labels, epochs=10, batch_size=8, verbose=0)
        float_scores = trained.predict(images, verbose=0)
        if (float_scores.argmax(-1) == labels).all() and float_scores.max(-1).min() > 0.6:
            break
    # The premise, asserted first: otherwise the comparison below would check noise, not QAT.
    assert (float_scores.argmax(-1) == labels).all(), float_scores
    assert float_scores.max(-1).min() > 0.6, float_scores.max(-1)
    twin = build(space, encoding, (32, 32, 3), 4, keras_module=tf_keras)
    copied = copy_weights_by_name(trained, twin)
    assert copied == sum(bool(layer.get_weights()) for layer in trained.layers)
    np.testing.assert_allclose(twin.predict(images, verbose=0), trained.predict(images, verbose=0), atol=1e-4)
    qat = qat_finetune(trained, space, encoding, tf.data.Dataset.from_tensor_slices((images, labels)).batch(8),
                       epochs=1, input_size=32, num_classes=4)
    scores = predict(tflite.convert(qat, "int8", images), images)
    assert scores.shape == (16, 4)
    # The int8 model follows the trained float model, not a fresh initialisation.
    agreement = np.mean(scores.argmax(-1) == float_scores.argmax(-1))
    assert agreement >= 0.75


def test_copy_weights_refuses_a_different_architecture():
    import tf_keras

    from export.qat import copy_weights_by_name

    space = get_space("cifar_mobilenet_v2")
    with pytest.raises(ValueError, match="weight shapes differ"):
        copy_weights_by_name(build(space, "default", (32, 32, 3), 4),
                             build(space, "2-1-1-5-5-5-5", (32, 32, 3), 4, keras_module=tf_keras))


def test_qat_refuses_a_keras3_model():
    from export.qat import quantize_model

    with pytest.raises(TypeError, match="needs a tf-keras model"):
        quantize_model(build(get_space("cifar_mobilenet_v2"), "default"))


def _profile(*args):
    return subprocess.run(
        [sys.executable, "-m", "layernas_tf.latency.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_profile_cli_prints_costs_and_latency_as_json():
    result = _profile("--search_space=cifar_mobilenet_v2", "--arch=default", "--latency", "--quantize=int8", "--runs=5", "--warmup=1")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["search_space"] == "cifar_mobilenet_v2"
    assert report["encoding"] == "0-1-1-5-5-5-5"
    assert (report["madds"], report["params"]) == (9_220_608, 134_538)
    assert set(report["latency_ms"]) == {"float", "int8"} and all(v > 0 for v in report["latency_ms"].values())


def test_profile_cli_random_reports_throughput():
    result = _profile("--search_space=mobilenet_v3_large", "--random=500", "--seed=1")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["candidates"] == 500 and report["candidates_per_second"] > 0
    assert report["madds_min"] <= 216_589_760 <= report["madds_max"]


def test_profile_cli_refuses_a_bad_encoding():
    result = _profile("--search_space=mobilenet_v3_small", "--arch=1-2-3")
    assert result.returncode != 0
    assert "--arch: encoding for search space 'mobilenet_v3_small' must have 11 layers, got 3" in result.stderr


def test_profile_cli_refuses_an_unknown_space():
    result = _profile("--search_space=resnet50")
    assert result.returncode != 0
    assert "search_space" in result.stderr and "mobilenet_v3_large" in result.stderr


def test_latency_model_is_calibrated_on_measured_candidates():
    from layernas_tf.api import Target, make_problem
    from layernas_tf.latency.linear_model import calibrate_latency_model

    space = get_space("cifar_mobilenet_v2")
    model = calibrate_latency_model(space, 8, 10, "float", samples=4, runs=3)
    assert len(model.samples) == 4 and all(ms > 0 for _, ms in model.samples)
    assert all(c >= 0 for c in model.coefficients) and model.mean_abs_error_pct >= 0
    problem = make_problem(space, Target("latency_ms", 1e3), 8, 10, model)
    assert problem.cost_of(problem.cheapest) <= model(space.default) <= problem.cost_of(problem.costliest)
    with pytest.raises(ValueError, match="a latency_ms target needs latency_fn"):
        make_problem(space, Target("latency_ms", 1.0), 8, 10)
