"""Labelled images as tf.data pipelines, split once into train / validation / test.

`load_dataset` reads one of three sources and returns a `Dataset`: unbatched pipelines of
(image float32 in [-1, 1] of shape (S, S, 3), label int32), one per split.

- `"digits"` (default, offline): scikit-learn's 1,797 8x8 handwritten digits, 10 classes.
- `"folder:/path/to/dir"`: one sub-folder per class (`keras.utils.image_dataset_from_directory` layout).
- any other name: a TensorFlow Datasets dataset (`tfds.builder(name)`), downloaded by TFDS if needed.

Digits and folders are split by a stratified permutation drawn from `seed`; TFDS datasets keep their own
`test` (and `validation`) splits and carve the missing ones out of `train` by fixed percent slices. The
test split is built from its own examples only, so no train or validation pipeline can reach it.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dataclasses
import difflib
import numbers
from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf

SPLITS = ("train", "validation", "test")
FOLDER_PREFIX = "folder:"
MIN_IMAGE_SIZE = 8
SHUFFLE_BUFFER = 16384  # examples; a whole split for digits and small folders


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Three unbatched splits of (image float32 [-1, 1] (S, S, 3), label int32) and their metadata."""

    name: str
    image_size: int
    num_classes: int
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    sizes: Dict[str, int]
    class_names: Tuple[str, ...] = ()

    def split(self, split: str) -> tf.data.Dataset:
        """The unbatched pipeline of `split` ('train', 'validation' or 'test'); ValueError otherwise."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {SPLITS}")
        return getattr(self, split)

    def batched(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
        """`split` cached in memory, reshuffled every epoch from `seed` if `shuffle`, batched, prefetched.

        The last batch may be smaller than `batch_size`. Raises ValueError for an unknown split or a
        batch_size below 1.
        """
        ds = self.split(split)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        ds = ds.cache()
        if shuffle:
            ds = ds.shuffle(min(self.sizes[split], SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def numpy_images(self, split: str, n: int) -> Tuple[np.ndarray, np.ndarray]:
        """The first min(n, size) examples of `split`: images float32 (k, S, S, 3) and labels int32 (k,).

        Digits and folder splits are ordered with the classes interleaved, so a prefix is near-balanced
        (useful for int8 calibration). Raises ValueError for an unknown split or n below 1.
        """
        ds = self.split(split)
        if n < 1:
            raise ValueError(f"n={n} must be at least 1")
        batches = [(x.numpy(), y.numpy()) for x, y in ds.take(n).batch(256)]  # splits are never empty
        return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def load_dataset(
    name: str = "digits",
    image_size: int = 32,
    seed: int = 0,
    data_dir: Optional[str] = None,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    max_examples: Optional[int] = None,
) -> Dataset:
    """Load `name` as a `Dataset` of images resized (bilinear) to `image_size` and scaled to [-1, 1].

    Args:
      name: "digits", "folder:<directory>" (one sub-folder per class) or a TFDS dataset name.
      image_size: side S of the square images, at least 8.
      seed: picks the split of digits and folders (stratified by class); the same seed gives the same
        split. TFDS splits are fixed percent slices and do not depend on it.
      data_dir: TFDS data directory (TFDS default when None); unused by the other sources.
      validation_fraction, test_fraction: shares of all examples (digits, folders) or of TFDS `train`
        (only for the splits the dataset lacks), each in (0, 0.5).
      max_examples: optional cap on the size of each split, for quick runs.

    Returns:
      A `Dataset`; `sizes` holds the number of examples of each split.

    Raises:
      ValueError: naming the argument, for an unknown name, a missing folder or one with fewer than
        two class sub-folders, image_size below 8, fractions outside (0, 0.5), max_examples below 1, or
        a split that would be empty.
    """
    if not isinstance(image_size, numbers.Integral) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size={image_size!r} must be an integer of at least {MIN_IMAGE_SIZE}")
    for arg, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 0.5:
            raise ValueError(f"{arg}={value!r} must lie in the open interval (0, 0.5)")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples={max_examples!r} must be None or at least 1")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r}: expected 'digits', '{FOLDER_PREFIX}<directory>' or a TFDS dataset name")
    fractions = (validation_fraction, test_fraction)
    if name == "digits":
        return _digits(image_size, seed, fractions, max_examples)
    if name.startswith(FOLDER_PREFIX):
        return _folder(name[len(FOLDER_PREFIX):], image_size, seed, fractions, max_examples)
    return _tfds(name, image_size, data_dir, fractions, max_examples)


def stratified_split(labels: np.ndarray, validation_fraction: float, test_fraction: float,
                     seed: int) -> Dict[str, np.ndarray]:
    """Disjoint index arrays {'train', 'validation', 'test'} covering range(len(labels)).

    Validation and test get round(fraction * n) examples each, train the rest; every split holds each
    class in proportion to within two examples. Each array is ordered with the classes interleaved.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    # Place each example at a random quantile of its own class, then read all examples in quantile
    # order: any prefix of that order holds each class in proportion, so cutting it gives stratified
    # splits with exact global sizes, and class-interleaved order inside each split.
    quantile = np.empty(len(labels))
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        quantile[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    order = np.argsort(quantile, kind="stable")
    n_test, n_val = round(test_fraction * len(labels)), round(validation_fraction * len(labels))
    return {"train": order[n_test + n_val:], "validation": order[n_test:n_test + n_val], "test": order[:n_test]}


def tfds_split_specs(available: Iterable[str], validation_fraction: float, test_fraction: float) -> Dict[str, str]:
    """TFDS split strings for train / validation / test, given the dataset's split names.

    Existing `validation` and `test` splits are used as they are; the missing ones are percent slices
    at the end of `train`, and train keeps the rest. An empty `available` (split names unknown, as under
    `tfds.testing.mock_data`) is read as the usual {'train', 'test'}.
    """
    available = set(available) or {"train", "test"}
    if "train" not in available:
        raise ValueError(f"the TFDS dataset has no 'train' split (splits: {sorted(available)})")
    val_pct = 0.0 if "validation" in available else 100 * validation_fraction
    test_pct = 0.0 if "test" in available else 100 * test_fraction
    cut = 100 - val_pct - test_pct
    return {
        "train": f"train[:{cut:g}%]" if cut < 100 else "train",
        "validation": "validation" if "validation" in available else f"train[{cut:g}%:{cut + val_pct:g}%]",
        "test": "test" if "test" in available else f"train[{100 - test_pct:g}%:]",
    }


def _to_model_input(image: tf.Tensor, image_size: int, max_value: float) -> tf.Tensor:
    """(H, W, C) pixels in [0, max_value] -> float32 (S, S, 3) in [-1, 1]; C = 1 is repeated, C > 3 cut."""
    image = tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size), method="bilinear")
    image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.tile(image, [1, 1, 3]), lambda: image[..., :3])
    image.set_shape((image_size, image_size, 3))
    return image * (2.0 / max_value) - 1.0


