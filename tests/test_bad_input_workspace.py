"""The catalog and the workspace heal themselves (issue 17): schema migrations, foreign and newer
catalogs, a busy catalog, a lost catalog re-registered from disk, stale runs of killed trainings,
and leftover temporaries and `.part` recordings of killed writers."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rnnvis
from rnnvis import catalog as catalog_mod
from rnnvis.catalog import SCHEMA_VERSION, Catalog
from cli_support import cli_error
from rnnvis.cli import main
from rnnvis.errors import RnnvisError

TEXT = ["the cat sat on the mat .", "a dog ran in the park .", "the bird sang a song .",
        "my friend read the book .", "the sun is hot today .", "we ate the cake at noon ."]

# The catalog as rnnvis 0.1 wrote it (schema 1): what the migrations start from.
V1_RUNS = """CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, source TEXT NOT NULL DEFAULT 'rnnvis')"""


def columns(path, table):
    with sqlite3.connect(path) as db:
        return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def version_1_catalog(path):
    """A schema-1 catalog made by the old code path: today's schema minus the migrations' columns."""
    Catalog(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE runs")
        db.execute(V1_RUNS)
        db.execute("INSERT INTO runs(name, config, status, started_at) VALUES ('old', '{}', 'finished', 1.0)")
        db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")


def dead_pid() -> int:
    """The pid of a process that has exited (reaped, so not even a zombie)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def sub_env():
    return {**os.environ, "PYTHONPATH": str(Path(rnnvis.__file__).resolve().parents[1])}


