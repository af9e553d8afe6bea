"""Labelled images as tf.data pipelines, split once into train / validation / test.

`load_dataset` reads one of three sources and returns a `Dataset`: unbatched pipelines of
(image uint8 of shape (S, S, 3), label int32), one per split, scaled to float32 in [-1, 1] only
when batched, so a cached split takes one byte per pixel.

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

import atexit
import dataclasses
import difflib
import numbers
import shutil
import socket
import tempfile
import zlib
from typing import Callable, Dict, Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf

from train.spec import CACHES, FOLDER_PREFIX, MIN_IMAGE_SIZE, SPLITS  # noqa: F401 - re-exported

SHUFFLE_BUFFER = 16384  # examples; a whole split for digits and small folders


def default_cache_memory_mb() -> float:
    """A quarter of the machine's physical memory, in MB (4096 where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 4 / 2 ** 20
    except (ValueError, OSError, AttributeError):
        return 4096.0


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Three unbatched splits of (image uint8 (S, S, 3), label int32) and their metadata.

    Images stay uint8 until they are batched, so a cached split takes one byte per pixel;
    `batched` and `split` scale them to float32 in [-1, 1] (`pixel_max` maps to 1.0).
    """

    name: str
    image_size: int
    num_classes: int
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    sizes: Dict[str, int]
    class_names: Tuple[str, ...] = ()
    pixel_max: float = 255.0
    # (split, positions) -> the unbatched uint8 pipeline of those examples of the split, reading only them.
    subset_fn: Optional[Callable[[str, np.ndarray], tf.data.Dataset]] = dataclasses.field(
        default=None, repr=False, compare=False)
    # split -> its labels in pipeline order, read without decoding images where the source allows.
    labels_fn: Optional[Callable[[str], np.ndarray]] = dataclasses.field(default=None, repr=False, compare=False)

    def _raw(self, split: str) -> tf.data.Dataset:
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {SPLITS}")
        return getattr(self, split)

    def normalize(self, images: tf.Tensor) -> tf.Tensor:
        """uint8 images -> float32 in [-1, 1]."""
        return tf.cast(images, tf.float32) * (2.0 / self.pixel_max) - 1.0

    def split(self, split: str) -> tf.data.Dataset:
        """The unbatched float32 pipeline of `split` ('train', 'validation' or 'test'); ValueError otherwise."""
        return self._raw(split).map(lambda x, y: (self.normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)

    def labels(self, split: str) -> np.ndarray:
        """The labels of `split` in pipeline order (int32)."""
        if self.labels_fn is not None:
            return self.labels_fn(split)
        return np.array([int(y) for _, y in self._raw(split).as_numpy_iterator()], np.int32)

    def proxy_positions(self, split: str, examples: int, seed: int) -> np.ndarray:
        """The positions of a fixed, seeded, class-balanced subset of `examples` examples of `split`."""
        return balanced_indices(self.labels(split), examples, seed)

    def examples(self, split: str, examples: Optional[int] = None) -> int:
        """How many examples `batched(split, examples=examples)` yields per epoch."""
        return self.sizes[split] if examples is None else min(examples, self.sizes[split])

    def steps_per_epoch(self, split: str, batch_size: int, examples: Optional[int] = None) -> int:
        """Batches per epoch of `batched(split, batch_size, examples=examples)`, from the known split size."""
        return -(-self.examples(split, examples) // batch_size)

    def batched(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0,
                examples: Optional[int] = None, cache: str = "auto", cache_memory_mb: Optional[float] = None,
                cache_dir: Optional[str] = None) -> tf.data.Dataset:
        """`split` cached, reshuffled every epoch from `seed` if `shuffle`, batched, scaled, prefetched.

        Args:
          split: 'train', 'validation' or 'test'.
          batch_size: examples per batch; the last batch may be smaller.
          shuffle, seed: reshuffle every epoch, from `seed`.
          examples: a fixed, seeded, class-balanced subset of this many examples (all when None or at
            least the split's size); the subset depends on `seed` only.
          cache: 'memory' (uint8 in RAM), 'disk' (uint8 files in a directory of this process),
            'none', or 'auto': memory when the split fits `cache_memory_mb`, else disk.
          cache_memory_mb: the memory budget of 'auto' (default: a quarter of physical memory).
          cache_dir: where 'disk' caches go: a sub-directory named after this host and process is made
            in it, so processes never share a cache file (default: the system temp directory).

        Raises:
          ValueError: an unknown split or cache, or batch_size / examples below 1.
        """
        ds = self._raw(split)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        if examples is not None and examples < 1:
            raise ValueError(f"examples={examples} must be None or at least 1")
        size = self.examples(split, examples)
        subset = examples is not None and examples < self.sizes[split]
        if subset:
            positions = self.proxy_positions(split, examples, seed)
            ds = self.subset_fn(split, positions) if self.subset_fn is not None else _filtered(ds, positions,
                                                                                          self.sizes[split])
        mode = self.cache_mode(split, cache, cache_memory_mb, examples)
        if mode == "memory":
            ds = ds.cache()
        elif mode == "disk":
            tag = f"{zlib.crc32(self.name.encode()):08x}_{split}_{self.image_size}_{size}_{seed if subset else 'all'}"
            ds = ds.cache(os.path.join(process_cache_dir(cache_dir), tag))
        if shuffle:
            ds = ds.shuffle(min(size, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size).map(lambda x, y: (self.normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def cache_mode(self, split: str, cache: str = "auto", cache_memory_mb: Optional[float] = None,
                   examples: Optional[int] = None) -> str:
        """Where `batched` caches `split`: 'memory', 'disk' or 'none' ('auto' resolved by size)."""
        if cache not in CACHES:
            raise ValueError(f"cache={cache!r}; allowed: {', '.join(CACHES)}")
        if cache != "auto":
            return cache
        budget = default_cache_memory_mb() if cache_memory_mb is None else cache_memory_mb
        return "memory" if self.cache_bytes(split, examples) <= budget * 2 ** 20 else "disk"

    def cache_bytes(self, split: str, examples: Optional[int] = None) -> int:
        """Bytes a cached `split` takes: uint8 pixels and an int32 label per example."""
        return self.examples(split, examples) * (self.image_size * self.image_size * 3 + 4)

    def numpy_images(self, split: str, n: int, raw: bool = False) -> Tuple[np.ndarray, np.ndarray]:
        """The first min(n, size) examples of `split`: images float32 (k, S, S, 3) in [-1, 1] (with `raw`,
        the uint8 pixels before scaling, as an exported model takes them) and labels int32 (k,).

        Digits and folder splits are ordered with the classes interleaved, so a prefix is near-balanced
        (useful for int8 calibration). Raises ValueError for an unknown split or n below 1.
        """
        ds = self._raw(split) if raw else self.split(split)
        if n < 1:
            raise ValueError(f"n={n} must be at least 1")
        batches = [(x.numpy(), y.numpy()) for x, y in ds.take(n).batch(256)]  # splits are never empty
        return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def balanced_indices(labels: np.ndarray, examples: int, seed: int) -> np.ndarray:
    """Positions of `examples` examples, as even across classes as the classes allow, drawn from `seed`.

    Classes take turns in a seeded order, each giving its next example from a seeded permutation, until
    `examples` are taken (a class that runs out drops out). Returned sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    queues = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes]
    taken: list = []
    while len(taken) < min(examples, len(labels)):
        for queue in queues:
            if queue and len(taken) < examples:
                taken.append(queue.pop(0))
    return np.sort(np.array(taken, np.int64))


