"""The final phase of a search: train chosen candidates on the whole train split, export them as files a
phone app loads as they are, and record what was exported.

The main job's last phases and `layernas-export` run the same functions: `train_finalists` (through the
trial runner and an executor, like every trial), then `export_finalists`, then `print_exports`. Each
finalist goes to `<search_dir>/export/<name>/`: `<name>_float.tflite` and `<name>_int8.tflite` (raw
pixels in, TFLite Model Metadata with the class names), `labels.txt`, `<name>.keras`, a SavedModel and
`<name>.json`, the record of what was exported and how it scores beside the space's default architecture.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shlex
import sys
from typing import Dict, Optional, Sequence

from absl import logging

from layernas_tf.store import COMPLETED, TrialRecord
from train.spec import DataSpec, TrainSettings

EXPORT_DIR = "export"
LATENCY_PREDICTOR_FILE = "latency_predictor.json"


class NoCandidateError(ValueError):
    """No stored candidate meets the requested target."""


class FinalTrainingError(RuntimeError):
    """A finalist's final training failed."""


@dataclasses.dataclass(frozen=True)
class SearchSetup:
    """What the final phase needs to know of a search: its space, data and proxy training.

    Attributes:
      space: the search space.
      data_spec: how workers load the data (its proxy subset is dropped for final training).
      proxy_training: the proxy training settings of the search (epochs = proxy epochs).
      image_size, num_classes, bn_momentum, seed: as the search's candidates were built and trained.
      search_dir: the search directory; exports go to its `export/` folder.
      config: the search's recorded configuration (its hash tells searches apart).
      target: the search's target, described.
    """

    space: object
    data_spec: DataSpec
    proxy_training: TrainSettings
    image_size: int
    num_classes: int
    bn_momentum: float
    seed: int
    search_dir: str
    config: dict
    target: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Finalist:
    """A candidate to train and export: its export name, encoding, stored proxy trial and why it was chosen."""

    name: str
    encoding: str
    trial: Optional[TrialRecord]
    chosen_by: str


@dataclasses.dataclass(frozen=True)
class FinalSettings:
    """How finalists are trained and exported."""

    final_epochs: int = 15
    qat: bool = False
    qat_epochs: int = 2
    calibration_images: int = 200
    latency_threads: int = 1
    latency_runs: int = 50


@dataclasses.dataclass
class Exported:
    """One exported finalist: its final training outcome, the export report and the record's path."""

    finalist: Finalist
    final: object
    report: object
    record_path: str
    record: dict


def command_line(module: str) -> str:
    """The running command as a user types it: the console script (`layernas ...`) or `python -m module ...`."""
    program = os.path.basename(sys.argv[0])
    head = ["python", "-m", module] if program.endswith(".py") else [program]
    return shlex.join(head + sys.argv[1:])


def metric_value(trial: TrialRecord, metric: str) -> float:
    """A stored trial's cost in `metric` ('madds', 'params', or 'latency_ms': the stored cost of a search
    with a latency target)."""
    return {"madds": trial.madds, "params": trial.params, "latency_ms": trial.cost}[metric]


def choose(result, metric: str, max_value: float) -> TrialRecord:
    """The best completed stored trial with `metric` at most `max_value`, by the searcher's own ranking
    (`result.score`, then the reward).

    Raises:
      NoCandidateError: none meets it; the message names the cheapest stored cost.
    """
    done = [t for t in result.trials if t.status == COMPLETED and t.repeat_of is None]
    if not done:
        raise NoCandidateError("the search holds no completed trial")
    within = [t for t in done if metric_value(t, metric) <= max_value]
    if not within:
        cheapest = min(done, key=lambda t: metric_value(t, metric))
        raise NoCandidateError(f"no stored candidate has {metric} <= {max_value:,.6g}: the cheapest stored candidate "
                               f"costs {metric_value(cheapest, metric):,.6g} ({cheapest.encoding})")
    return max(within, key=lambda t: (result.score(t), t.reward, -t.number))


def stored_latency_fn(search_dir: str, space, image_size: int, num_classes: int):
    """The latency predictor a latency-target search stored in `search_dir`, or None if there is none."""
    from layernas_tf.latency.block_table import LatencyTable, TableLatency
    from layernas_tf.latency.linear_model import LatencyModel

    path = pathlib.Path(search_dir) / LATENCY_PREDICTOR_FILE
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    if stored["predictor"] == "linear":
        return LatencyModel.from_json(space, image_size, num_classes, stored["model"])
    raw = stored["table"]
    table = LatencyTable(raw["quantization"], raw["num_threads"], raw["device"], raw["entries_ms"],
                         raw["calibration"], raw.get("build", {}))
    return TableLatency(table, space, image_size, num_classes, source=str(path))


