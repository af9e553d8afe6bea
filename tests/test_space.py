import random

import pytest

import searchspaces
from searchspaces import get_space
from searchspaces.space import make_divisible

MOBILENET_SPACES = ["mobilenet_v2", "mobilenet_v2_140", "mobilenet_v3_small", "mobilenet_v3_large"]


def test_registry_lists_all_spaces():
    assert searchspaces.SPACE_NAMES == (
        "mobilenet_v2", "mobilenet_v2_140", "mobilenet_v3_small", "mobilenet_v3_large",
        "cifar_mobilenet_v2", "nas_bench_macro", "channel_bench_macro_mobilenet",
    )


def test_unknown_space_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown search space 'mobilenet_v9'.*mobilenet_v3_large"):
        get_space("mobilenet_v9")


@pytest.mark.parametrize("name", searchspaces.SPACE_NAMES)
def test_trials_per_sweep_stay_under_200(name):
    space = get_space(name)
    assert sum(space.num_options) <= 200


def test_option_counts_per_space():
    # Options whose width rounds to a sibling's are dropped (0.75x of 16 and 24 channels).
    assert get_space("mobilenet_v2").num_options == (4, 8, 8) + (12,) * 14
    assert get_space("mobilenet_v2_140").num_options == (6,) + (12,) * 16
    assert get_space("mobilenet_v3_large").num_options == (8, 8, 8) + (12,) * 12
    assert get_space("mobilenet_v3_small").num_options == (8, 8, 8) + (12,) * 8
    assert get_space("cifar_mobilenet_v2").num_options == (4, 8, 8, 12, 12, 12, 12)
    assert get_space("nas_bench_macro").num_options == (3,) * 8
    assert get_space("channel_bench_macro_mobilenet").num_options == (4,) * 7


def test_default_string_forms():
    assert get_space("mobilenet_v2").to_string(get_space("mobilenet_v2").default) == "0-1-1-5-5-5-5-5-5-5-5-5-5-5-5-5-5"
    assert get_space("mobilenet_v3_large").to_string(get_space("mobilenet_v3_large").default) == "0-0-0-7-7-7-4-4-4-4-5-5-7-7-7"
    assert get_space("nas_bench_macro").to_string(get_space("nas_bench_macro").default) == "11111111"
    assert get_space("channel_bench_macro_mobilenet").to_string(get_space("channel_bench_macro_mobilenet").default) == "4444444"


@pytest.mark.parametrize("name", searchspaces.SPACE_NAMES)
def test_string_form_round_trips(name):
    space = get_space(name)
    rng = random.Random(3)
    for _ in range(50):
        encoding = space.random(rng)
        assert space.parse(space.to_string(encoding)) == encoding


def test_table_keys_parse_to_option_indices():
    assert get_space("nas_bench_macro").parse("02012100") == (0, 2, 0, 1, 2, 1, 0, 0)
    assert get_space("channel_bench_macro_mobilenet").parse("4432214") == (3, 3, 2, 1, 1, 0, 3)


def test_default_keyword_parses_to_default():
    space = get_space("mobilenet_v3_small")
    assert space.parse("default") == space.default


def test_default_reproduces_published_v3_large_block():
    block = get_space("mobilenet_v3_large").resolve("default").blocks[3]
    assert (block.in_filters, block.expanded_filters, block.kernel_size, block.strides, block.se_filters, block.out_filters) == (
        24, 72, 5, 2, 24, 40)


def test_option_labels_describe_the_choice():
    space = get_space("mobilenet_v3_large")
    assert space.layers[3].options[space.default[3]].label == "c1_k5_se"
    assert get_space("nas_bench_macro").describe("01200000").startswith("layer_0:skip layer_1:c1_k3_e3 layer_2:c1_k5_e6")


@pytest.mark.parametrize("name", searchspaces.SPACE_NAMES)
def test_two_encodings_build_the_same_network_exactly_when_they_are_equal(name):
    # Brute force around random candidates: every one- and two-layer change builds another network.
    space = get_space(name)
    rng = random.Random(0)
    for _ in range(12):
        base = space.random(rng)
        arch = space.resolve(base)
        others = [base[:i] + (o,) + base[i + 1:] for i, n in enumerate(space.num_options) for o in range(n)]
        others += [space.random(rng) for _ in range(50)]
        for other in others:
            assert (space.resolve(other) == arch) == (other == base), (base, other)


