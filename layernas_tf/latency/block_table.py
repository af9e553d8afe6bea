"""Per-block latency tables: a candidate's latency as the sum of its parts' measured latencies.

Pure Python (no TensorFlow), so the searcher can query it like the analytic costs. As in Once-for-All,
ProxylessNAS and FBNet, every part of a network (stem, each block, head) is timed once as a one-part
`.tflite` model at the input shape it gets inside a candidate, keyed by what fixes its cost:

    stem-i224-c3-o16-k3-s2-ahard_swish
    block-i56-c24-x72-o40-k5-s2-q24-arelu         (input size, in/expanded/out channels, kernel,
    head-i7-c160-o960-p1280-n1000-ahard_swish      stride, squeeze channels, activation)

A candidate's latency is `intercept_ms + scale * sum(parts)`: the two coefficients are fitted on a few
whole models timed the same way, which absorbs the per-invoke overhead every one-part model pays and
any systematic gap between parts and whole models. A table holds one quantization (float or int8) and
thread count, and its entries are shared by every space whose parts have the same keys.

Files a latency kit holds are named `<quantization>~<key>.tflite` (whole models:
`<quantization>~model~<space>@<size>x<classes>~<encoding>.tflite`), so a `benchmark_model` log, which
names each graph it timed, maps back to table entries without any other file.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import pathlib
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from searchspaces.space import Architecture, SearchSpace

QUANTIZATIONS = ("float", "int8")
TABLE_FORMAT = "layernas-latency-table/1"
_FIELDS = (("input_size", "i"), ("in_filters", "c"), ("expanded_filters", "x"), ("out_filters", "o"),
           ("kernel_size", "k"), ("strides", "s"), ("se_filters", "q"), ("head_point_filters", "p"),
           ("num_classes", "n"), ("activation", "a"))
_PREFIX_TO_FIELD = {prefix: name for name, prefix in _FIELDS}
KINDS = ("stem", "block", "projection", "head")
EXHAUSTIVE_CANDIDATES = 20_000


class LatencyTableError(ValueError):
    """A malformed table, log or kit, or a table that lacks entries a search needs."""


@dataclasses.dataclass(frozen=True)
class Part:
    """One separately timed piece of a network: the stem conv, a block, or the head.

    Only the fields that fix its cost: two blocks with the same key run the same operators on the same
    shapes (a residual add follows from stride 1 and equal in/out channels).
    """

    kind: str
    input_size: int
    in_filters: int
    out_filters: int
    expanded_filters: int = 0
    kernel_size: int = 1
    strides: int = 1
    se_filters: int = 0
    head_point_filters: int = 0
    num_classes: int = 0
    activation: str = ""

    @property
    def key(self) -> str:
        defaults = {f.name: f.default for f in dataclasses.fields(Part)}
        parts = [self.kind]
        for name, prefix in _FIELDS:
            value = getattr(self, name)
            if name in ("input_size", "in_filters", "out_filters") or value != defaults[name]:
                parts.append(f"{prefix}{value}")
        return "-".join(parts)

    @classmethod
    def from_key(cls, key: str) -> "Part":
        """Parse `key` (as written by `Part.key`). Raises LatencyTableError naming the key."""
        kind, *fields = key.split("-")
        if kind not in KINDS:
            raise LatencyTableError(f"latency key {key!r}: unknown part kind {kind!r}; allowed: {', '.join(KINDS)}")
        values = {}
        for field in fields:
            name = _PREFIX_TO_FIELD.get(field[:1])
            if name is None or len(field) < 2:
                raise LatencyTableError(f"latency key {key!r}: unknown field {field!r}")
            values[name] = field[1:] if name == "activation" else _int(field[1:], key)
        missing = {"input_size", "in_filters", "out_filters"} - set(values)
        if missing:
            raise LatencyTableError(f"latency key {key!r}: missing {', '.join(sorted(missing))}")
        return cls(kind, **values)


def _int(text: str, key: str) -> int:
    if not text.isdigit():
        raise LatencyTableError(f"latency key {key!r}: {text!r} is not a whole number")
    return int(text)


def _out_size(size: int, strides: int) -> int:
    return -(-size // strides)  # 'same' padding


def architecture_parts(arch: Architecture) -> List[Part]:
    """The parts of a resolved architecture, stem first (identity blocks cost nothing and are left out)."""
    stem = arch.stem
    parts = [Part("stem", arch.input_size, 3, stem.filters, kernel_size=stem.kernel_size, strides=stem.strides,
                  activation=stem.activation or "")]
    size = _out_size(arch.input_size, stem.strides)
    channels = stem.filters
    for block in arch.blocks:
        if block.kind == "identity":
            continue
        if block.kind == "projection":
            parts.append(Part("projection", size, block.in_filters, block.out_filters, strides=block.strides))
        else:
            parts.append(Part("block", size, block.in_filters, block.out_filters, block.expanded_filters,
                              block.kernel_size, block.strides, block.se_filters, activation=block.activation))
        size = _out_size(size, block.strides)
        channels = block.out_filters
    head = arch.head_conv
    parts.append(Part("head", size, channels, head.filters if head else 0,
                      head_point_filters=arch.head_point_filters, num_classes=arch.num_classes,
                      activation=(head.activation if head else "") or ""))
    return parts


def space_parts(space: SearchSpace, input_size: int, num_classes: int) -> Dict[str, Part]:
    """Every distinct part (by key) that candidates of `space` can contain.

    A block's shapes depend on its own option and on the channels its predecessor outputs, so every
    pair of options of two neighbouring layers is resolved once, the other layers at the default and at
    their first and last options (3·sum over layers of |S_{i-1}|·|S_i| resolutions, under a second).
    Spaces of at most EXHAUSTIVE_CANDIDATES candidates are enumerated whole.
    """
    parts: Dict[str, Part] = {}
    if space.num_candidates <= EXHAUSTIVE_CANDIDATES:  # small spaces (the tabular ones): every candidate
        for encoding in itertools.product(*(range(n) for n in space.num_options)):
            for part in architecture_parts(space.resolve_unchecked(encoding, input_size, num_classes)):
                parts.setdefault(part.key, part)
        return parts
    contexts = [list(space.default), [0] * space.num_layers, [n - 1 for n in space.num_options]]
    for i in range(space.num_layers):
        previous = range(space.num_options[i - 1]) if i else [None]
        for context in contexts:
            for before in previous:
                for option in range(space.num_options[i]):
                    encoding = list(context)
                    encoding[i] = option
                    if before is not None:
                        encoding[i - 1] = before
                    arch = space.resolve_unchecked(tuple(encoding), input_size, num_classes)
                    for part in architecture_parts(arch):
                        parts.setdefault(part.key, part)
    return parts


def model_id(space: SearchSpace, input_size: int, num_classes: int) -> str:
    """The table's name for a space at one input size and class count, e.g. 'mobilenet_v3_small@224x1000'."""
    return f"{space.name}@{input_size}x{num_classes}"