def _spec(setup: SearchSetup, number: int, encoding: str, training: TrainSettings, final: bool):
    from layernas_tf.runner import TrialSpec

    data = setup.data_spec.for_final_training() if final else setup.data_spec
    return TrialSpec(number, setup.space, setup.space.parse(encoding), data, training, training.epochs,
                     setup.image_size, setup.num_classes, bn_momentum=setup.bn_momentum, seed=setup.seed,
                     final=final, return_weights=final)


def default_trial(setup: SearchSetup, trials: Sequence[TrialRecord]) -> Optional[TrialRecord]:
    """The stored proxy trial of the space's default architecture, if the search trained it."""
    key = setup.space.to_string(setup.space.default)
    return next((t for t in trials if t.encoding == key and t.repeat_of is None and t.status == COMPLETED), None)


def train_finalists(runner, setup: SearchSetup, finalists: Sequence[Finalist], settings: FinalSettings,
                    trials: Sequence[TrialRecord]):
    """Train each finalist for `settings.final_epochs` on the whole train split through `runner` (an
    executor), and, when the search did not store it, the space's default architecture with the search's
    own proxy training (the reference the records compare with). Nothing is written to the store.

    Returns:
      (outcomes in finalist order, the default architecture's proxy validation accuracy or None).
    Raises:
      FinalTrainingError: a finalist's training failed (named with its error).
    """
    from layernas_tf.executors import run_specs

    final_training = dataclasses.replace(setup.proxy_training, epochs=settings.final_epochs)
    specs = [_spec(setup, rank, f.encoding, final_training, final=True) for rank, f in enumerate(finalists)]
    stored_default = default_trial(setup, trials)
    if stored_default is None:
        specs.append(_spec(setup, len(specs), setup.space.to_string(setup.space.default), setup.proxy_training,
                           final=False))
    outcomes = run_specs(runner, specs)
    for finalist, outcome in zip(finalists, outcomes):
        if outcome.status != COMPLETED:
            raise FinalTrainingError(f"final training of {finalist.name} {finalist.encoding} failed: {outcome.error}")
        logging.info("%s %s: validation accuracy %.4f after %d epochs (%s %s)", finalist.name, finalist.encoding,
                     outcome.reward, settings.final_epochs, outcome.host, outcome.device)
    if stored_default is not None:
        return outcomes, stored_default.reward
    return outcomes[:len(finalists)], outcomes[-1].reward


def default_reference(setup: SearchSetup, default_accuracy: Optional[float], stored: bool) -> dict:
    """The space's default architecture (the stock MobileNet) as the records show it."""
    from layernas_tf.costs import candidate_costs

    costs = candidate_costs(setup.space, setup.space.default, setup.image_size, setup.num_classes)
    return {"encoding": setup.space.to_string(setup.space.default), "madds": costs.madds, "params": costs.params,
            "proxy_val_accuracy": default_accuracy,
            "source": "stored trial of the search" if stored else "trained with the search's proxy training"}


def export_dir(setup: SearchSetup, name: str, identity: dict) -> pathlib.Path:
    """`<search_dir>/export/<name>`, or `<name>_2`, `<name>_3`, ... when that folder already holds
    other files than an export of the same search, candidate and settings (`identity`): an export is
    never overwritten by another one."""
    base = pathlib.Path(setup.search_dir) / EXPORT_DIR
    for attempt in range(1, 1000):
        folder = base / (name if attempt == 1 else f"{name}_{attempt}")
        if not folder.exists() or not any(folder.iterdir()):
            break
        record = folder / f"{folder.name}.json"
        if record.exists() and json.loads(record.read_text()).get("identity") == identity:
            break
        logging.warning("%s holds another export (or files of another search); writing to a new folder", folder)
    return folder