@pytest.mark.parametrize("name", MOBILENET_SPACES + ["cifar_mobilenet_v2"])
def test_dropping_duplicate_options_keeps_every_network(name):
    from searchspaces import mobilenet
    from searchspaces.space import SearchSpace

    space = get_space(name)
    rows = {"mobilenet_v2": mobilenet.MOBILENET_V2_BLOCKS, "mobilenet_v2_140": mobilenet.MOBILENET_V2_BLOCKS,
            "cifar_mobilenet_v2": mobilenet.CIFAR_MOBILENET_V2_BLOCKS,
            "mobilenet_v3_large": mobilenet.MOBILENET_V3_LARGE_BLOCKS,
            "mobilenet_v3_small": mobilenet.MOBILENET_V3_SMALL_BLOCKS}[name]
    raw_layers = (mobilenet._v3_layers if "v3" in name else mobilenet._v2_layers)(rows)
    raw = SearchSpace(space.name, raw_layers, space.input_size, space.num_classes, space.resolver)
    assert raw.resolve(raw.default) == space.resolve(space.default)
    for i, layer in enumerate(raw.layers):
        kept = {space.resolve(space.default[:i] + (o,) + space.default[i + 1:]) for o in range(space.num_options[i])}
        every = {raw.resolve(raw.default[:i] + (o,) + raw.default[i + 1:]) for o in range(len(layer.options))}
        assert kept == every and len(kept) == space.num_options[i]


@pytest.mark.parametrize("name", searchspaces.SPACE_NAMES)
def test_spaces_and_cost_functions_pickle(name):
    import pickle

    from layernas_tf.costs import cost_function

    space = get_space(name)
    cost = pickle.loads(pickle.dumps(cost_function(space, "madds")))
    assert cost(space.default) == cost_function(space, "madds")(space.default)
    assert pickle.loads(pickle.dumps(space)).resolve(space.default) == space.resolve(space.default)


def test_make_divisible_keeps_ninety_percent():
    assert make_divisible(18) == 24  # 16 would lose more than 10%
    assert make_divisible(30) == 32
    assert make_divisible(4) == 8


@pytest.mark.parametrize(
    "encoding, message",
    [
        ((0,) * 14, "must have 15 layers, got 14"),
        ((0,) * 14 + (12,), r"layer 14 \(block_14\): option 12 is out of range; allowed 0..11"),
        ((-1,) + (0,) * 14, r"layer 0 \(block_0\): option -1 is out of range; allowed 0..7"),
        (("a",) + (0,) * 14, r"layer 0 \(block_0\): option 'a' is out of range"),
    ],
)
def test_bad_encodings_name_the_layer_and_range(encoding, message):
    with pytest.raises(ValueError, match=message):
        get_space("mobilenet_v3_large").validate(encoding)


@pytest.mark.parametrize("text", ["", "1-2-", "1,2,3", "a-b", "1--2"])
def test_malformed_strings_are_refused(text):
    with pytest.raises(ValueError, match="malformed encoding"):
        get_space("mobilenet_v3_large").parse(text)


def test_wrong_length_string_is_refused():
    with pytest.raises(ValueError, match="must have 15 layers, got 3"):
        get_space("mobilenet_v3_large").parse("1-2-3")


def test_table_key_with_foreign_character_is_refused():
    with pytest.raises(ValueError, match="characters from '1234'"):
        get_space("channel_bench_macro_mobilenet").parse("4432210")


def test_option_attributes_name_what_varies_in_each_block():
    attributes = get_space("mobilenet_v3_large").option_attributes()
    assert [len(layer) for layer in attributes] == list(get_space("mobilenet_v3_large").num_options)
    assert attributes[5][0] == (("width", 0.75), ("kernel", 3), ("se", False))
    assert attributes[0][0] == (("width", 1.0), ("kernel", 3), ("se", False))  # 0.75x of 16 dropped
    v2 = get_space("cifar_mobilenet_v2").option_attributes()
    assert {tuple(k for k, _ in o) for o in v2[0]} == {("width", "kernel")}  # expansion 1 is fixed
    assert {tuple(k for k, _ in o) for o in v2[3]} == {("width", "kernel", "expansion")}
    # A layer with a skip option is not a product of attributes: opaque, searched in one step.
    assert set(get_space("nas_bench_macro").option_attributes()[0]) == {()}


def test_the_main_jobs_problem_carries_the_attributes_and_layernas_steps_through_them():
    from layernas_tf import api
    from layernas_tf.search.layernas import LayerNAS

    space = get_space("mobilenet_v3_large")
    problem = api.make_problem(space, api.Target("madds", 150e6), 224, 1000)
    assert problem.option_attributes == space.option_attributes()
    searcher = LayerNAS(problem, budget=200)
    assert searcher.plan[:3] == [(0, "kernel"), (0, "se"), (1, "kernel")] or searcher.plan[:3] == [
        (0, "width"), (0, "kernel"), (0, "se")]
    assert len(searcher.plan) == sum(len(problem.attribute_names(i)) for i in range(space.num_layers))
