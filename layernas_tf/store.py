"""Durable trial store for a search directory: SQLite, one committed row per finished trial.

A searcher may propose an encoding it was already told about (random search can); such a proposal is
stored as a row with `repeat_of` set to the trial that trained it, so the log replays exactly.
Every trial is written in its own transaction as soon as it finishes (completed or failed), so a
process killed at any moment loses at most the trial that was running. The search configuration is
stored once; reopening the directory with a different configuration is refused with the list of
differences, and nothing already recorded is touched. Pure Python (sqlite3).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sqlite3
import time
from typing import Callable, Dict, List, Optional, Sequence

COMPLETED = "completed"
FAILED = "failed"
RUNNING = "running"  # handed out to a worker, no outcome yet

# Column name -> SQLite type, in table order.
COLUMNS = (("number", "INTEGER PRIMARY KEY"), ("encoding", "TEXT"), ("cost", "REAL"), ("madds", "INTEGER"),
           ("params", "INTEGER"), ("status", "TEXT"), ("reward", "REAL"), ("error", "TEXT"), ("timings", "TEXT"),
           ("finished_at", "REAL"), ("repeat_of", "INTEGER"), ("told_before", "INTEGER"), ("told_order", "INTEGER"),
           ("attempts", "INTEGER"), ("host", "TEXT"), ("device", "TEXT"))


class IncompatibleSearchError(ValueError):
    """The search directory holds a search run with different settings."""


@dataclasses.dataclass
class TrialRecord:
    number: int
    encoding: str
    cost: float
    madds: int
    params: int
    status: str
    reward: Optional[float] = None
    error: str = ""
    timings: Dict[str, float] = dataclasses.field(default_factory=dict)
    finished_at: float = 0.0
    repeat_of: Optional[int] = None  # a proposal of an encoding already stored: answered from trial `repeat_of`
    told_before: Optional[int] = None  # results the searcher had been told when this trial was handed out
    told_order: Optional[int] = None  # position of this result in the order the searcher was told (0, 1, ...)
    attempts: int = 1  # runs of this trial (a trial whose worker died is run again)
    host: str = ""
    device: str = ""

    @property
    def val_accuracy(self) -> Optional[float]:
        """The reward of a trained candidate: its validation accuracy."""
        return self.reward

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class TrialStore:
    """Trials of one search, in `search_dir/trials.sqlite`."""

    def __init__(self, search_dir: str, config: dict, upgrade: Optional[Callable[[dict], dict]] = None):
        """Open (or create) the store and check `config` against the recorded one (passed through
        `upgrade` first, which fills in settings a store recorded before they existed).

        Raises:
          IncompatibleSearchError: the directory holds a search with a different configuration; the
            message names each differing setting with its recorded and requested value.
        """
        self.dir = pathlib.Path(search_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "trials.sqlite"
        self._db = sqlite3.connect(self.path, isolation_level=None)  # autocommit; explicit transactions
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT)")
        self._create_trials_table()
        self._check_config(config, upgrade)

    def _create_trials_table(self) -> None:
        """The trials table. A store written by an earlier version is migrated in place: its rows are
        kept, a UNIQUE encoding constraint is dropped and new columns are added."""
        schema = "(" + ", ".join(f"{name} {kind}" for name, kind in COLUMNS) + ")"
        row = self._db.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='trials'").fetchone()
        if row is None:
            self._db.execute(f"CREATE TABLE trials {schema}")
            return
        existing = [r[1] for r in self._db.execute("PRAGMA table_info(trials)")]
        if existing == [name for name, _ in COLUMNS] and "UNIQUE" not in row[0]:
            return
        with self._db:
            self._db.execute("ALTER TABLE trials RENAME TO trials_before_migration")
            self._db.execute(f"CREATE TABLE trials {schema}")
            common = ", ".join(name for name, _ in COLUMNS if name in existing)
            self._db.execute(f"INSERT INTO trials ({common}) SELECT {common} FROM trials_before_migration")
            self._db.execute("DROP TABLE trials_before_migration")

    def _check_config(self, config: dict, upgrade: Optional[Callable[[dict], dict]] = None) -> None:
        recorded = {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM config")}
        requested = json.loads(json.dumps(config))  # normalise tuples etc. as stored
        if not recorded:
            with self._db:
                self._db.executemany("INSERT INTO config VALUES (?, ?)", [(k, json.dumps(v)) for k, v in requested.items()])
            return
        if upgrade is not None:
            recorded = upgrade(recorded)
        differences = _differences(recorded, requested)
        if differences:
            raise IncompatibleSearchError(
                f"{self.dir} holds a search with other settings; use a new --search_dir or the same flags. "
                "Differences: " + "; ".join(differences)
            )

    @property
    def config(self) -> dict:
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM config")}

    def add(self, record: TrialRecord) -> TrialRecord:
        """Write one trial (running, or finished) durably, in its own committed transaction."""
        if record.status != RUNNING:
            record.finished_at = record.finished_at or time.time()
        with self._db:
            self._db.execute(f"INSERT INTO trials VALUES ({', '.join('?' * len(COLUMNS))})", self._row(record))
        return record

    def update(self, record: TrialRecord) -> TrialRecord:
        """Replace the stored row of `record.number` (a running trial's outcome), in one transaction."""
        if record.status != RUNNING:
            record.finished_at = record.finished_at or time.time()
        names = [name for name, _ in COLUMNS[1:]]
        with self._db:
            cursor = self._db.execute(f"UPDATE trials SET {', '.join(n + ' = ?' for n in names)} WHERE number = ?",
                                      self._row(record)[1:] + (record.number,))
        if cursor.rowcount != 1:
            raise KeyError(f"trial {record.number} is not in the store")
        return record

    @staticmethod
    def _row(record: TrialRecord) -> tuple:
        values = dataclasses.asdict(record)
        values["timings"] = json.dumps(record.timings)
        return tuple(values[name] for name, _ in COLUMNS)

    def trials(self) -> List[TrialRecord]:
        """Every stored trial, by number (hand-out order)."""
        names = [name for name, _ in COLUMNS]
        records = []
        for row in self._db.execute(f"SELECT {', '.join(names)} FROM trials ORDER BY number"):
            values = dict(zip(names, row))
            values["timings"] = json.loads(values["timings"] or "{}")
            values["error"] = values["error"] or ""
            values["attempts"] = values["attempts"] or 1
            values["host"], values["device"] = values["host"] or "", values["device"] or ""
            records.append(TrialRecord(**values))
        return records

    def find(self, encoding: str) -> Optional[TrialRecord]:
        """The trial that trained `encoding` (not a repeat of it), or None."""
        return next((t for t in self.trials() if t.encoding == encoding and t.repeat_of is None), None)

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def summary_counts(trials: Sequence[TrialRecord]) -> Dict[str, int]:
    """Trained trials by status, and the repeated proposals answered from the store."""
    trained = [t for t in trials if t.repeat_of is None]
    return {"completed": sum(t.status == COMPLETED for t in trained), "failed": sum(t.status == FAILED for t in trained),
            "repeated": len(trials) - len(trained)}


def _differences(recorded: dict, requested: dict, prefix: str = "") -> List[str]:
    """`key: recorded X, requested Y` for each differing key (nested dicts as `outer.inner`)."""
    out = []
    for key in sorted(set(recorded) | set(requested)):
        a, b = recorded.get(key), requested.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: recorded {a!r}, requested {b!r}")
    return out
