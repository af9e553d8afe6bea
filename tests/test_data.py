import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from train.data import SPLITS, balanced_indices, load_dataset, stratified_split, tfds_split_specs


def _raw_digits(dataset, split):
    """The 8x8 images of an image_size=8 digits split, back on sklearn's 0..16 scale, as bytes."""
    images, labels = dataset.numpy_images(split, 10_000)
    raw = (images[..., 0] + 1.0) * 8.0
    np.testing.assert_allclose(raw, np.rint(raw), atol=1e-5)  # resize to 8x8 is the identity
    return [image.tobytes() for image in np.rint(raw).astype(np.uint8)], labels


@pytest.fixture(scope="module")
def digits8():
    return load_dataset("digits", image_size=8, seed=0)


def test_digits_splits_partition_the_dataset(digits8):
    assert digits8.sizes == {"train": 1079, "validation": 359, "test": 359}
    assert sum(digits8.sizes.values()) == 1797 and digits8.num_classes == 10
    reference = load_digits()
    truth = dict(zip((im.astype(np.uint8).tobytes() for im in reference.images), reference.target))
    assert len(truth) == 1797  # no duplicate images, so a hash names an example
    seen = {}
    for split in SPLITS:
        hashes, labels = _raw_digits(digits8, split)
        assert len(hashes) == digits8.sizes[split]
        # Every image is a real digit with its own label, and no example is in two splits.
        assert [truth[h] for h in hashes] == labels.tolist()
        assert not set(hashes) & set(seen)
        seen.update(dict.fromkeys(hashes, split))
        # Stratified: each class within two examples of its share.
        counts = np.bincount(labels, minlength=10)
        share = np.bincount(reference.target) * digits8.sizes[split] / 1797
        assert np.all(np.abs(counts - share) <= 2), (split, counts, share)
    assert len(seen) == 1797


def test_digits_split_depends_on_seed_only(digits8):
    test_hashes = _raw_digits(digits8, "test")[0]
    assert _raw_digits(load_dataset("digits", image_size=8, seed=0), "test")[0] == test_hashes
    other = _raw_digits(load_dataset("digits", image_size=8, seed=1), "test")[0]
    assert len(other) == len(test_hashes) and set(other) != set(test_hashes)


def test_raw_images_are_the_pixels_before_scaling(digits8):
    pixels, labels = digits8.numpy_images("test", 50, raw=True)
    images, same_labels = digits8.numpy_images("test", 50)
    assert pixels.dtype == np.uint8 and pixels.shape == (50, 8, 8, 3)
    np.testing.assert_array_equal(labels, same_labels)
    np.testing.assert_allclose(images, pixels.astype(np.float32) * (2 / digits8.pixel_max) - 1, atol=1e-6)
    assert digits8.pixel_max == 240.0 and pixels.max() == 240  # digits 0..16, times 15


def test_digits_resized_images_and_labels():
    data = load_dataset("digits", image_size=24, seed=3, max_examples=50)
    assert data.sizes == {"train": 50, "validation": 50, "test": 50}
    images, labels = data.numpy_images("train", 100)
    assert images.shape == (50, 24, 24, 3) and images.dtype == np.float32 and labels.dtype == np.int32
    assert images.min() == -1.0 and images.max() <= 1.0 and images.max() > 0.9
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grayscale repeated
    assert set(labels.tolist()) == set(range(10))  # the interleaved order makes a prefix balanced


def test_batched_yields_the_whole_split_in_batches(digits8):
    batches = list(digits8.batched("validation", 64))
    assert [b[0].shape[0] for b in batches] == [64] * 5 + [359 - 320]
    assert batches[0][0].shape[1:] == (8, 8, 3) and batches[0][1].dtype == tf.int32
    ordered = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(ordered, digits8.numpy_images("validation", 359)[1])
    epochs = [np.concatenate([y.numpy() for _, y in digits8.batched("train", 100, shuffle=True, seed=5)])
              for _ in range(2)]
    assert len(epochs[0]) == 1079
    assert sorted(epochs[0]) == sorted(digits8.numpy_images("train", 2000)[1])
    first = [y.numpy() for _, y in digits8.batched("train", 100, shuffle=True, seed=5).take(1)]
    np.testing.assert_array_equal(first[0], epochs[0][:100])  # same seed, same first epoch