def kit_file_name(quantization: str, key: str) -> str:
    return f"{quantization}~{key}.tflite"


def model_key(space: SearchSpace, input_size: int, num_classes: int, encoding: Sequence[int]) -> str:
    return f"model~{model_id(space, input_size, num_classes)}~{space.to_string(encoding)}"


@dataclasses.dataclass
class LatencyTable:
    """Measured part latencies (ms) for one quantization and thread count, plus per-space calibration.

    calibration: model id -> {"intercept_ms", "scale", "samples": [[encoding, measured_ms, parts_ms]],
    "mean_abs_error_pct"} from whole models timed with the parts.
    """

    quantization: str
    num_threads: int
    device: str
    entries_ms: Dict[str, float] = dataclasses.field(default_factory=dict)
    calibration: Dict[str, dict] = dataclasses.field(default_factory=dict)
    build: Dict[str, object] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.quantization not in QUANTIZATIONS:
            raise LatencyTableError(f"latency table quantization {self.quantization!r}; allowed: "
                                    f"{', '.join(QUANTIZATIONS)}")
        bad = {k: v for k, v in self.entries_ms.items() if not (isinstance(v, (int, float)) and math.isfinite(v)
                                                                  and v >= 0)}
        if bad:
            key, value = next(iter(bad.items()))
            raise LatencyTableError(f"latency table entry {key!r} = {value!r}: expected a finite ms value >= 0")

    def to_json(self) -> dict:
        return {"format": TABLE_FORMAT, "quantization": self.quantization, "num_threads": self.num_threads,
                "device": self.device, "entries_ms": dict(sorted(self.entries_ms.items())),
                "calibration": dict(sorted(self.calibration.items())), "build": self.build}

    def fingerprint(self) -> str:
        """SHA-256 of what predictions depend on (entries, calibration, quantization, threads)."""
        payload = self.to_json()
        payload.pop("build")
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def save(self, path: str) -> None:
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(path).write_text(json.dumps(self.to_json(), indent=1))

    def missing(self, keys: Iterable[str]) -> List[str]:
        return sorted(k for k in keys if k not in self.entries_ms)

    def merged(self, other: "LatencyTable") -> "LatencyTable":
        """This table with `other`'s entries and calibrations added (same quantization and threads)."""
        if (other.quantization, other.num_threads) != (self.quantization, self.num_threads):
            raise LatencyTableError(f"cannot merge a {other.quantization}/{other.num_threads}-thread table into a "
                                    f"{self.quantization}/{self.num_threads}-thread one")
        return dataclasses.replace(self, entries_ms={**self.entries_ms, **other.entries_ms},
                                   calibration={**self.calibration, **other.calibration},
                                   build={**self.build, **other.build})