def _size(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    # Unknown for generator-backed datasets (e.g. tfds mocks): count once.
    return n if n >= 0 else int(ds.reduce(0, lambda count, _: count + 1))


def _from_indices(name, image_size, splits, make_split, num_classes, class_names, max_examples) -> Dataset:
    """A Dataset whose split `s` is make_split(indices of s), each index array cut to max_examples."""
    indices = {s: idx[:max_examples] for s, idx in splits.items()}
    empty = [s for s in SPLITS if len(indices[s]) == 0]
    if empty:
        total = sum(len(idx) for idx in splits.values())
        raise ValueError(f"name={name!r}: {total} examples leave the {'/'.join(empty)} split empty; "
                         f"add examples or raise validation_fraction / test_fraction")
    return Dataset(name=name, image_size=image_size, num_classes=num_classes,
                   sizes={s: len(indices[s]) for s in SPLITS}, class_names=tuple(class_names),
                   **{s: make_split(indices[s]) for s in SPLITS})


def _digits(image_size, seed, fractions, max_examples) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)[..., None]  # values 0..16
    labels = digits.target.astype(np.int32)

    def make_split(idx):
        ds = tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))
        return ds.map(lambda x, y: (_to_model_input(x, image_size, 16.0), y), num_parallel_calls=tf.data.AUTOTUNE)

    splits = stratified_split(labels, *fractions, seed)
    return _from_indices("digits", image_size, splits, make_split, 10, [str(d) for d in range(10)], max_examples)