def test_stratified_split_exact_sizes():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    parts = stratified_split(labels, 0.1, 0.25, seed=7)
    assert {k: len(v) for k, v in parts.items()} == {"train": 65, "validation": 10, "test": 25}
    assert sorted(np.concatenate(list(parts.values()))) == list(range(100))
    for split, part in parts.items():
        share = np.array([50, 30, 20]) * len(part) / 100
        assert np.all(np.abs(np.bincount(labels[part], minlength=3) - share) <= 2), split


def test_tfds_split_specs():
    assert tfds_split_specs({"train", "test"}, 0.2, 0.2) == {
        "train": "train[:80%]", "validation": "train[80%:100%]", "test": "test"}
    assert tfds_split_specs({"train", "validation", "test"}, 0.2, 0.2) == {
        "train": "train", "validation": "validation", "test": "test"}
    assert tfds_split_specs({"train"}, 0.1, 0.25) == {
        "train": "train[:65%]", "validation": "train[65%:75%]", "test": "train[75%:]"}
    assert tfds_split_specs([], 0.2, 0.2)["test"] == "test"  # unknown split names: train/test
    with pytest.raises(ValueError, match="no 'train' split"):
        tfds_split_specs({"test"}, 0.2, 0.2)


def test_tfds_mnist_mocked():
    with tfds.testing.mock_data(num_examples=6):
        data = load_dataset("mnist", image_size=16)
        assert data.num_classes == 10 and data.class_names[:2] == ("0", "1")
        assert data.sizes == {"train": 6, "validation": 6, "test": 6}
        for split in SPLITS:
            images, labels = data.numpy_images(split, 10)
            assert images.shape == (6, 16, 16, 3) and labels.dtype == np.int32
            assert images.min() >= -1.0 and images.max() <= 1.0
            assert np.all((0 <= labels) & (labels < 10))
            np.testing.assert_array_equal(images[..., 0], images[..., 1])
        capped = load_dataset("mnist", image_size=16, max_examples=4)
        assert capped.sizes == {"train": 4, "validation": 4, "test": 4}
        assert len(list(capped.batched("train", 3))) == 2


def _write_folder(root, counts, size=12):
    """A class-per-folder image tree; each image's pixels encode (class, index) for recognition."""
    for label, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            gray = 40 * label + 3 * i
            mode = i % 2  # mix RGB and grayscale files
            pixels = np.full((size, size, 3 if mode == 0 else 1), gray, np.uint8)
            tf.io.write_file(str(root / name / f"img{i}.png"), tf.io.encode_png(pixels))


def _folder_keys(data, split):
    images, labels = data.numpy_images(split, 1000)
    gray = np.rint((images[:, 0, 0, 0] + 1) * 127.5).astype(int)
    return sorted(zip(labels.tolist(), gray.tolist()))


