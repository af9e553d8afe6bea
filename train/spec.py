"""What a data pipeline and a training run are, as plain picklable values.

No TensorFlow here: flag validators, the coordinator and the executors use these before (or without)
loading it, and a worker process rebuilds its pipelines from a `DataSpec` instead of receiving tf.data
objects, which cannot cross a process boundary.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

SPLITS = ("train", "validation", "test")
FOLDER_PREFIX = "folder:"
MIN_IMAGE_SIZE = 8
CACHES = ("auto", "memory", "disk", "none")
OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """How a worker loads its data: `train.data.load_dataset` arguments and how the splits are batched.

    Attributes:
      dataset: 'digits', 'folder:<dir>' (the directory must be reachable from the worker) or a TFDS name.
      image_size: image side in pixels.
      seed: the split seed (and the proxy subset's).
      data_dir: TFDS data directory.
      max_examples: cap on examples per split.
      proxy_examples: proxy-train on a class-balanced subset of this many train examples (None: all).
      batch_size: examples per batch.
      cache, cache_memory_mb, cache_dir: see `train.data.Dataset.batched`.
    """

    dataset: str = "digits"
    image_size: int = 32
    seed: int = 0
    data_dir: Optional[str] = None
    max_examples: Optional[int] = None
    proxy_examples: Optional[int] = None
    batch_size: int = 32
    cache: str = "auto"
    cache_memory_mb: Optional[float] = None
    cache_dir: Optional[str] = None

    def __post_init__(self):
        if self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size={self.image_size} must be at least {MIN_IMAGE_SIZE}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be at least 1")
        if self.cache not in CACHES:
            raise ValueError(f"cache={self.cache!r}; allowed: {', '.join(CACHES)}")

    def for_final_training(self) -> "DataSpec":
        """The same data with the whole train split (no proxy subset)."""
        return dataclasses.replace(self, proxy_examples=None)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How a candidate is trained.

    Attributes:
      epochs: passes over the train split.
      batch_size: examples per step (used by callers that batch the data).
      learning_rate: peak learning rate; it decays by cosine to 0 over the run.
      optimizer: 'adam' or 'sgd' (momentum 0.9).
      steps_per_execution: training steps run per compiled call; fewer Python round trips per epoch.
    """

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 5e-3
    optimizer: str = "adam"
    steps_per_execution: int = 8

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.steps_per_execution < 1:
            raise ValueError(f"epochs, batch_size and steps_per_execution must be >= 1, got {self.epochs}, "
                             f"{self.batch_size}, {self.steps_per_execution}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
