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

Schema versions: `_SCHEMA` is version 1; `MIGRATIONS[n - 1]` takes version n to n + 1. Opening a
catalog applies the missing steps and records the version in `meta`, all in one transaction, then
checks that every table has the columns this version uses: a file written by another program, or
by a newer rnnvis, is refused with a clear error instead of failing later on a query.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import NotFound, RnnvisError
from .fsutil import host_name

BUSY_TIMEOUT_S = 30.0  # how long to wait for another process's write lock before "the catalog is busy"

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
    status TEXT NOT NULL,            -- running | finished | stopped | failed | interrupted (writer killed)
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


# Step n -> n + 1 is MIGRATIONS[n - 1]: (what it does, its SQL statements). Append, never edit.
MIGRATIONS: list[tuple[str, tuple[str, ...]]] = [
    ("runs record their writer (pid, host), so a killed training can be told from a running one",
     ("ALTER TABLE runs ADD COLUMN pid INTEGER", "ALTER TABLE runs ADD COLUMN host TEXT")),
]
SCHEMA_VERSION = 1 + len(MIGRATIONS)

_MOVE_ASIDE = ("move it aside (e.g. `mv {path} {path}.bad`) or point --home / RNNVIS_HOME elsewhere; a new "
               "catalog re-registers the checkpoints, fetched data sets and recordings found in the workspace "
               "(training runs with their metric series, test metrics of best checkpoints, cached analyses and "
               "baselines are lost)")


def _statements(script: str) -> list[str]:
    return [st.strip() for st in script.split(";\n") if st.strip()]


def _expected_columns() -> dict[str, set[str]]:
    """{table: columns} of the current schema, built once in memory from the schema and its migrations."""
    global _EXPECTED
    if _EXPECTED is None:
        db = sqlite3.connect(":memory:")
        for st in _statements(_SCHEMA) + [st for _, steps in MIGRATIONS for st in steps]:
            db.execute(st)
        _EXPECTED = _table_columns(db)
        db.close()
    return _EXPECTED


_EXPECTED: dict[str, set[str]] | None = None


def _table_columns(db: sqlite3.Connection) -> dict[str, set[str]]:
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
              if not r[0].startswith("sqlite_")]
    return {t: {c[1] for c in db.execute(f'PRAGMA table_info("{t}")')} for t in tables}


def _is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in str(exc)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


class Catalog:
    """Thread-safe handle on the catalog database (one connection per thread).

    `created` is True when this handle made a new, empty catalog; `rescan_pending` stays True until
    `rnnvis.heal` has re-registered what the workspace holds (whichever handle opens it next)."""

    def __init__(self, path: str | Path, timeout: float | None = None):
        self.path = Path(path)
        self.timeout = BUSY_TIMEOUT_S if timeout is None else timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.created = False
        try:
            self._open()
        except sqlite3.Error as exc:
            self.close()
            if _is_busy(exc):
                raise RnnvisError(
                    f"the catalog {self.path} is busy: another rnnvis process holds its lock (waited "
                    f"{self.timeout:g} s)", "wait for that process to finish, or stop it, then try again",
                ) from exc
            if "readonly" in str(exc):
                raise RnnvisError(f"cannot write the catalog {self.path} ({exc})",
                                  "give your user write permission on it and its folder, or use another --home"
                                  ) from exc
            raise RnnvisError(f"the catalog {self.path} is not a readable SQLite database ({exc})",
                              _MOVE_ASIDE.format(path=self.path)) from exc
        except RnnvisError:
            self.close()
            raise

    def _open(self) -> None:
        """Create or migrate the schema in one write transaction, then check it is ours."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")  # one opener at a time: two never migrate the same file
        try:
            columns = _table_columns(conn)
            if not columns:
                version = 0
            elif "meta" not in columns:
                raise self._foreign(f"it has no meta table but the tables {', '.join(sorted(columns))}")
            else:
                row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None and set(columns) != {"meta"}:  # ours always records its version with its tables
                    raise self._foreign("its meta table has no schema_version")
                try:
                    version = int(row[0]) if row is not None else 0
                except (TypeError, ValueError):
                    raise self._foreign(f"its schema_version {row[0]!r} is not a number") from None
                if version > SCHEMA_VERSION:
                    raise RnnvisError(
                        f"the catalog {self.path} was written by a newer rnnvis (schema {version}, this one "
                        f"reads up to {SCHEMA_VERSION})",
                        f"upgrade rnnvis to a version that reads schema {version}, or point --home / RNNVIS_HOME "
                        "at another folder")
            if version < 1:
                for st in _statements(_SCHEMA):
                    conn.execute(st)
                version, self.created = 1, not columns
                if self.created:  # kept until rnnvis.heal has re-registered the workspace, whoever opens it next
                    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('rescan', 'pending')")
            for n, (what, steps) in enumerate(MIGRATIONS[version - 1:], start=version):
                try:
                    for st in steps:
                        conn.execute(st)
                except sqlite3.Error as exc:
                    if _is_busy(exc):
                        raise
                    raise RnnvisError(
                        f"cannot upgrade the catalog {self.path} from schema {n} to {n + 1} ({what}): {exc}",
                        "the catalog is left as it was: " + _MOVE_ASIDE.format(path=self.path)) from exc
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
            self._check_columns(_table_columns(conn))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _check_columns(self, found: dict[str, set[str]]) -> None:
        for table, want in _expected_columns().items():
            missing = sorted(want - found.get(table, set()))
            if missing:
                raise self._foreign(f"its table {table} lacks the column(s) {', '.join(missing)}")

    def _foreign(self, why: str) -> RnnvisError:
        return RnnvisError(f"the catalog {self.path} is not an rnnvis catalog: {why}",
                           _MOVE_ASIDE.format(path=self.path))

    @property
    def rescan_pending(self) -> bool:
        """True from the catalog's creation until `done_rescan`: the workspace is not registered yet."""
        return self._conn().execute("SELECT 1 FROM meta WHERE key='rescan'").fetchone() is not None

    def done_rescan(self) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key='rescan'")

    # -- plumbing -----------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout)
            conn.row_factory = sqlite3.Row
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error:
                conn.close()
                raise
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
        """A new run, "running", written by this process (pid and host let `rnnvis.heal` spot a killed one)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs(name, config, status, started_at, source, pid, host) VALUES (?,?,?,?,?,?,?)",
                (name, _dumps(config), "running", time.time(), source, os.getpid(), host_name()),
            )
            return int(cur.lastrowid)

    def end_run(self, run_id: int, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET status=?, ended_at=? WHERE id=?", (status, time.time(), run_id))

    def interrupt_runs(self, run_ids: list[int]) -> list[int]:
        """Mark these runs "interrupted" (their writer is gone) unless they ended meanwhile; the ids marked."""
        now, done = time.time(), []
        with self._tx() as db:
            for i in run_ids:
                cur = db.execute("UPDATE runs SET status='interrupted', ended_at=? WHERE id=? AND status='running'",
                                 (now, int(i)))
                if cur.rowcount:
                    done.append(int(i))
        return done

    def running_runs(self) -> list[dict]:
        """Runs still marked "running", with their writer's pid and host and their last metric's time."""
        rows = self._conn().execute(
            "SELECT id, pid, host, started_at, (SELECT MAX(time) FROM metrics WHERE run_id=runs.id) AS last_at"
            " FROM runs WHERE status='running'").fetchall()
        return [dict(r) for r in rows]

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

