"""The generic Keras counter equals the analytic profiler on every space, and counts what it knows."""

import random

import keras
import pytest

import searchspaces
from layernas_tf.costs import Costs, candidate_costs
from layernas_tf.keras_count import UncountedLayerError, count_model, count_without_weights
from searchspaces import get_space
from searchspaces.builder import build


def _small(space):
    return 32 if space.input_size == 224 else space.input_size


@pytest.mark.parametrize("name", searchspaces.SPACE_NAMES)
def test_counter_equals_analytic_costs_on_default_and_50_random_candidates(name):
    space = get_space(name)
    size = _small(space)
    rng = random.Random(3)
    candidates = [space.default] + [space.random(rng) for _ in range(50)]
    for encoding in candidates:
        counted = count_without_weights(lambda: build(space, encoding, (size, size, 3), 10))
        assert counted == candidate_costs(space, encoding, size, 10), space.to_string(encoding)


def test_counter_matches_the_published_mobilenet_v3_small():
    # keras.applications' network at 224x224 and 1000 classes: 56.5M MAdds, 2.54M params.
    counted = count_without_weights(lambda: keras.applications.MobileNetV3Small(input_shape=(224, 224, 3),
                                                                                weights=None))
    assert counted == Costs(56_510_400, 2_542_856)


def test_separable_conv_dense_on_sequences_and_nested_models_are_counted():
    inner = keras.Sequential([keras.Input((4, 4, 8)), keras.layers.Conv2D(4, 1, use_bias=False)])
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.SeparableConv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)  # 4x4 out
    x = inner(x)
    x = keras.layers.MaxPooling2D()(x)  # 2x2
    x = keras.layers.Dense(5)(x)  # applied at each of the 4 positions
    model = keras.Model(inputs, x)
    depthwise = 4 * 4 * 3 * 3 * 3
    pointwise = 4 * 4 * 3 * 8
    conv = 4 * 4 * 8 * 4
    dense = 2 * 2 * 4 * 5
    assert count_model(model) == Costs(depthwise + pointwise + conv + dense, 27 + 24 + 32 + 20 + 5)


def test_a_weighted_layer_the_counter_does_not_know_is_refused_by_name():
    model = keras.Sequential([keras.Input((10, 3)), keras.layers.Conv1D(4, 3, name="temporal")])
    with pytest.raises(UncountedLayerError, match=r"layer 'temporal' \(Conv1D\).*cost_fn"):
        count_model(model)


def test_counting_without_weights_leaves_no_variables_to_initialize_and_compiles_nothing():
    from keras.src.backend.common import global_state

    def build_compiled():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(optimizer="adam", loss="mse")
        return model

    before = len(global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True))
    assert count_without_weights(build_compiled) == Costs(12, 15)
    assert len(global_state.get_global_attribute("uninitialized_variables")) == before
    model = build_compiled()  # compile works again afterwards
    assert model.optimizer is not None and model.compiled
