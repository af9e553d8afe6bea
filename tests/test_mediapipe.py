"""The real client: MediaPipe Tasks' ImageClassifier loads the exported winner as an app does (image
files in, no preprocessing code of ours) and agrees with the LiteRT interpreter."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

# A small real run on scikit-learn's digits: 16x16 images, two proxy trials, a winner trained to a
# useful accuracy, so that agreement is measured on confident and unconfident predictions alike.
RUN = ["--dataset=digits", "--image_size=16", "--max_trials=2", "--proxy_epochs=1", "--proxy_examples=300",
       "--final_epochs=6", "--calibration_images=100", "--executor=in_process"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    search_dir = tmp_path_factory.mktemp("mediapipe") / "search"
    done = subprocess.run([sys.executable, "-m", "layernas_tf.main", f"--search_dir={search_dir}", *RUN], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((search_dir / "export" / "winner" / "winner.json").read_text())
    return search_dir, record


@pytest.fixture(scope="module")
def test_pngs(exported, tmp_path_factory):
    """The test split written as PNG files at the model's input size, with their labels."""
    from PIL import Image

    from train.data import load_dataset

    data = load_dataset("digits", image_size=16, seed=0)
    pixels, labels = data.numpy_images("test", data.sizes["test"], raw=True)
    folder = tmp_path_factory.mktemp("pngs")
    paths = []
    for i, image in enumerate(pixels):
        path = folder / f"{i:04d}_{labels[i]}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths, labels


def _mediapipe_top1(model_path, paths):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model_path), max_results=1)
    names = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in paths:
            categories = classifier.classify(mp.Image.create_from_file(path)).classifications[0].categories
            names.append(categories[0].category_name)
    return names


def _interpreter_top1(model_path, paths):
    from PIL import Image

    from layernas_tf.latency.timing import predict

    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    with open(model_path, "rb") as f:
        return predict(f.read(), pixels).argmax(-1)


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_mediapipe_image_classifier_runs_the_export_as_it_is(exported, test_pngs, kind):
    _, record = exported
    paths, labels = test_pngs
    model_path = record["files"][f"tflite_{kind}"]
    names = _mediapipe_top1(model_path, paths)
    assert set(names) <= set(record["labels"]) and record["labels"] == [str(d) for d in range(10)]
    mediapipe_top1 = np.array([record["labels"].index(n) for n in names])
    interpreter_top1 = _interpreter_top1(model_path, paths)
    agreement = float(np.mean(mediapipe_top1 == interpreter_top1))
    mediapipe_accuracy = float(np.mean(mediapipe_top1 == labels))
    interpreter_accuracy = float(np.mean(interpreter_top1 == labels))
    print(f"\n{kind}: {len(paths)} PNG test images, MediaPipe/interpreter top-1 agreement {agreement:.4f}, "
          f"MediaPipe accuracy {mediapipe_accuracy:.4f}, interpreter accuracy {interpreter_accuracy:.4f}, "
          f"recorded test accuracy {record['test_accuracy'][f'tflite_{kind}']:.4f}")
    assert interpreter_accuracy == pytest.approx(record["test_accuracy"][f"tflite_{kind}"])
    assert interpreter_accuracy > 0.5  # a trained winner, so the comparison is not between two guessers
    assert agreement >= 0.99
    assert abs(mediapipe_accuracy - interpreter_accuracy) <= 0.01
