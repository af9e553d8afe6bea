import json
import random

import pytest

import searchspaces
from conftest import shared_table
from layernas_tf.keras_count import count_model as _count


def count_model(model):
    """(MAdds, params) counted on the built model by the generic Keras counter."""
    costs = _count(model)
    return costs.madds, costs.params
from layernas_tf.costs import candidate_costs, cost_function
from searchspaces import get_space
from searchspaces.builder import build

# (MAdds, trainable params) of the published networks at 224x224, 1000 classes.
PUBLISHED = {
    "mobilenet_v2": (300_774_272, 3_504_872),
    "mobilenet_v2_140": (582_195_824, 6_108_776),
    "mobilenet_v3_large": (216_589_760, 5_483_032),
    "mobilenet_v3_small": (56_510_400, 2_542_856),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_default_costs_match_the_published_networks(name):
    space = get_space(name)
    costs = candidate_costs(space, space.default)
    assert (costs.madds, costs.params) == PUBLISHED[name]


def _keras_application(name):
    import keras

    apps = {
        "mobilenet_v2": lambda: keras.applications.MobileNetV2(weights=None),
        "mobilenet_v2_140": lambda: keras.applications.MobileNetV2(alpha=1.4, weights=None),
        "mobilenet_v3_large": lambda: keras.applications.MobileNetV3Large(input_shape=(224, 224, 3), weights=None),
        "mobilenet_v3_small": lambda: keras.applications.MobileNetV3Small(input_shape=(224, 224, 3), weights=None),
    }
    return apps[name]()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_default_builds_the_same_network_as_keras_applications(name):
    space = get_space(name)
    ours = build(space, space.default)
    reference = _keras_application(name)
    assert count_model(ours) == count_model(reference) == PUBLISHED[name]
    assert ours.output_shape == reference.output_shape == (None, 1000)


@pytest.mark.parametrize("name", searchspaces.SPACE_NAMES)
def test_analytic_costs_equal_counts_on_built_models(name):
    space = get_space(name)
    rng = random.Random(11)
    small = 64 if space.input_size == 224 else 32
    for _ in range(4):
        encoding = space.random(rng)
        costs = candidate_costs(space, encoding, small, 10)
        assert (costs.madds, costs.params) == count_model(build(space, encoding, (small, small, 3), 10)), space.to_string(encoding)


def test_cost_function_agrees_with_candidate_costs():
    space = get_space("mobilenet_v3_large")
    madds = cost_function(space, "madds")
    params = cost_function(space, "params")
    rng = random.Random(0)
    for _ in range(100):
        encoding = space.random(rng)
        costs = candidate_costs(space, encoding)
        assert (madds(encoding), params(encoding)) == (costs.madds, costs.params)


def test_unknown_cost_metric_is_refused():
    with pytest.raises(ValueError, match="unknown cost metric 'flops'; allowed: madds, params"):
        cost_function(get_space("mobilenet_v2"), "flops")


@pytest.mark.parametrize(
    "name, filename",
    [
        ("nas_bench_macro", "nas-bench-macro_cifar10.json"),
        ("channel_bench_macro_mobilenet", "channel-bench-macro_mobilenet_cifar10.json"),
    ],
)
def test_bench_spaces_reproduce_every_tables_flops_and_params(name, filename):
    path = shared_table(filename)
    table = json.loads(path.read_text())
    space = get_space(name)
    mismatches = [
        key for key, row in table.items()
        if (lambda c: (c.madds, c.params))(candidate_costs(space, space.parse(key))) != (row["flops"], row["params"])
    ]
    assert len(table) == space.num_candidates
    assert mismatches == []


@pytest.mark.parametrize("name", searchspaces.SPACE_NAMES)
def test_the_fast_cost_path_equals_the_resolved_architectures_cost(name):
    import random

    space = searchspaces.get_space(name)
    rng = random.Random(7)
    for metric in ("madds", "params"):
        cost = cost_function(space, metric, 0, 0)
        encodings = [space.random(rng) for _ in range(500)] + [space.default]
        assert [cost(e) for e in encodings] == [cost.exact(e) for e in encodings]
    # Channel-Bench widths feed several blocks at once: no per-layer decomposition, the exact path.
    assert (cost.terms is None) == (name == "channel_bench_macro_mobilenet")