def export_finalists(setup: SearchSetup, data, finalists: Sequence[Finalist], finals: Sequence,
                     settings: FinalSettings, reference: dict, command: str) -> Dict[str, Exported]:
    """Export each trained finalist into its folder and write its record; returns name -> `Exported`.

    `data` is the loaded `train.data.Dataset` (calibration and test images, class names, pixel scale).

    Raises:
      ValueError: the dataset has more classes than class names (naming both counts).
    """
    from export import deploy
    from layernas_tf import quiet
    from layernas_tf.costs import candidate_costs
    from layernas_tf.runner import build_with_weights

    labels = deploy.class_labels(list(data.class_names) or None, data.num_classes)
    calibration_images, _ = data.numpy_images("train", settings.calibration_images, raw=True)
    test_images, test_labels = data.numpy_images("test", data.sizes["test"], raw=True)
    final_training = dataclasses.replace(setup.proxy_training, epochs=settings.final_epochs)
    exports = {}
    for rank, (finalist, final) in enumerate(zip(finalists, finals)):
        spec = _spec(setup, rank, finalist.encoding, final_training, final=True)
        model = build_with_weights(spec, final.weights)
        int8_model = _qat_model(model, setup, data, finalist, settings) if settings.qat else None
        costs = candidate_costs(setup.space, spec.encoding, setup.image_size, setup.num_classes)
        identity = {"search": setup.fingerprint, "encoding": finalist.encoding, "final_epochs": settings.final_epochs,
                    "qat": settings.qat, "qat_epochs": settings.qat_epochs if settings.qat else None,
                    "calibration_images": settings.calibration_images}
        folder = export_dir(setup, finalist.name, identity)
        about = {"space": setup.space.name, "encoding": finalist.encoding, "MAdds": f"{costs.madds:,}",
                 "params": f"{costs.params:,}", "target": setup.target, "dataset": data.name}
        with quiet.native_output_captured():  # converter and interpreter notices
            report = deploy.export_winner(model, str(folder), calibration_images, test_images, test_labels, int8_model,
                                          name=folder.name, num_threads=settings.latency_threads,
                                          latency_runs=settings.latency_runs, labels=labels,
                                          pixel_max=data.pixel_max, about=about)
        record = {
            "name": folder.name, "chosen_by": finalist.chosen_by, "identity": identity,
            "search_dir": str(setup.search_dir), "search_space": setup.space.name, "dataset": data.name,
            "target": setup.target, "encoding": finalist.encoding,
            "blocks": setup.space.describe(spec.encoding).split(), "madds": costs.madds, "params": costs.params,
            "proxy_val_accuracy": finalist.trial.reward if finalist.trial is not None else None,
            "final_val_accuracy": final.reward, "final_epochs": settings.final_epochs, "qat": settings.qat,
            "test_accuracy": report.accuracy, "test_images": report.test_images,
            "latency_ms": report.latency_ms, "latency_threads": report.num_threads,
            "files": {**{f"tflite_{k}": v for k, v in report.tflite.items()}, "labels": report.labels_file,
                      "keras": report.keras_file, "saved_model": report.saved_model},
            "size_bytes": report.size_bytes, "input": report.input_spec, "metadata": report.metadata,
            "output": f"float scores (int8: quantized scores) for {len(labels)} classes, in labels order",
            "labels": report.labels, "command": command, "default_architecture": reference,
        }
        record_path = folder / f"{folder.name}.json"
        record_path.write_text(json.dumps(record, indent=2))
        exports[finalist.name] = Exported(finalist, final, report, str(record_path), record)
    return exports


def _qat_model(model, setup: SearchSetup, data, finalist: Finalist, settings: FinalSettings):
    from export.qat import qat_finetune

    d = setup.data_spec
    train_ds = data.batched("train", d.batch_size, shuffle=True, seed=setup.seed, cache=d.cache,
                            cache_memory_mb=d.cache_memory_mb, cache_dir=d.cache_dir)
    return qat_finetune(model, setup.space, finalist.encoding, train_ds, settings.qat_epochs,
                        input_size=setup.image_size, num_classes=setup.num_classes)


def exports_table(exports: Dict[str, Exported]) -> str:
    """Validation and test accuracy of each format, and latency, one row per exported model."""
    lines = [f"{'model':<34} {'val_acc':>8} {'keras':>7} {'float':>7} {'int8':>7} {'float ms':>9} {'int8 ms':>8}"]
    for name, e in exports.items():
        acc, ms = e.report.accuracy, e.report.latency_ms
        lines.append(f"{e.record['name']:<34} {e.final.reward:>8.4f} {acc['keras']:>7.4f} {acc['tflite_float']:>7.4f} "
                     f"{acc['tflite_int8']:>7.4f} {ms['float']:>9.3f} {ms['int8']:>8.3f}")
    default = next(iter(exports.values())).record["default_architecture"] if exports else None
    if default is not None and default["proxy_val_accuracy"] is not None:
        lines.append(f"default architecture {default['encoding']}: {default['madds']:,} MAdds, {default['params']:,} "
                     f"params, proxy validation accuracy {default['proxy_val_accuracy']:.4f}")
    return "\n".join(lines)


LOAD_EXAMPLE = """\
load it in Python (MediaPipe Tasks, as an app does: image file in, class names out):
  import mediapipe as mp
  from mediapipe.tasks.python import BaseOptions, vision
  classifier = vision.ImageClassifier.create_from_options(vision.ImageClassifierOptions(
      base_options=BaseOptions(model_asset_path="{path}"), max_results=3))
  print(classifier.classify(mp.Image.create_from_file("image.png")).classifications[0].categories)"""


def print_exports(exports: Dict[str, Exported]) -> None:
    """The table, each exported model's files, and how to load one."""
    print(exports_table(exports))
    for name, e in exports.items():
        for warning in e.report.warnings():
            logging.warning("%s: %s", name, warning)
            print(f"WARNING {name}: {warning}")
        folder = pathlib.Path(e.record_path).parent
        files = ", ".join(pathlib.Path(p).name for p in (*e.report.tflite.values(), e.report.labels_file, e.record_path))
        print(f"{name}: {folder}/ holds {files}")
    if exports:
        first = next(iter(exports.values()))
        print(LOAD_EXAMPLE.format(path=first.report.tflite["int8"]))
