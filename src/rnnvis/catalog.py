"""The catalog: an SQLite database on disk that indexes everything in the workspace.

Tables
------
datasets    fetched built-in and registered user data sets
runs        training runs (config, status) ...
metrics     ... and their metric series: one row per (run, step, split, key)
models      checkpoints, keyed by the content hash of their weights
recordings  recorded stores, keyed by hash(weights, corpus split, options)
analyses    cached analysis results, keyed by hash(recording, analysis, params)

Keys are content hashes, so a cache entry can never be stale: changed weights,
data or parameters give a new key. Every write is one transaction.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import NotFound, RnnvisError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    info TEXT NOT NULL,              -- JSON: provenance, licence, sha256, sizes
    fetched_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    config TEXT NOT NULL,            -- JSON
    status TEXT NOT NULL,            -- running | finished | stopped | failed
    started_at REAL NOT NULL,
    ended_at REAL,
    source TEXT NOT NULL DEFAULT 'rnnvis'   -- rnnvis | tensorboard | csv
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    epoch REAL,
    split TEXT NOT NULL,             -- train | valid | test
    key TEXT NOT NULL,
    value REAL NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (run_id, step, split, key)
);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,             -- sha256 of the weights file
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,              -- lm | classifier | external
    config TEXT NOT NULL,            -- JSON
    run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    epoch INTEGER,
    tag TEXT,                        -- best | last | epoch
    metrics TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS models_name ON models(name);
CREATE TABLE IF NOT EXISTS recordings (
    key TEXT PRIMARY KEY,
    model_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    split TEXT NOT NULL,
    options TEXT NOT NULL,
    path TEXT NOT NULL,
    status TEXT NOT NULL,            -- complete (partial ones are never registered)
    info TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS analyses (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT NOT NULL,            -- JSON, or a path under the workspace
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS baselines (
    dataset TEXT NOT NULL,
    split TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,               -- hash of tokenizer + params
    metrics TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (dataset, split, kind, key)
);
"""


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