def test_image_folder(tmp_path):
    _write_folder(tmp_path, {"cat": 10, "dog": 10, "owl": 5})
    data = load_dataset(f"folder:{tmp_path}", image_size=10, seed=0)
    assert data.num_classes == 3 and data.class_names == ("cat", "dog", "owl")
    assert data.sizes == {"train": 15, "validation": 5, "test": 5}
    keys = {split: _folder_keys(data, split) for split in SPLITS}
    everything = sorted(k for split in SPLITS for k in keys[split])
    assert everything == sorted((c, 40 * c + 3 * i) for c, n in enumerate([10, 10, 5]) for i in range(n))
    images, _ = data.numpy_images("train", 1)
    assert images.shape == (1, 10, 10, 3) and images.dtype == np.float32
    assert keys == {s: _folder_keys(load_dataset(f"folder:{tmp_path}", 10, seed=0), s) for s in SPLITS}
    assert keys["test"] != _folder_keys(load_dataset(f"folder:{tmp_path}", 10, seed=1), "test")


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="digits", image_size=4), "image_size=4"),
    (dict(name="digits", image_size=32, validation_fraction=0.5), "validation_fraction=0.5"),
    (dict(name="digits", image_size=32, test_fraction=0.0), "test_fraction=0.0"),
    (dict(name="digits", image_size=32, max_examples=0), "max_examples=0"),
    (dict(name="", image_size=32), "name=''"),
    (dict(name="mnsit", image_size=32), "name='mnsit'.*did you mean 'mnist'"),
    (dict(name="folder:/no/such/dir", image_size=32), "name='folder:/no/such/dir'.*does not exist"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(**kwargs)


def test_bad_folders(tmp_path):
    _write_folder(tmp_path / "one", {"only": 4})
    with pytest.raises(ValueError, match="at least 2 class sub-folders"):
        load_dataset(f"folder:{tmp_path / 'one'}", 16)
    _write_folder(tmp_path / "tiny", {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="split empty"):
        load_dataset(f"folder:{tmp_path / 'tiny'}", 16)
    with pytest.raises(ValueError, match="split='val'"):
        load_dataset("digits", 8, max_examples=5).batched("val", 2)


def test_a_folder_over_the_memory_budget_is_cached_on_disk_as_uint8(tmp_path):
    _write_folder(tmp_path / "images", {"cat": 10, "dog": 10, "owl": 10}, size=16)
    data = load_dataset(f"folder:{tmp_path / 'images'}", image_size=16, seed=0)
    split_bytes = data.sizes["train"] * (16 * 16 * 3 + 4)  # one byte per pixel, and the label
    assert data.cache_bytes("train") == split_bytes
    assert data.cache_mode("train", "auto", cache_memory_mb=1.0) == "memory"
    assert data.cache_mode("train", "auto", cache_memory_mb=split_bytes / 2 ** 20 / 2) == "disk"
    batched = data.batched("train", 4, shuffle=True, seed=1, cache="auto", cache_memory_mb=split_bytes / 2 ** 20 / 2,
                           cache_dir=str(tmp_path / "cache"))
    epochs = [sorted(y for _, ys in batched for y in ys.numpy().tolist()) for _ in range(2)]
    assert epochs[0] == epochs[1] == sorted(data.labels("train").tolist())
    (directory,) = (tmp_path / "cache").glob("layernas_cache_*")
    assert str(os.getpid()) in directory.name  # this process's own cache directory
    assert list(directory.glob("*_train_16_18_all.index"))
    images, _ = next(iter(batched))
    assert images.dtype == tf.float32 and -1.0 <= float(tf.reduce_min(images)) <= float(tf.reduce_max(images)) <= 1.0


def test_proxy_subset_is_fixed_seeded_and_class_balanced():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 4)
    chosen = balanced_indices(labels, 20, seed=3)
    assert len(chosen) == 20 and len(set(chosen.tolist())) == 20
    assert np.bincount(labels[chosen]).tolist() == [8, 8, 4]  # class 2 runs out, the others share the rest
    assert balanced_indices(labels, 20, seed=3).tolist() == chosen.tolist()
    assert balanced_indices(labels, 20, seed=4).tolist() != chosen.tolist()
    assert len(balanced_indices(labels, 500, seed=0)) == len(labels)


def test_batched_subset_reads_only_the_chosen_examples():
    data = load_dataset("digits", image_size=8, seed=0)
    batched = data.batched("train", 64, examples=100, seed=2)
    labels = np.concatenate([y.numpy() for _, y in batched])
    assert len(labels) == 100 and np.bincount(labels).tolist() == [10] * 10
    assert data.steps_per_epoch("train", 64, 100) == 2 and data.steps_per_epoch("train", 64) == 17