def fit_calibration(samples: Sequence[Tuple[str, float, float]]) -> dict:
    """`measured = intercept + scale * parts` over (encoding, measured_ms, parts_ms) samples, fitted by
    least squares on relative errors (each sample weighted by 1/measured, since the goal is percent
    error and a fast model's noise is as large in percent as a slow one's), with its leave-one-out mean
    absolute error in percent."""
    if len(samples) < 2:
        raise LatencyTableError(f"calibration needs at least 2 whole models, got {len(samples)}")

    def fit(rows):
        ws = [1.0 / r[1] ** 2 for r in rows]
        xs, ys = [r[2] for r in rows], [r[1] for r in rows]
        total = sum(ws)
        mx, my = sum(w * x for w, x in zip(ws, xs)) / total, sum(w * y for w, y in zip(ws, ys)) / total
        sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs))
        scale = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys)) / sxx if sxx > 0 else 0.0
        if scale <= 0:  # degenerate spread: keep the parts' sum, fit the offset only
            scale = 1.0
        return my - scale * mx, scale

    intercept, scale = fit(samples)
    errors = []
    for i, (_, measured, parts) in enumerate(samples):
        a, b = fit(list(samples[:i]) + list(samples[i + 1:])) if len(samples) > 2 else (intercept, scale)
        errors.append(abs(a + b * parts - measured) / measured)
    return {"intercept_ms": intercept, "scale": scale, "samples": [list(s) for s in samples],
            "mean_abs_error_pct": 100.0 * sum(errors) / len(errors)}


class TableLatency:
    """A fast, picklable `encoding -> predicted latency (ms)` callable over a `LatencyTable`.

    Raises LatencyTableError at construction when the table lacks parts of the space or its
    calibration, naming how many and one of them.
    """

    def __init__(self, table: LatencyTable, space: SearchSpace, input_size: int, num_classes: int,
                 source: str = "the latency table"):
        self.table, self.space, self.input_size, self.num_classes = table, space, input_size, num_classes
        ident = model_id(space, input_size, num_classes)
        missing = table.missing(space_parts(space, input_size, num_classes))
        if missing:
            raise LatencyTableError(f"{source} lacks {len(missing)} part(s) of {ident} ({table.quantization}), "
                                    f"e.g. {missing[0]}: time the files of a latency kit for this space "
                                    "(layernas-profile --latency_kit=DIR) and pass them back")
        if ident not in table.calibration:
            raise LatencyTableError(f"{source} has no whole-model calibration for {ident}; known: "
                                    f"{', '.join(sorted(table.calibration)) or 'none'}")
        calibration = table.calibration[ident]
        self.intercept_ms, self.scale = float(calibration["intercept_ms"]), float(calibration["scale"])
        from layernas_tf.costs import pairwise_terms

        # MobileNet parts depend on one layer's option and its predecessor's: a sum of L lookups.
        self._terms = pairwise_terms(space, input_size, num_classes, self._part_values, self._resolved_parts_ms)

    def _part_values(self, arch: Architecture) -> List[float]:
        entries = self.table.entries_ms
        parts = iter(architecture_parts(arch))
        values = [entries[next(parts).key]]
        for block in arch.blocks:
            values.append(0.0 if block.kind == "identity" else entries[next(parts).key])
        values.append(entries[next(parts).key])
        return values

    def _resolved_parts_ms(self, encoding: Sequence[int]) -> float:
        return resolved_parts_ms(self.table.entries_ms, self.space, encoding, self.input_size, self.num_classes)

    def parts_ms(self, encoding: Sequence[int]) -> float:
        """Sum of the part entries of `encoding` (before calibration): per-layer lookups where the space
        decomposes that way (the MobileNet ones), else from the resolved architecture."""
        if self._terms is not None:
            return self._terms(encoding)
        return self._resolved_parts_ms(encoding)

    @property
    def pairwise(self) -> bool:
        """True when predictions are a sum of per-layer lookups on a layer's and its predecessor's options."""
        return self._terms is not None

    def __call__(self, encoding: Sequence[int]) -> float:
        return self.intercept_ms + self.scale * self.parts_ms(encoding)

    def to_json(self) -> dict:
        return {"predictor": "table", "fingerprint": self.table.fingerprint(), "quantization": self.table.quantization,
                "num_threads": self.table.num_threads, "device": self.table.device,
                "calibration": self.table.calibration[model_id(self.space, self.input_size, self.num_classes)]}