def _filtered(ds: tf.data.Dataset, positions: np.ndarray, size: int) -> tf.data.Dataset:
    """The examples of `ds` at `positions` (a generic subset, for sources that cannot read them directly)."""
    mask = np.zeros(size, bool)
    mask[positions] = True
    mask = tf.constant(mask)

    def chosen(position, example):
        return tf.gather(mask, position)

    def drop_position(position, example):
        return example

    return ds.enumerate().filter(chosen).map(drop_position)


_PROCESS_CACHE_DIRS: Dict[str, str] = {}


def process_cache_dir(base: Optional[str] = None) -> str:
    """A directory of this host and process for disk caches under `base` (system temp by default).

    Created once per process and removed when the process exits, so parallel workers never share a
    cache file and no stale cache outlives a run.
    """
    base = base or tempfile.gettempdir()
    if base not in _PROCESS_CACHE_DIRS:
        path = os.path.join(base, f"layernas_cache_{socket.gethostname()}_{os.getpid()}")
        os.makedirs(path, exist_ok=True)
        atexit.register(shutil.rmtree, path, True)
        _PROCESS_CACHE_DIRS[base] = path
    return _PROCESS_CACHE_DIRS[base]


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


DIGITS_SCALE = 15  # digits are 0..16; x15 keeps them exact in uint8 (0..240)