# -- 1. schema migrations, foreign and newer catalogs ----------------------------------------------------
def test_a_version_1_catalog_is_migrated_in_place_and_keeps_its_rows(ws):
    version_1_catalog(ws.catalog_path)
    cat = Catalog(ws.catalog_path)
    assert {"pid", "host"} <= columns(ws.catalog_path, "runs")
    with sqlite3.connect(ws.catalog_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert [r["name"] for r in cat.runs()] == ["old"]
    assert not cat.created
    assert cat.runs()[0]["id"] != cat.start_run("new", {})


def test_a_failing_migration_leaves_the_catalog_as_it_was(ws, monkeypatch):
    version_1_catalog(ws.catalog_path)
    monkeypatch.setattr(catalog_mod, "MIGRATIONS", [*catalog_mod.MIGRATIONS, ("breaks", ("ALTER TABLE nope ADD x",))])
    monkeypatch.setattr(catalog_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(RnnvisError) as exc:
        Catalog(ws.catalog_path)
    assert f"from schema {SCHEMA_VERSION} to {SCHEMA_VERSION + 1}" in exc.value.what
    assert "left as it was" in exc.value.fix
    assert "pid" not in columns(ws.catalog_path, "runs")  # the first step was rolled back with the second
    with sqlite3.connect(ws.catalog_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"


def test_a_catalog_of_a_newer_rnnvis_is_refused_untouched(ws):
    Catalog(ws.catalog_path).close()
    with sqlite3.connect(ws.catalog_path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(RnnvisError) as exc:
        Catalog(ws.catalog_path)
    assert f"written by a newer rnnvis (schema 99, this one reads up to {SCHEMA_VERSION})" in exc.value.what
    assert "upgrade rnnvis" in exc.value.fix
    with sqlite3.connect(ws.catalog_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "99"


def test_a_foreign_database_is_refused_and_left_unchanged(ws):
    with sqlite3.connect(ws.catalog_path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    with pytest.raises(RnnvisError) as exc:
        Catalog(ws.catalog_path)
    assert "not an rnnvis catalog" in exc.value.what and "users" in exc.value.what
    assert "move it aside" in exc.value.fix and "--home" in exc.value.fix
    with sqlite3.connect(ws.catalog_path) as db:  # no rnnvis table was added to someone else's database
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["users"]


def test_a_meta_table_without_a_schema_version_beside_other_tables_is_foreign(ws):
    with sqlite3.connect(ws.catalog_path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY)")
    with pytest.raises(RnnvisError, match="its meta table has no schema_version"):
        Catalog(ws.catalog_path)
    assert columns(ws.catalog_path, "models") == set()


def test_a_models_table_with_other_columns_is_a_clear_error_everywhere(ws, capsys):
    Catalog(ws.catalog_path).close()
    with sqlite3.connect(ws.catalog_path) as db:
        db.execute("DROP TABLE models")
        db.execute("CREATE TABLE models (id TEXT PRIMARY KEY, name TEXT, weights BLOB)")
    with pytest.raises(RnnvisError) as exc:
        Catalog(ws.catalog_path)
    assert "not an rnnvis catalog" in exc.value.what and "table models lacks" in exc.value.what
    assert "kind" in exc.value.what
    line = cli_error(capsys, "models", "--home", str(ws.home))  # was: an OperationalError traceback
    assert "table models lacks" in line
    from rnnvis.server import create_app

    with pytest.raises(RnnvisError, match="not an rnnvis catalog"):  # was: GET /api/models answered 500
        create_app(ws)


# -- 2. a busy catalog is not a broken one -------------------------------------------------------------
def test_a_locked_catalog_is_reported_busy_never_moved_aside(ws, capsys, monkeypatch):
    Catalog(ws.catalog_path).close()
    other = sqlite3.connect(ws.catalog_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process writing and holding the lock
    try:
        with pytest.raises(RnnvisError) as exc:
            Catalog(ws.catalog_path, timeout=0.05)
        assert "busy" in exc.value.what and "another rnnvis process" in exc.value.what
        assert "wait" in exc.value.fix and "move" not in exc.value.fix
        monkeypatch.setattr(catalog_mod, "BUSY_TIMEOUT_S", 0.05)
        line = cli_error(capsys, "runs", "--home", str(ws.home))
        assert "busy" in line and "aside" not in line
    finally:
        other.execute("ROLLBACK")
        other.close()
    Catalog(ws.catalog_path, timeout=0.05).close()  # free again: opens


def test_a_locked_catalog_in_rollback_journal_mode_is_busy_too(ws):
    with sqlite3.connect(ws.catalog_path) as db:  # not yet in WAL mode: even reading waits for the lock
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    other = sqlite3.connect(ws.catalog_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RnnvisError) as exc:
            Catalog(ws.catalog_path, timeout=0.05)
        assert "busy" in exc.value.what and "not a readable" not in exc.value.what
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_corrupt_catalog_says_what_a_new_one_recovers_and_what_is_lost(ws):
    ws.catalog_path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(RnnvisError) as exc:
        Catalog(ws.catalog_path)
    assert "not a readable SQLite database" in exc.value.what
    fix = exc.value.fix
    assert "re-registers the checkpoints, fetched data sets and recordings" in fix
    assert "training runs with their metric series" in fix and "cached analyses" in fix and "lost" in fix


# -- 3. a new catalog re-registers what the workspace holds ------------------------------------------------
@pytest.fixture
def trained(ws, catalog, tmp_path):
    from rnnvis.data import load_user_data
    from rnnvis.models import TrainConfig, train

    path = tmp_path / "lines.txt"
    path.write_text("\n".join(TEXT * 6))
    corpus = load_user_data(path, per_line=True, name="lines")
    cfg = TrainConfig(name="tiny", task="lm", level="word", cell="gru", emb=8, hidden=12, epochs=2,
                      batch_size=4, bptt=8, device="cpu", log_every=5, seed=0)
    train(corpus, cfg, ws, catalog, progress=False)
    return path


def _lose_catalog(ws, catalog):
    catalog.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ws.catalog_path}{suffix}").unlink(missing_ok=True)


def test_a_lost_catalog_is_rebuilt_from_the_checkpoints_and_recordings_on_disk(ws, catalog, trained):
    from rnnvis.heal import heal
    from rnnvis.models import load_checkpoint
    from rnnvis.recorder import record_model

    store = record_model("tiny", ws, catalog, data=str(trained), data_options={"per_line": True},
                         split="test", progress=False)
    before = {m["id"]: (m["name"], m["tag"], m["epoch"], m["kind"], Path(m["path"]).name) for m in catalog.models()}
    best = catalog.find_model("tiny")
    recs = catalog.recordings()
    _lose_catalog(ws, catalog)

    fresh = Catalog(ws.catalog_path)
    assert fresh.created
    report = heal(ws, fresh)
    assert report.registered == {"models": len(before), "recordings": 1}  # best shares its epoch's id
    assert "re-registered" in report.summary()
    after = {m["id"]: (m["name"], m["tag"], m["epoch"], m["kind"], Path(m["path"]).name) for m in fresh.models()}
    assert after == before
    row = fresh.find_model("tiny")
    assert row["id"] == best["id"] and row["tag"] == "best" and row["config"] == best["config"]
    assert row["metrics"]["valid"] == best["metrics"]["valid"]
    assert load_checkpoint(row["path"], expected_id=row["id"]).model_id == row["id"]
    (rec,) = fresh.recordings()
    assert (rec["key"], rec["model_id"], rec["split"], rec["options"], rec["path"]) == \
        (recs[0]["key"], recs[0]["model_id"], recs[0]["split"], recs[0]["options"], recs[0]["path"])
    assert rec["info"]["tokens"] == store.n_tokens
    again = record_model("tiny", ws, fresh, data=str(trained), data_options={"per_line": True},
                         split="test", progress=False)
    assert again.path == store.path  # the recording is found again, not recorded a second time
    assert heal(ws, Catalog(ws.catalog_path)).registered == {}  # only a new catalog is rescanned


def test_the_cli_rebuilds_a_moved_catalog_and_says_so(ws, catalog, trained, capsys):
    _lose_catalog(ws, catalog)
    Catalog(ws.catalog_path).close()  # created by a Python user, who did not heal: the next command does
    assert main(["models", "--home", str(ws.home)]) == 0
    out, err = capsys.readouterr()
    assert "tiny" in out
    assert "re-registered 2 models" in err and len(err.strip().splitlines()) == 1
    assert main(["models", "--home", str(ws.home)]) == 0
    assert capsys.readouterr().err == ""  # once


def test_a_pending_rescan_keeps_the_rows_a_training_wrote_meanwhile(ws, catalog, trained):
    from rnnvis.heal import heal

    assert catalog.rescan_pending  # the fixture's catalog was created without a heal
    before = catalog.models()
    assert all(m["run_id"] is not None for m in before) and "test" in catalog.find_model("tiny")["metrics"]
    assert heal(ws, catalog).registered == {}
    assert catalog.models() == before and not catalog.rescan_pending


def test_a_fetched_data_set_is_re_registered_from_its_marker(ws):
    from rnnvis.data.registry import DATASETS, DOCUMENTS, MARKER, MARKER_FORMAT
    from rnnvis.heal import heal

    folder = ws.data_dir / "movies"  # as fetch_dataset leaves it (the fetch itself needs the network)
    folder.mkdir()
    (folder / DOCUMENTS).write_text('{"id": "0", "text": "a fine film"}\n')
    info = {"format": MARKER_FORMAT, "name": "movies", "spec_sha256": DATASETS["movies"].sha256, "sha256": "ab" * 32,
            "documents": 1, "documents_bytes": (folder / DOCUMENTS).stat().st_size, "fetched_at": 5.0}
    (folder / MARKER).write_text(json.dumps(info))
    (ws.data_dir / "brown").mkdir()  # a fetch without its marker: not recoverable, and said so
    cat = Catalog(ws.catalog_path)
    report = heal(ws, cat)
    assert cat.get_dataset("movies")["info"] == info and cat.get_dataset("movies")["path"] == str(folder)
    assert report.registered == {"data sets": 1}
    assert cat.get_dataset("brown") is None and "data set brown" in report.skipped[0]


# -- 4. stale runs ---------------------------------------------------------------------------------------
def test_a_killed_training_run_is_marked_interrupted(ws, capsys):
    Catalog(ws.catalog_path).close()
    code = ("import os, signal, sys; from rnnvis.catalog import Catalog; "
            "Catalog(sys.argv[1]).start_run('killed', {}); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(ws.catalog_path)], env=sub_env())
    assert proc.returncode == -signal.SIGKILL
    cat = Catalog(ws.catalog_path)
    live = cat.start_run("live", {})  # this process: alive, as a server's own training is
    (killed,) = [r for r in cat.runs() if r["name"] == "killed"]
    assert killed["status"] == "running" and killed["pid"] != os.getpid()

    assert main(["runs", "--home", str(ws.home)]) == 0
    out, err = capsys.readouterr()
    assert "marked 1 stale run interrupted" in err
    status = {r["name"]: r for r in cat.runs()}
    assert status["killed"]["status"] == "interrupted" and status["killed"]["ended_at"] is not None
    assert status["live"]["status"] == "running" and status["live"]["ended_at"] is None
    assert "interrupted" in out
    cat.end_run(live, "finished")


def test_stale_runs_by_pid_reuse_host_and_age(ws):
    from rnnvis.heal import LEGACY_IDLE_S, heal

    cat = Catalog(ws.catalog_path)
    ids = {n: cat.start_run(n, {}) for n in ("dead", "reused", "other-host", "legacy-old", "legacy-new", "mine")}
    now = time.time()
    with sqlite3.connect(ws.catalog_path) as db:
        db.execute("UPDATE runs SET pid=? WHERE id=?", (dead_pid(), ids["dead"]))
        db.execute("UPDATE runs SET started_at=1000.0 WHERE id=?", (ids["reused"],))  # before this process began
        db.execute("UPDATE runs SET pid=?, host='another-machine' WHERE id=?", (dead_pid(), ids["other-host"]))
        db.execute("UPDATE runs SET pid=NULL, host=NULL, started_at=? WHERE id=?",
                   (now - LEGACY_IDLE_S - 60, ids["legacy-old"]))
        db.execute("UPDATE runs SET pid=NULL, host=NULL WHERE id=?", (ids["legacy-new"],))
    report = heal(ws, cat)
    assert sorted(report.interrupted_runs) == sorted([ids["dead"], ids["reused"], ids["legacy-old"]])
    status = {r["name"]: r["status"] for r in cat.runs()}
    assert status == {"dead": "interrupted", "reused": "interrupted", "other-host": "running",
                      "legacy-old": "interrupted", "legacy-new": "running", "mine": "running"}
    assert heal(ws, cat).interrupted_runs == []  # nothing twice


# -- 5. leftover temporaries and .part recordings ----------------------------------------------------------
def test_atomic_writes_name_their_writer(tmp_path):
    from rnnvis.fsutil import TEMP_NAME, atomic_path, host_tag

    with atomic_path(tmp_path / "model.safetensors") as tmp:
        m = TEMP_NAME.match(tmp.name)
        assert m and int(m["pid"]) == os.getpid() and m["host"] == host_tag()
        tmp.write_bytes(b"weights")
    assert (tmp_path / "model.safetensors").read_bytes() == b"weights"


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(ws, capsys):
    from rnnvis.fsutil import host_tag
    from rnnvis.heal import PART_KEEP_S

    (ws.checkpoints_dir / "m").mkdir()
    dead = ws.checkpoints_dir / "m" / f".epoch-3.rnnvis-{dead_pid()}-{host_tag()}.k2j4h5g6.part"
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"\0" * 300_000)
    dead_file = ws.data_dir / f".dataset.json.rnnvis-{dead_pid()}-{host_tag()}.abcdefgh.part"
    dead_file.write_text("{}")
    live = ws.recordings_dir / f".x.rnnvis-{os.getpid()}-{host_tag()}.abcdefgh.part"
    live.write_text("being written")
    other_host = ws.home / f".y.rnnvis-{dead_pid()}-{host_tag('elsewhere')}.abcdefgh.part"
    other_host.write_text("")
    old_unnamed, new_unnamed = ws.downloads_dir / ".a.tar.gz.q1w2e3r4.part", ws.downloads_dir / ".b.q1w2e3r5.part"
    old_unnamed.write_text("")
    new_unnamed.write_text("")
    long_ago = time.time() - PART_KEEP_S - 60
    os.utime(old_unnamed, (long_ago, long_ago))

    assert main(["runs", "--home", str(ws.home)]) == 0
    err = capsys.readouterr().err
    assert "removed 3 leftover temporary files or stores (0.3 MB)" in err
    assert not dead.exists() and not dead_file.exists() and not old_unnamed.exists()
    assert live.exists() and other_host.exists() and new_unnamed.exists()
    assert list((ws.checkpoints_dir / "m").iterdir()) == []


def test_side_copies_of_a_killed_folder_swap_are_removed_or_put_back(ws):
    from rnnvis.fsutil import host_tag
    from rnnvis.heal import heal

    folder = ws.checkpoints_dir / "m"
    for name in ("epoch-1", ".epoch-1.old", ".best.old"):
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text(json.dumps({"side": name}))
    mid_swap = ws.data_dir / ".movies.old"  # a live writer between its two renames: not touched
    mid_swap.mkdir()
    (ws.data_dir / f".movies.rnnvis-{os.getpid()}-{host_tag()}.abcdefgh.part").mkdir()

    report = heal(ws, Catalog(ws.catalog_path))
    assert report.removed == [str(folder / ".epoch-1.old")]  # the swap had finished: waste
    assert report.restored == [str(folder / "best")]  # killed between the renames: the old copy is put back
    assert json.loads((folder / "best" / "config.json").read_text()) == {"side": ".best.old"}
    assert json.loads((folder / "epoch-1" / "config.json").read_text()) == {"side": "epoch-1"}
    assert mid_swap.is_dir() and not (ws.data_dir / "movies").exists()
    assert "restored" in report.summary()


@pytest.fixture
def killed_recording(ws, catalog, trained):
    """A recording stopped after its first shard (as by kill -9 or a cancel): its .part folder is left."""
    from rnnvis.recorder import record_model

    class Stop(Exception):
        pass

    def stop_after_first_shard(done, total):
        if done >= 100:
            raise Stop

    with pytest.raises(Stop):
        record_model("tiny", ws, catalog, data=str(trained), data_options={"per_line": True}, split="all",
                     progress=False, shard_tokens=20, batch_size=2, on_progress=stop_after_first_shard)
    (part,) = ws.recordings_dir.glob("*.part")
    assert any((part / "shards").glob("0*"))
    return part


def _set_owner(part, pid):
    owner = json.loads((part / "owner.json").read_text())
    (part / "owner.json").write_text(json.dumps({**owner, "pid": pid}))


def test_a_killed_recording_is_kept_for_resuming_for_a_bounded_time(ws, catalog, trained, killed_recording):
    from rnnvis.heal import PART_KEEP_S, heal
    from rnnvis.recorder import record_model

    part = killed_recording
    owner = json.loads((part / "owner.json").read_text())
    assert owner["pid"] == os.getpid()
    assert heal(ws, catalog, now=time.time() + 10 * PART_KEEP_S).removed == []  # its writer lives: never removed
    _set_owner(part, dead_pid())
    report = heal(ws, catalog)
    assert report.kept_parts == [str(part)] and report.removed == [] and part.is_dir()
    store = record_model("tiny", ws, catalog, data=str(trained), data_options={"per_line": True}, split="all",
                         progress=False, shard_tokens=20, batch_size=2)  # resumes from the kept shards
    assert not part.exists() and not (store.path / "owner.json").exists()


def test_a_killed_recording_is_removed_after_the_bound_or_at_once_without_shards(ws, catalog, killed_recording):
    from rnnvis.heal import PART_KEEP_S, heal

    part = killed_recording
    _set_owner(part, dead_pid())
    report = heal(ws, catalog, now=time.time() + PART_KEEP_S + 60)
    assert report.removed == [str(part)] and report.freed_bytes > 0 and not part.exists()
    assert not list(ws.recordings_dir.iterdir())

    empty = ws.recordings_dir / "k2.part"
    (empty / "shards").mkdir(parents=True)
    (empty / "owner.json").write_text(json.dumps({"pid": dead_pid(), "host": _host(), "started_at": time.time()}))
    assert heal(ws, catalog).removed == [str(empty)]


def test_a_part_without_owner_is_removed_only_when_idle_long(ws, catalog):
    from rnnvis.heal import PART_KEEP_S, heal

    part = ws.recordings_dir / "legacy.part"
    (part / "shards" / "00000").mkdir(parents=True)
    assert heal(ws, catalog).removed == []
    assert heal(ws, catalog, now=time.time() + PART_KEEP_S + 60).removed == [str(part)]


def _host():
    from rnnvis.fsutil import host_name

    return host_name()
