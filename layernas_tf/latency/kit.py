"""Latency kits: every part of a space (and a few whole models) as `.tflite` files, timed where the model
will run, and turned into a `LatencyTable`.

Three ways to time a kit, one table format:
- on this machine with the LiteRT interpreter (`time_locally`, the default);
- on a phone or board by hand: `layernas-profile --latency_kit=DIR ...` writes the kit, the user times
  its files with TensorFlow Lite's `benchmark_model` and passes the logs back as `--latency_table`;
- on a device through a command (`time_with_command`), e.g.
  `adb shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/kit/{name} --num_threads=4`.

Conversion needs TensorFlow and runs in spawned worker processes (a few hundred one-part models per
space); timing only needs LiteRT.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import pathlib
import platform
import random
import shlex
import statistics
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging

from layernas_tf import costs
from layernas_tf.latency.block_table import (
    LatencyTable,
    LatencyTableError,
    Part,
    kit_file_name,
    key_from_file_name,
    model_id,
    model_key,
    parse_benchmark_log,
    space_parts,
    table_from_measurements,
)
from searchspaces.space import SearchSpace

CALIBRATION_MODELS = 16
MANIFEST = "manifest.json"


def calibration_encodings(space: SearchSpace, input_size: int, num_classes: int, count: int = CALIBRATION_MODELS,
                          seed: int = 0) -> List[Tuple[int, ...]]:
    """Whole models the table's intercept and scale are fitted on: the cheapest and costliest candidate,
    the default, and the rest spread evenly over MAdds among candidates drawn across the range."""
    pool = spread_pool(space, input_size, num_classes, 400, random.Random(seed))
    madds_of = costs.cost_function(space, "madds", input_size, num_classes)
    pool = sorted(set(pool) | {space.default, cheapest(space), costliest(space)}, key=madds_of)
    picks = [pool[0], pool[-1], space.default]
    for q in range(1, count):
        if len(picks) >= count:
            break
        candidate = pool[round(q * (len(pool) - 1) / count)]
        if candidate not in picks:
            picks.append(candidate)
    return picks[:count]


def cheapest(space: SearchSpace) -> Tuple[int, ...]:
    return tuple(min(range(n), key=lambda o, i=i: _option_rank(space, i, o)) for i, n in enumerate(space.num_options))


def costliest(space: SearchSpace) -> Tuple[int, ...]:
    return tuple(max(range(n), key=lambda o, i=i: _option_rank(space, i, o)) for i, n in enumerate(space.num_options))


def _option_rank(space: SearchSpace, layer: int, option: int) -> float:
    encoding = list(space.default)
    encoding[layer] = option
    return costs.candidate_costs(space, encoding).madds


def spread_pool(space: SearchSpace, input_size: int, num_classes: int, count: int, rng: random.Random
                ) -> List[Tuple[int, ...]]:
    """`count` candidates whose MAdds cover the space's whole range: each draws a level in [0, 1] and
    takes, per layer, the option at that quantile of the layer's options ordered by cost, with some
    options drawn at random (uniform random encodings crowd the middle of the range)."""
    order = [sorted(range(n), key=lambda o, i=i: _option_rank(space, i, o)) for i, n in enumerate(space.num_options)]
    pool = []
    for _ in range(count):
        level = rng.random()
        encoding = []
        for options in order:
            if rng.random() < 0.3:
                encoding.append(rng.choice(options))
            else:
                encoding.append(options[min(len(options) - 1, int(level * len(options)))])
        pool.append(tuple(encoding))
    return pool


def stratified_encodings(space: SearchSpace, input_size: int, num_classes: int, count: int, seed: int,
                         exclude: Sequence[Tuple[int, ...]] = (), bins: int = 10) -> List[Tuple[int, ...]]:
    """`count` distinct candidates, equal numbers from each of `bins` equal-width MAdds bins between the
    cheapest and the costliest candidate (not in `exclude`). Bins short of candidates lend their share
    to the others; the result is sorted by MAdds."""
    rng = random.Random(seed)
    madds_of = costs.cost_function(space, "madds", input_size, num_classes)
    low, high = madds_of(cheapest(space)), madds_of(costliest(space))
    excluded = set(map(tuple, exclude))
    by_bin: Dict[int, List[Tuple[int, ...]]] = {b: [] for b in range(bins)}
    seen = set()
    for encoding in spread_pool(space, input_size, num_classes, max(4000, 100 * count), rng) + \
            [space.random(rng) for _ in range(max(2000, 50 * count))]:
        if encoding in seen or encoding in excluded:
            continue
        seen.add(encoding)
        b = min(bins - 1, int(bins * (madds_of(encoding) - low) / max(1, high - low)))
        by_bin[b].append(encoding)
    for members in by_bin.values():
        rng.shuffle(members)
    picks: List[Tuple[int, ...]] = []
    share = count // bins
    for b in range(bins):
        picks += by_bin[b][:share]
    leftovers = [e for b in range(bins) for e in by_bin[b][share:]]
    rng.shuffle(leftovers)
    picks += leftovers[:count - len(picks)]
    return sorted(picks, key=madds_of)


# ---------------------------------------------------------------------------------------------
# Writing a kit (TensorFlow, in spawned workers)
# ---------------------------------------------------------------------------------------------


def _convert_batch(job) -> List[str]:
    """Worker: build and convert each (file name, part key or whole-model spec) of `job` into `out_dir`."""
    out_dir, quantization, items = job
    from layernas_tf import quiet

    quiet.import_tensorflow()
    import numpy as np

    import searchspaces
    from export import tflite
    from searchspaces.builder import build, build_part

    written = []
    rng = np.random.default_rng(0)
    for file_name, what in items:
        with quiet.native_output_captured():
            if what[0] == "part":
                model = build_part(Part.from_key(what[1]))
            else:
                _, space_name, encoding, input_size, num_classes = what
                space = searchspaces.get_space(space_name)
                model = build(space, encoding, (input_size, input_size, 3), num_classes)
            calibration = None
            if quantization == "int8":
                # Latency does not depend on the calibration data, so random inputs in [-1, 1] serve.
                shape = (8,) + tuple(model.inputs[0].shape[1:])
                calibration = rng.uniform(-1, 1, shape).astype(np.float32)
            flatbuffer = tflite.convert(model, quantization, calibration)
        path = pathlib.Path(out_dir) / file_name
        path.with_suffix(".tmp").write_bytes(flatbuffer)
        os.replace(path.with_suffix(".tmp"), path)  # a killed build never leaves half a file
        written.append(file_name)
        import keras

        keras.backend.clear_session()
    return written


def write_kit(out_dir: str, quantization: str, spaces: Sequence[Tuple[SearchSpace, int, int]],
              models: Optional[Dict[str, Sequence[Tuple[int, ...]]]] = None, workers: int = 2) -> dict:
    """Write every part of `spaces` ((space, input_size, num_classes), ...) and their calibration whole
    models (or `models`: model id -> encodings) as `.tflite` files into `out_dir`, plus `manifest.json`.

    Files already in `out_dir` are kept, so kits of several spaces in one directory share their common
    parts and a killed build resumes. Returns the manifest.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted: Dict[str, tuple] = {}
    manifest_spaces = {}
    for space, input_size, num_classes in spaces:
        ident = model_id(space, input_size, num_classes)
        parts = space_parts(space, input_size, num_classes)
        for key in parts:
            wanted[kit_file_name(quantization, key)] = ("part", key)
        encodings = (models or {}).get(ident) or calibration_encodings(space, input_size, num_classes)
        wanted.update(model_files(space, input_size, num_classes, quantization, encodings))
        manifest_spaces[ident] = {"search_space": space.name, "input_size": input_size, "num_classes": num_classes,
                                  "parts": len(parts), "models": [space.to_string(e) for e in encodings]}
    start = time.perf_counter()
    converted = convert_files(out_dir, quantization, wanted, workers)
    manifest = {"quantization": quantization, "spaces": manifest_spaces,
                "files": sorted(name for name in wanted), "converted": converted,
                "convert_seconds": time.perf_counter() - start}
    previous = _read_manifest(out)
    if previous and previous.get("quantization") == quantization:
        manifest["spaces"] = {**previous.get("spaces", {}), **manifest_spaces}
        manifest["files"] = sorted(set(previous.get("files", [])) | set(manifest["files"]))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def convert_files(out_dir: str, quantization: str, wanted: Dict[str, tuple], workers: int = 2) -> int:
    """Convert every file of `wanted` (file name -> ("part", key) or ("model", space name, encoding,
    input_size, num_classes)) that `out_dir` does not hold yet; returns how many were converted."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = sorted(name for name in wanted if not (out / name).exists())
    if not todo:
        return 0
    logging.info("latency kit: converting %d of %d %s models with %d worker(s) into %s", len(todo), len(wanted),
                 quantization, workers, out)
    chunks = [todo[i::max(1, workers)] for i in range(max(1, workers))]
    jobs = [(str(out), quantization, [(name, wanted[name]) for name in chunk]) for chunk in chunks if chunk]
    with concurrent.futures.ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in pool.map(_convert_batch, jobs):
            pass
    return len(todo)


def model_files(space: SearchSpace, input_size: int, num_classes: int, quantization: str,
                encodings: Sequence[Tuple[int, ...]]) -> Dict[str, tuple]:
    """Kit file names of whole models -> what `convert_files` builds for them."""
    return {kit_file_name(quantization, model_key(space, input_size, num_classes, e)):
            ("model", space.name, tuple(e), input_size, num_classes) for e in encodings}


def _read_manifest(out: pathlib.Path) -> Optional[dict]:
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------------------------------------
# Timing a kit
# ---------------------------------------------------------------------------------------------


def time_locally(paths: Sequence[str], num_threads: int = 1, passes: int = 5, pass_ms: float = 25.0,
                 min_runs: int = 10, seed: int = 0) -> Dict[str, float]:
    """Median latency (ms) of each `.tflite` file with the LiteRT interpreter on this machine.

    Each file is timed in `passes` interleaved passes (files in a new random order each pass, so slow
    drifts of the machine spread over all of them); a pass times at least `min_runs` invokes and at least
    `pass_ms` of running, after warm-up. The result is the median over passes of each pass's median.
    """
    import numpy as np

    from layernas_tf.latency.timing import _random_input, make_interpreter

    rng = np.random.default_rng(seed)
    interpreters = {}
    from layernas_tf import quiet

    for path in paths:
        with quiet.native_output_captured():  # LiteRT's XNNPACK notice
            interpreter = make_interpreter(pathlib.Path(path).read_bytes(), num_threads)
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], _random_input(detail, rng))
        for _ in range(3):
            interpreter.invoke()
        start = time.perf_counter()
        interpreter.invoke()
        once_ms = (time.perf_counter() - start) * 1e3
        interpreters[path] = (interpreter, max(min_runs, int(pass_ms / max(once_ms, 1e-3))))
    medians: Dict[str, List[float]] = {p: [] for p in paths}
    order = list(paths)
    shuffle = random.Random(seed)
    for _ in range(passes):
        shuffle.shuffle(order)
        for path in order:
            interpreter, runs = interpreters[path]
            interpreter.invoke()  # warm the caches after the previous file
            times = []
            for _ in range(runs):
                start = time.perf_counter_ns()
                interpreter.invoke()
                times.append((time.perf_counter_ns() - start) / 1e6)
            medians[path].append(statistics.median(times))
    return {p: statistics.median(v) for p, v in medians.items()}


def time_with_command(paths: Sequence[str], command: str, kit_dir: str, timeout_s: float = 600) -> Dict[str, float]:
    """Latency (ms) of each file from a command that prints `benchmark_model` output.

    `command` is formatted per file with `{tflite}` (the local path) and `{name}` (the path relative to
    `kit_dir`, for a kit pushed to a device). Raises LatencyTableError naming the file when the command
    fails or prints no `Inference timings in us` line.
    """
    results = {}
    for path in paths:
        name = os.path.relpath(path, kit_dir)
        line = command.format(tflite=shlex.quote(str(path)), name=name)
        proc = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=timeout_s)
        runs = parse_benchmark_log(proc.stdout + "\n" + proc.stderr)
        if proc.returncode != 0 or not runs:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise LatencyTableError(f"--latency_command for {name}: exit code {proc.returncode}, "
                                    f"{'no' if not runs else len(runs)} 'Inference timings in us' line(s); "
                                    f"last output: {' | '.join(tail) or '(none)'}")
        results[path] = runs[-1][1]
    return results


def measure_kit(kit_dir: str, files: Sequence[str], num_threads: int, command: Optional[str] = None,
                passes: int = 5) -> Dict[str, float]:
    """key -> ms for kit `files`, timed locally or with `command`."""
    paths = [str(pathlib.Path(kit_dir) / f) for f in files]
    timed = time_with_command(paths, command, kit_dir) if command else time_locally(paths, num_threads, passes)
    return {key_from_file_name(p)[1]: ms for p, ms in timed.items()}


def device_name(command: Optional[str], num_threads: int) -> str:
    if command:
        return f"command: {command}"
    return f"LiteRT on {platform.machine()} {platform.processor() or platform.system()}, {num_threads} thread(s)"


def build_table(spaces: Sequence[Tuple[SearchSpace, int, int]], quantization: str, num_threads: int, kit_dir: str,
                command: Optional[str] = None, workers: int = 2, base: Optional[LatencyTable] = None,
                passes: int = 5) -> LatencyTable:
    """Write (or reuse) a kit for `spaces` in `kit_dir`, time what `base` does not hold yet, and return the
    table (with `base`'s entries). `build` in the table records counts and seconds."""
    start = time.perf_counter()
    manifest = write_kit(kit_dir, quantization, spaces, workers=workers)
    convert_s = time.perf_counter() - start
    have = set(base.entries_ms) if base else set()
    calibrated = set(base.calibration) if base else set()
    wanted = []
    for space, input_size, num_classes in spaces:
        ident = model_id(space, input_size, num_classes)
        wanted += [kit_file_name(quantization, k) for k in space_parts(space, input_size, num_classes) if k not in have]
        if ident not in calibrated:
            wanted += [kit_file_name(quantization, model_key(space, input_size, num_classes, space.parse(e)))
                       for e in manifest["spaces"][ident]["models"]]
    wanted = sorted(set(wanted))
    start = time.perf_counter()
    measured = measure_kit(kit_dir, wanted, num_threads, command, passes) if wanted else {}
    time_s = time.perf_counter() - start
    if base:
        measured = {**base.entries_ms, **measured}
    ids = {model_id(s, i, n): (s, i, n) for s, i, n in spaces}
    table = table_from_measurements(measured, quantization, num_threads, device_name(command, num_threads), ids,
                                    {"kit_dir": str(kit_dir), "parts": len([k for k in measured
                                                                            if not k.startswith("model~")]),
                                     "converted": manifest["converted"], "convert_seconds": round(convert_s, 1),
                                     "timed": len(wanted), "time_seconds": round(time_s, 1)})
    if base:
        table.calibration = {**base.calibration, **table.calibration}
    logging.info("latency table (%s, %d thread(s)): %d parts; converted %d files in %.0f s, timed %d in %.0f s",
                 quantization, num_threads, table.build["parts"], manifest["converted"], convert_s, len(wanted),
                 time_s)
    return table


def default_kit_dir() -> str:
    """Where kits are converted by default: one directory per user, shared by every space and search
    (`LAYERNAS_CACHE`, else `$XDG_CACHE_HOME/layernas_tf`, else `~/.cache/layernas_tf`)."""
    base = os.environ.get("LAYERNAS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "layernas_tf")
    return os.path.join(base, "latency_kit")


def cached_table(spaces: Sequence[Tuple[SearchSpace, int, int]], quantization: str, num_threads: int,
                 kit_dir: Optional[str] = None, command: Optional[str] = None, workers: int = 2) -> LatencyTable:
    """The table for `spaces`, measured on this machine (or with `command`) and kept in the kit directory.

    Entries measured before with the same quantization, threads and command are reused, so a second
    space times only the parts the first did not have. Cost on first use: the space's parts (a few
    hundred one-part models) converted in `workers` processes and timed, a few minutes at 224.
    """
    import hashlib

    from layernas_tf.latency.block_table import load_table

    kit_dir = kit_dir or default_kit_dir()
    tag = hashlib.sha256(command.encode()).hexdigest()[:8] if command else "local"
    path = pathlib.Path(kit_dir) / f"table_{quantization}_{num_threads}t_{tag}.json"
    base = load_table(str(path), quantization, num_threads, {}) if path.exists() else None
    ids = [model_id(s, i, n) for s, i, n in spaces]
    if base and all(ident in base.calibration for ident in ids) and not any(
            base.missing(space_parts(s, i, n)) for s, i, n in spaces):
        return base
    table = build_table(spaces, quantization, num_threads, kit_dir, command, workers, base)
    table.save(str(path))
    return table