def _folder(directory, image_size, seed, fractions, max_examples) -> Dataset:
    import keras

    name = FOLDER_PREFIX + directory
    if not os.path.isdir(directory):
        raise ValueError(f"name={name!r}: folder {directory!r} does not exist")
    # Keras indexes the folder (its image formats, sorted class sub-folders, labels from the folder
    # names); shuffle=False keeps it lazy and ordered. Its own shuffle=True would reshuffle on every
    # pass, so splitting its output by position would move examples between splits from epoch to epoch:
    # instead the file list is split by seed here and each split decodes only its own files.
    index = keras.utils.image_dataset_from_directory(
        directory, labels="inferred", image_size=(image_size, image_size), batch_size=None,
        shuffle=False, verbose=False)
    class_names = list(index.class_names)
    if len(class_names) < 2:
        raise ValueError(f"name={name!r}: needs at least 2 class sub-folders, found {class_names}")
    paths = np.array(index.file_paths)
    labels = np.array([class_names.index(os.path.relpath(p, directory).split(os.sep)[0]) for p in paths],
                      np.int32)

    def load(path, label):
        # As Keras loads them: decoded to RGB (grayscale repeated), no animation, bilinear resize.
        image = tf.image.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return _to_model_input(image, image_size, 255.0), label

    def make_split(idx):
        ds = tf.data.Dataset.from_tensor_slices((paths[idx], labels[idx]))
        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)

    splits = stratified_split(labels, *fractions, seed)
    return _from_indices(name, image_size, splits, make_split, len(class_names), class_names, max_examples)


def _tfds(name, image_size, data_dir, fractions, max_examples) -> Dataset:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        # TFDS' own message lists every registered dataset; keep its first line and suggest near names.
        close = difflib.get_close_matches(name.split(":")[0].split("/")[0], tfds.list_builders(), n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(f"name={name!r} is not 'digits', '{FOLDER_PREFIX}<directory>' or a TFDS dataset "
                         f"({str(error).splitlines()[0]}); {hint}see tfds.list_builders()") from None
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2 or not hasattr(builder.info.features[keys[1]], "num_classes"):
        raise ValueError(f"name={name!r}: the TFDS dataset has no (image, class label) supervised keys")
    label_feature = builder.info.features[keys[1]]
    builder.download_and_prepare()
    specs = tfds_split_specs(builder.info.splits.keys(), *fractions)

    def make_split(split):
        ds = builder.as_dataset(split=specs[split], as_supervised=True, shuffle_files=False)
        if max_examples is not None:
            ds = ds.take(max_examples)
        return ds.map(lambda x, y: (_to_model_input(x, image_size, 255.0), tf.cast(y, tf.int32)),
                      num_parallel_calls=tf.data.AUTOTUNE)

    data = {s: make_split(s) for s in SPLITS}
    sizes = {s: _size(data[s]) for s in SPLITS}
    if not all(sizes.values()):
        raise ValueError(f"name={name!r}: empty split in {sizes} (TFDS splits {specs})")
    return Dataset(name=name, image_size=image_size, num_classes=label_feature.num_classes, sizes=sizes,
                   class_names=tuple(label_feature.names), **data)