# ---------------------------------------------------------------------------------------------
# Reading tables: our JSON, a CSV or JSON of key -> ms, or raw benchmark_model logs.
# ---------------------------------------------------------------------------------------------

# benchmark_model's summary line, possibly behind an 'INFO: ' or a logcat prefix
# ('12-01 10:00:00.123  1234  1234 I tflite  : Inference timings in us: ...').
_TIMINGS = re.compile(r"Inference timings in us:.*?Inference \(avg\):\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)")
_GRAPH = re.compile(r"Graph:\s*\[([^\]]+)\]")


def parse_benchmark_log(text: str) -> List[Tuple[Optional[str], float]]:
    """(graph path or None, average inference ms) for every run in `benchmark_model` output.

    Each run prints `Graph: [path]` early and `Inference timings in us: ... Inference (avg): N` at the
    end; prefixes (`INFO:`, logcat's date/pid/tag) and exponent forms (`1.2e+06`) are accepted.
    """
    results, graph = [], None
    for line in text.splitlines():
        match = _GRAPH.search(line)
        if match:
            graph = match.group(1).strip()
            continue
        match = _TIMINGS.search(line)
        if match:
            results.append((graph, float(match.group(1)) / 1000.0))
            graph = None
    return results


def key_from_file_name(name: str) -> Tuple[str, str]:
    """(quantization, key) of a kit file name `<quantization>~<key>.tflite`."""
    base = pathlib.PurePosixPath(name.replace("\\", "/")).name
    if base.endswith(".tflite"):
        base = base[: -len(".tflite")]
    quantization, sep, key = base.partition("~")
    if not sep or quantization not in QUANTIZATIONS:
        raise LatencyTableError(f"{name!r} is not a latency kit file (<quantization>~<key>.tflite, quantization one "
                                f"of {', '.join(QUANTIZATIONS)})")
    return quantization, key


def table_from_measurements(measured_ms: Dict[str, float], quantization: str, num_threads: int, device: str,
                            spaces: Dict[str, Tuple[SearchSpace, int, int]], build: Optional[dict] = None
                            ) -> LatencyTable:
    """A table from `key -> ms` (part keys and whole-model keys), calibrating every space in `spaces`
    (model id -> (space, input_size, num_classes)) whose whole models were measured."""
    entries = {k: v for k, v in measured_ms.items() if not k.startswith("model~")}
    table = LatencyTable(quantization, num_threads, device, entries, {}, dict(build or {}))
    models: Dict[str, List[Tuple[str, float]]] = {}
    for key, ms in measured_ms.items():
        if key.startswith("model~"):
            _, ident, encoding = key.split("~", 2)
            models.setdefault(ident, []).append((encoding, ms))
    for ident, rows in models.items():
        if ident not in spaces:
            continue
        space, input_size, num_classes = spaces[ident]
        samples = [(enc, ms, resolved_parts_ms(entries, space, space.parse(enc), input_size, num_classes))
                   for enc, ms in sorted(rows)]
        table.calibration[ident] = fit_calibration(samples)
    return table