class Catalog:
    """Thread-safe handle on the catalog database (one connection per thread)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            with self._tx() as db:
                db.executescript(_SCHEMA)
                db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as exc:
            raise RnnvisError(
                f"the catalog {self.path} is not a readable SQLite database ({exc})",
                "move it aside; rnnvis creates a new one and re-registers what it finds",
            ) from exc

    # -- plumbing -----------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with conn:  # commits on success, rolls back on error
            yield conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- data sets ----------------------------------------------------------------
    def put_dataset(self, name: str, path: str | Path, info: dict) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO datasets(name, path, info, fetched_at) VALUES (?,?,?,?)",
                (name, str(path), _dumps(info), time.time()),
            )

    def get_dataset(self, name: str) -> dict | None:
        row = self._conn().execute("SELECT * FROM datasets WHERE name=?", (name,)).fetchone()
        return None if row is None else {**dict(row), "info": json.loads(row["info"])}

    # -- runs and metric series ------------------------------------------------------
    def start_run(self, name: str, config: dict, source: str = "rnnvis") -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs(name, config, status, started_at, source) VALUES (?,?,?,?,?)",
                (name, _dumps(config), "running", time.time(), source),
            )
            return int(cur.lastrowid)

    def end_run(self, run_id: int, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET status=?, ended_at=? WHERE id=?", (status, time.time(), run_id))

    def log_metrics(
        self, run_id: int, step: int, split: str, values: dict[str, float], epoch: float | None = None
    ) -> None:
        now = time.time()
        rows = [(run_id, int(step), epoch, split, k, float(v), now) for k, v in values.items()]
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO metrics(run_id, step, epoch, split, key, value, time)"
                " VALUES (?,?,?,?,?,?,?)",
                rows,
            )

    def runs(self) -> list[dict]:
        rows = self._conn().execute("SELECT * FROM runs ORDER BY id").fetchall()
        return [{**dict(r), "config": json.loads(r["config"])} for r in rows]

    def get_run(self, run_id: int) -> dict:
        row = None
        if isinstance(run_id, int) and 0 <= run_id < 2 ** 63:  # beyond SQLite's integers no run can exist
            row = self._conn().execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"no training run with id {run_id}", "see `rnnvis runs` for the list")
        return {**dict(row), "config": json.loads(row["config"])}

    def metric_series(self, run_id: int) -> dict[str, dict[str, list[tuple[int, float | None, float]]]]:
        """{split: {key: [(step, epoch, value), ...]}} ordered by step."""
        out: dict[str, dict[str, list]] = {}
        for r in self._conn().execute(
            "SELECT step, epoch, split, key, value FROM metrics WHERE run_id=? ORDER BY step", (run_id,)
        ):
            out.setdefault(r["split"], {}).setdefault(r["key"], []).append((r["step"], r["epoch"], r["value"]))
        return out

    # -- models -------------------------------------------------------------------
    def put_model(
        self,
        model_id: str,
        name: str,
        path: str | Path,
        kind: str,
        config: dict,
        run_id: int | None = None,
        epoch: int | None = None,
        tag: str | None = None,
        metrics: dict | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO models(id, name, path, kind, config, run_id, epoch, tag, metrics,"
                " created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (model_id, name, str(path), kind, _dumps(config), run_id, epoch, tag, _dumps(metrics or {}),
                 time.time()),
            )

    def update_model_metrics(self, model_id: str, metrics: dict) -> None:
        with self._tx() as db:
            db.execute("UPDATE models SET metrics=? WHERE id=?", (_dumps(metrics), model_id))

    def models(self, name: str | None = None) -> list[dict]:
        q, args = "SELECT * FROM models", ()
        if name is not None:
            q, args = q + " WHERE name=?", (name,)
        rows = self._conn().execute(q + " ORDER BY created_at", args).fetchall()
        return [self._model_row(r) for r in rows]

    def find_model(self, ref: str) -> dict:
        """A model by name (its 'best', else newest), or by content id or a unique id prefix of at least
        6 letters and digits. Matched exactly, never as a pattern: '%' or '_' in `ref` are plain characters."""
        db = self._conn()
        rows = db.execute("SELECT * FROM models WHERE name=? ORDER BY created_at DESC", (ref,)).fetchall()
        if rows:
            best = [r for r in rows if r["tag"] == "best"]
            return self._model_row((best or rows)[0])
        if len(ref) >= 6 and ref.isascii() and ref.isalnum():
            rows = db.execute("SELECT * FROM models WHERE substr(id, 1, ?) = ?", (len(ref), ref)).fetchall()
            if len(rows) == 1:
                return self._model_row(rows[0])
        names = sorted({r["name"] for r in db.execute("SELECT name FROM models")})
        raise NotFound(
            f"unknown model {ref!r}",
            f"known models: {', '.join(names)}" if names else "train one with `rnnvis train` or run `rnnvis demo`",
        )

    @staticmethod
    def _model_row(r: sqlite3.Row) -> dict:
        return {**dict(r), "config": json.loads(r["config"]), "metrics": json.loads(r["metrics"])}

    # -- recordings and analyses (caches keyed by content hash) ---------------------
    def put_recording(self, key: str, model_id: str, dataset: str, split: str, options: dict,
                      path: str | Path, info: dict | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO recordings(key, model_id, dataset, split, options, path, status, info,"
                " created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (key, model_id, dataset, split, _dumps(options), str(path), "complete", _dumps(info or {}),
                 time.time()),
            )

    def get_recording(self, key: str) -> dict | None:
        r = self._conn().execute("SELECT * FROM recordings WHERE key=?", (key,)).fetchone()
        if r is None:
            return None
        return {**dict(r), "options": json.loads(r["options"]), "info": json.loads(r["info"])}

    def remove_recording(self, key: str) -> None:
        """Forget a recording (its store was found damaged and moved aside)."""
        with self._tx() as db:
            db.execute("DELETE FROM recordings WHERE key=?", (key,))

    def recordings(self) -> list[dict]:
        rows = self._conn().execute("SELECT * FROM recordings ORDER BY created_at").fetchall()
        return [{**dict(r), "options": json.loads(r["options"]), "info": json.loads(r["info"])} for r in rows]

    def put_analysis(self, key: str, kind: str, params: dict, result: Any) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO analyses(key, kind, params, result, created_at) VALUES (?,?,?,?,?)",
                (key, kind, _dumps(params), _dumps(result), time.time()),
            )

    def get_analysis(self, key: str) -> Any | None:
        r = self._conn().execute("SELECT result FROM analyses WHERE key=?", (key,)).fetchone()
        return None if r is None else json.loads(r["result"])

    # -- baselines ------------------------------------------------------------------
    def put_baseline(self, dataset: str, split: str, kind: str, key: str, metrics: dict) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO baselines(dataset, split, kind, key, metrics, created_at)"
                " VALUES (?,?,?,?,?,?)",
                (dataset, split, kind, key, _dumps(metrics), time.time()),
            )

    def get_baseline(self, dataset: str, split: str, kind: str, key: str) -> dict | None:
        r = self._conn().execute(
            "SELECT metrics FROM baselines WHERE dataset=? AND split=? AND kind=? AND key=?",
            (dataset, split, kind, key),
        ).fetchone()
        return None if r is None else json.loads(r["metrics"])

    def baselines(self, dataset: str | None = None) -> list[dict]:
        q, args = "SELECT * FROM baselines", ()
        if dataset:
            q, args = q + " WHERE dataset=?", (dataset,)
        return [{**dict(r), "metrics": json.loads(r["metrics"])} for r in self._conn().execute(q, args)]