def _to_uint8(image: tf.Tensor, image_size: int, scale: float = 1.0) -> tf.Tensor:
    """(H, W, C) pixels -> uint8 (S, S, 3): bilinear resize, times `scale`, rounded; C = 1 is repeated,
    C > 3 cut."""
    image = tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size), method="bilinear")
    image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.tile(image, [1, 1, 3]), lambda: image[..., :3])
    image.set_shape((image_size, image_size, 3))
    return tf.cast(tf.clip_by_value(tf.round(image * scale), 0.0, 255.0), tf.uint8)


def _size(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    # Unknown for generator-backed datasets (e.g. tfds mocks): count once.
    return n if n >= 0 else int(ds.reduce(0, lambda count, _: count + 1))


def _from_indices(name, image_size, splits, make_split, num_classes, class_names, max_examples, labels,
                  pixel_max=255.0) -> Dataset:
    """A Dataset whose split `s` is make_split(indices of s), each index array cut to max_examples."""
    indices = {s: idx[:max_examples] for s, idx in splits.items()}
    empty = [s for s in SPLITS if len(indices[s]) == 0]
    if empty:
        total = sum(len(idx) for idx in splits.values())
        raise ValueError(f"name={name!r}: {total} examples leave the {'/'.join(empty)} split empty; "
                         f"add examples or raise validation_fraction / test_fraction")
    return Dataset(name=name, image_size=image_size, num_classes=num_classes,
                   sizes={s: len(indices[s]) for s in SPLITS}, class_names=tuple(class_names), pixel_max=pixel_max,
                   subset_fn=lambda split, positions: make_split(indices[split][positions]),
                   labels_fn=lambda split: labels[indices[split]].astype(np.int32),
                   **{s: make_split(indices[s]) for s in SPLITS})


def _digits(image_size, seed, fractions, max_examples) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)[..., None]  # values 0..16
    labels = digits.target.astype(np.int32)

    def make_split(idx):
        ds = tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))
        return ds.map(lambda x, y: (_to_uint8(x, image_size, DIGITS_SCALE), y), num_parallel_calls=tf.data.AUTOTUNE)

    splits = stratified_split(labels, *fractions, seed)
    return _from_indices("digits", image_size, splits, make_split, 10, [str(d) for d in range(10)], max_examples,
                         labels, pixel_max=16.0 * DIGITS_SCALE)


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
        return _to_uint8(image, image_size), label

    def make_split(idx):
        ds = tf.data.Dataset.from_tensor_slices((paths[idx], labels[idx]))
        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)

    splits = stratified_split(labels, *fractions, seed)
    return _from_indices(name, image_size, splits, make_split, len(class_names), class_names, max_examples, labels)


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
    image_key, label_key = keys
    label_feature = builder.info.features[label_key]
    builder.download_and_prepare()
    specs = tfds_split_specs(builder.info.splits.keys(), *fractions)

    def encoded(split):
        # Images left encoded: labels and subsets are read without decoding every image.
        ds = builder.as_dataset(split=specs[split], shuffle_files=False,
                                decoders={image_key: tfds.decode.SkipDecoding()})
        ds = ds.take(max_examples) if max_examples is not None else ds
        return ds.map(lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int32)))

    def decoded(ds):
        decode = builder.info.features[image_key].decode_example
        return ds.map(lambda x, y: (_to_uint8(decode(x), image_size), y), num_parallel_calls=tf.data.AUTOTUNE)

    def subset(split, positions):
        return decoded(_filtered(encoded(split), positions, sizes[split]))

    def split_labels(split):
        return np.fromiter(encoded(split).map(lambda x, y: y).as_numpy_iterator(), np.int32)

    data = {s: decoded(encoded(s)) for s in SPLITS}
    sizes = {s: _size(encoded(s)) for s in SPLITS}
    if not all(sizes.values()):
        raise ValueError(f"name={name!r}: empty split in {sizes} (TFDS splits {specs})")
    return Dataset(name=name, image_size=image_size, num_classes=label_feature.num_classes, sizes=sizes,
                   class_names=tuple(label_feature.names), subset_fn=subset, labels_fn=split_labels, **data)
