"""Picklable pieces for tests that run trials in other processes (importable by local and Ray workers)."""

import os
import time

import numpy as np


def tiny_data(n=32, size=8, seed=0, batch=16):
    """(train, validation): random 8x8 images whose label is the sign of one corner's mean."""
    import tensorflow as tf

    def split(offset):
        rng = np.random.default_rng(seed + offset)
        images = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
        labels = (images[:, :4, :4, 0].mean(axis=(1, 2)) > 0).astype(np.int32)
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)

    return split(0), split(1)


def stall_once(marker_dir):
    """tiny_data, but the first call anywhere writes its pid to `marker_dir/pid` and waits to be killed."""
    marker = os.path.join(marker_dir, "pid")
    try:  # exactly one process wins the claim, however many start at once
        claim = os.open(marker + ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return tiny_data()
    os.close(claim)
    with open(marker + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(marker + ".tmp", marker)
    time.sleep(120)
    return tiny_data()


def wait_for_pid(marker_dir, timeout=120.0):
    deadline = time.time() + timeout
    marker = os.path.join(marker_dir, "pid")
    while time.time() < deadline:
        if os.path.exists(marker):
            return int(open(marker).read())
        time.sleep(0.1)
    raise TimeoutError(f"no worker wrote {marker} within {timeout:g} s")