def resolved_parts_ms(entries: Dict[str, float], space: SearchSpace, encoding: Sequence[int], input_size: int,
                      num_classes: int) -> float:
    """Sum of the entries of `encoding`'s parts, from its resolved architecture.

    Raises LatencyTableError naming a part `entries` lacks.
    """
    arch = space.resolve_unchecked(tuple(encoding), input_size, num_classes)
    try:
        return sum(entries[p.key] for p in architecture_parts(arch))
    except KeyError as e:
        raise LatencyTableError(f"measurements lack part {e.args[0]} of {space.to_string(encoding)}")


def _measurements_from_text(text: str, path: str, default_quantization: str) -> Tuple[Dict[str, float], str]:
    """key -> ms from a CSV (`key,ms` rows), a flat JSON object or benchmark_model logs."""
    stripped = text.lstrip()
    if "Inference timings in us" in text:
        measured, quantizations = {}, set()
        for graph, ms in parse_benchmark_log(text):
            if graph is None:
                raise LatencyTableError(f"{path}: a benchmark_model run without a 'Graph: [...]' line; time each "
                                        "kit file with --graph=<file> and keep the whole output")
            quantization, key = key_from_file_name(graph)
            quantizations.add(quantization)
            measured[key] = ms
        return measured, _one_quantization(quantizations, path, default_quantization)
    if stripped.startswith("{"):
        raw = json.loads(text)
        return {str(k): _ms(v, k, path) for k, v in raw.items()}, default_quantization
    measured = {}
    for row in csv.reader(io.StringIO(text)):
        if not row or row[0].strip().startswith("#") or row[0].strip() in ("key", "file"):
            continue
        if len(row) < 2:
            raise LatencyTableError(f"{path}: CSV row {row!r}: expected 'key,ms'")
        key = row[0].strip()
        if key.endswith(".tflite"):
            key = key_from_file_name(key)[1]
        measured[key] = _ms(row[1], key, path)
    return measured, default_quantization


def _ms(value, key, path) -> float:
    try:
        ms = float(value)
    except (TypeError, ValueError):
        raise LatencyTableError(f"{path}: entry {key!r} = {value!r} is not a number of milliseconds")
    if not math.isfinite(ms) or ms < 0:
        raise LatencyTableError(f"{path}: entry {key!r} = {value!r}: expected a finite ms value >= 0")
    return ms


def _one_quantization(found: set, path: str, default: str) -> str:
    if len(found) > 1:
        raise LatencyTableError(f"{path}: logs mix quantizations {sorted(found)}; give one table per format")
    return next(iter(found)) if found else default


def load_table(path: str, quantization: str, num_threads: int, spaces: Dict[str, Tuple[SearchSpace, int, int]],
               device: str = "") -> LatencyTable:
    """Read a latency table from `path`: this module's JSON, a CSV or JSON of key -> ms, or raw
    `benchmark_model` logs (a file, or a directory of `*.log`/`*.txt` files).

    Raises:
      LatencyTableError: unreadable content, or a table of another quantization than `quantization`.
    """
    p = pathlib.Path(path)
    if not p.exists():
        raise LatencyTableError(f"latency table {path!r} does not exist")
    if p.is_dir():
        texts = [f.read_text(errors="replace") for f in sorted(p.iterdir()) if f.suffix in (".log", ".txt")]
        if not texts:
            raise LatencyTableError(f"latency table directory {path!r} holds no *.log or *.txt benchmark_model logs")
        text = "\n".join(texts)
    else:
        text = p.read_text(errors="replace")
    if text.lstrip().startswith("{") and '"format"' in text[:200]:
        raw = json.loads(text)
        if raw.get("format") != TABLE_FORMAT:
            raise LatencyTableError(f"{path}: unknown table format {raw.get('format')!r}; expected {TABLE_FORMAT}")
        table = LatencyTable(raw["quantization"], int(raw["num_threads"]), raw.get("device", ""),
                             {k: float(v) for k, v in raw["entries_ms"].items()}, raw.get("calibration", {}),
                             raw.get("build", {}))
    else:
        measured, found = _measurements_from_text(text, path, quantization)
        if found != quantization:
            raise LatencyTableError(f"{path}: the logs time {found} models, but the latency target is {quantization}")
        table = table_from_measurements(measured, quantization, num_threads, device or f"measured ({p.name})",
                                        spaces, {"source": str(p)})
    if table.quantization != quantization:
        raise LatencyTableError(f"{path} is a {table.quantization} table, but the latency target is {quantization}")
    return table
