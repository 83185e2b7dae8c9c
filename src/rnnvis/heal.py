"""Healing the workspace on open: what killed processes left behind is cleaned up or marked.

`heal(ws, catalog)` runs once per CLI command and once per server start. It is cheap: it reads the
runs table and lists a few folders' top level (the workspace, data/, downloads/, checkpoints/ and
each model's folder, recordings/); it never walks a large tree except one it removes.

- **A new catalog** (`catalog.rescan_pending`: the old one was moved aside or lost) re-registers what
  the workspace holds (`rescan`): every checkpoint folder (checkpoints/NAME/best, .../epoch-N:
  id, name, kind, config, epoch, tag and the metrics written into config.json), every fetched
  built-in data set (its dataset.json holds the whole provenance) and every complete recording
  (its store's metadata holds the model, data set, split and options). Lost for good: training
  runs with their metric series, the test metrics of best checkpoints, cached analyses and baselines.
- **Stale runs.** A run still "running" whose writer is gone (on this host: the pid is not in use,
  or is in use by a process started after the run, i.e. reused) becomes "interrupted" with an
  end time. A run of a live process stays "running": a server's own training runs in the
  server's process. A run of another host is left alone (we cannot see its processes); a run
  written before runs recorded their pid (schema 1) is interrupted only after `LEGACY_IDLE_S`
  without a new metric.
- **Temporary files** of atomic writes (`.NAME.rnnvis-PID-HOST.RANDOM.part`, see fsutil) are
  removed when their writer is gone; older unnamed ones (`.NAME.RANDOM.part`) after `PART_KEEP_S`.
- **Side copies** (`.NAME.old`, set aside while a folder is replaced) are removed when NAME exists,
  and put back as NAME when a kill came between the two renames (NAME missing), unless the new
  copy is still there (its writer may be mid-swap).
- **Recordings in progress** (`recordings/KEY.part/`, see recording/corpus.py) carry `owner.json`
  (pid, host, start time). One whose writer is alive is never touched. One whose writer is gone is
  removed at once when it holds no finished shard; with finished shards it is kept so that
  recording again resumes from them, but only for `PART_KEEP_S` after its last change, then it is
  removed (a resumable store nobody resumes is just lost disk space). One without owner.json
  (an older rnnvis, or another host's writer) is removed after `PART_KEEP_S` without change.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

from .catalog import Catalog
from .fsutil import OWNER, TEMP_NAME, host_name, host_tag, read_owner, writer_alive
from .workspace import Workspace

PART_KEEP_S = 24 * 3600  # how long a killed recording's finished shards are kept for resuming
LEGACY_IDLE_S = 24 * 3600  # a schema-1 run (no pid recorded) without a new metric this long was killed


@dataclass
class HealReport:
    """What `heal` did; `summary()` is the one line the CLI prints (empty when nothing was done)."""

    interrupted_runs: list[int] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)       # temporary files and .part stores
    freed_bytes: int = 0
    kept_parts: list[str] = field(default_factory=list)    # killed recordings kept for resuming
    registered: dict[str, int] = field(default_factory=dict)  # rescan: models, datasets, recordings
    skipped: list[str] = field(default_factory=list)       # rescan: what could not be re-registered, and why
    restored: list[str] = field(default_factory=list)      # folders put back from their `.X.old` side copy

    def summary(self) -> str:
        parts = []
        if self.registered:
            parts.append("new catalog: re-registered " + ", ".join(f"{n} {k}" for k, n in self.registered.items())
                         + " (training runs, their metrics and cached analyses are not recoverable)")
        if self.skipped:
            parts.append(f"could not re-register {len(self.skipped)} item(s): {'; '.join(self.skipped[:3])}")
        if self.interrupted_runs:
            n = len(self.interrupted_runs)
            parts.append(f"marked {n} stale run{'s' if n > 1 else ''} interrupted "
                         f"({', '.join(map(str, self.interrupted_runs))})")
        if self.removed:
            n = len(self.removed)
            parts.append(f"removed {n} leftover temporary file{'s' if n > 1 else ''} or store{'s' if n > 1 else ''}"
                         f" ({_mb(self.freed_bytes)})")
        if self.restored:
            parts.append(f"restored {', '.join(self.restored)} from the copy set aside by a write that was killed")
        if self.kept_parts:
            parts.append(f"kept {len(self.kept_parts)} interrupted recording(s) for resuming "
                         f"(removed {PART_KEEP_S // 3600} h after their last change)")
        return "rnnvis: " + "; ".join(parts) if parts else ""


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def heal(ws: Workspace, catalog: Catalog, now: float | None = None) -> HealReport:
    """Re-register the workspace into a new catalog, mark stale runs, remove leftovers (module docstring)."""
    now = time.time() if now is None else now
    report = HealReport()
    if catalog.rescan_pending:
        rescan(ws, catalog, report)
        catalog.done_rescan()
    _stale_runs(catalog, report, now)
    _leftovers(ws, report, now)
    return report


def heal_and_log(ws: Workspace, catalog: Catalog) -> HealReport:
    """`heal`, then its one-line summary on stderr (the CLI and server start call this)."""
    report = heal(ws, catalog)
    line = report.summary()
    if line:
        print(line, file=sys.stderr, flush=True)
    return report


# -- stale runs --------------------------------------------------------------------------------------
def _stale_runs(catalog: Catalog, report: HealReport, now: float) -> None:
    here, stale = host_name(), []
    for r in catalog.running_runs():
        if r["pid"] is None:  # schema 1: no writer recorded
            if now - max(r["started_at"], r["last_at"] or 0.0) > LEGACY_IDLE_S:
                stale.append(r["id"])
        elif r["host"] == here and not writer_alive(r["pid"], r["started_at"]):
            stale.append(r["id"])
    if stale:
        report.interrupted_runs = catalog.interrupt_runs(stale)


# -- leftovers ---------------------------------------------------------------------------------------
def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        try:
            return path.lstat().st_size
        except OSError:
            return 0
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _remove(path: Path, report: HealReport) -> None:
    size = _size(path)
    try:
        if path.is_dir() and not path.is_symlink():
            # renamed first, so a half-removed store never looks like a .part a rerun could resume
            gone = path.with_name(f".{path.name}.removing")
            os.replace(path, gone)
            shutil.rmtree(gone, ignore_errors=True)
        else:
            path.unlink()
    except OSError:
        return  # gone already, or not ours to remove: left for the next open
    report.removed.append(str(path))
    report.freed_bytes += size


def _last_change(path: Path) -> float:
    times = []
    for p in (path, path / OWNER, path / "shards"):
        try:
            times.append(p.stat().st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def _temp_dirs(ws: Workspace) -> list[Path]:
    dirs = [ws.home, ws.data_dir, ws.downloads_dir, ws.checkpoints_dir, ws.recordings_dir]
    try:
        dirs += [p for p in ws.checkpoints_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        pass
    return dirs


def _leftovers(ws: Workspace, report: HealReport, now: float) -> None:
    here = host_tag()
    for folder in _temp_dirs(ws):
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for p in entries:
            name = p.name
            if name.startswith(".") and name.endswith(".removing"):  # an earlier heal was killed mid-removal
                _remove(p, report)
            elif name.startswith(".") and name.endswith(".part"):
                _temp(p, here, report, now)
            elif folder == ws.recordings_dir and name.endswith(".part") and p.is_dir():
                _part_store(p, report, now)
        for p in entries:  # after the temporaries: a swap whose new copy is still there may be in progress
            if p.name.startswith(".") and p.name.endswith(".old") and len(p.name) > 5:
                _side_copy(p, report)


def _side_copy(old: Path, report: HealReport) -> None:
    """`.X.old`: the previous X, set aside while a folder is replaced (fsutil.atomic_path, a recording's
    final rename). Left by a kill: after the swap it is waste; between its two renames X is missing and
    `.X.old` is the last complete copy, so it is put back."""
    target = old.with_name(old.name[1:-4])
    if old.is_symlink() or any(old.parent.glob(f".{glob_escape(target.name)}.*.part")) or \
            Path(f"{target}.part").exists():
        return  # the new copy is still being written, or not yet judged: the next open decides
    if target.exists():
        _remove(old, report)
        return
    try:
        os.replace(old, target)
    except OSError:
        return
    report.restored.append(str(target))


def _temp(p: Path, here: str, report: HealReport, now: float) -> None:
    m = TEMP_NAME.match(p.name)
    try:
        changed = p.lstat().st_mtime
    except OSError:
        return
    if m is None or m["host"] != here:  # unnamed (older rnnvis) or another host's: only by age
        if now - changed > PART_KEEP_S:
            _remove(p, report)
    elif not writer_alive(int(m["pid"]), changed):
        _remove(p, report)


def _part_store(part: Path, report: HealReport, now: float) -> None:
    owner = read_owner(part)
    idle = now - _last_change(part) > PART_KEEP_S
    if owner is None or owner.get("host") != host_name():  # writer unknown: judged by age only
        if idle:
            _remove(part, report)
        return
    if writer_alive(owner["pid"], owner["started_at"]):
        return
    if idle or not any((part / "shards").glob("0*")):
        _remove(part, report)
    else:
        report.kept_parts.append(str(part))


# -- rescan: a new catalog re-registers the workspace ------------------------------------------------
def rescan(ws: Workspace, catalog: Catalog, report: HealReport | None = None) -> HealReport:
    """Register every checkpoint, fetched data set and complete recording found in the workspace.

    Rows the catalog already has are left as they are (they may hold more: a run id, test metrics),
    so it may run on a catalog that is not new."""
    report = report if report is not None else HealReport()
    report.registered["models"] = _rescan_models(ws, catalog, report)
    report.registered["data sets"] = _rescan_datasets(ws, catalog, report)
    report.registered["recordings"] = _rescan_recordings(ws, catalog, report)
    report.registered = {k: n for k, n in report.registered.items() if n}
    return report


def _checkpoint_dirs(ws: Workspace) -> list[Path]:
    """checkpoints/NAME/{epoch-N,best}, epochs first: a best checkpoint shares its epoch's id and must win."""
    found = []
    try:
        names = sorted(p for p in ws.checkpoints_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for folder in names:
        subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        found += sorted(subs, key=lambda p: (p.name == "best", p.name))
    return found


def _rescan_models(ws: Workspace, catalog: Catalog, report: HealReport) -> int:
    from .fsutil import sha256_file
    from .models.checkpoint import CONFIG, WEIGHTS

    known = {m["id"] for m in catalog.models()}  # rows a training wrote meanwhile hold more: kept as they are
    added: set[str] = set()
    for path in _checkpoint_dirs(ws):
        try:
            config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
            model = config["model"]
            model_id = config.get("model_id") or sha256_file(path / WEIGHTS)  # checked again on every load
            if model_id in known:
                continue
            name = (config.get("train") or {}).get("name") or path.parent.name
            tag = "best" if path.name == "best" else "epoch"
            catalog.put_model(model_id, name, path, model["kind"], model, epoch=config.get("epoch"), tag=tag,
                              metrics=config.get("metrics") or {})
            added.add(model_id)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            report.skipped.append(f"checkpoint {path} ({type(exc).__name__}: {exc})")
    return len(added)


def _rescan_datasets(ws: Workspace, catalog: Catalog, report: HealReport) -> int:
    from .data.registry import DATASETS, read_marker

    n = 0
    for name, spec in DATASETS.items():
        folder = ws.data_dir / name
        info = read_marker(folder, spec) if folder.is_dir() else None
        if info is not None and catalog.get_dataset(name) is None:
            catalog.put_dataset(name, folder, info)
            n += 1
        elif folder.is_dir():
            report.skipped.append(f"data set {name} (no valid dataset.json: fetch it again with `rnnvis data get`)")
    return n


def _rescan_recordings(ws: Workspace, catalog: Catalog, report: HealReport) -> int:
    n = 0
    try:
        stores = sorted(p for p in ws.recordings_dir.iterdir()
                        if p.is_dir() and not p.name.startswith(".") and not p.name.endswith(".part"))
    except OSError:
        return 0
    for path in stores:
        try:  # the store's own metadata (zarr.json), read without opening the store
            meta = json.loads((path / "zarr.json").read_text(encoding="utf-8"))["attributes"]["rnnvis"]
            user = meta["user"]
            if not meta.get("complete"):
                raise ValueError("not complete")
            if catalog.get_recording(user.get("key") or path.name) is not None:
                continue
            catalog.put_recording(user.get("key") or path.name, user["model_id"], user["dataset"], user["split"],
                                  user["options"], path,
                                  info={"tokens": int(meta["n_tokens"]), "streams": list(meta["stored_streams"])})
            n += 1
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            report.skipped.append(f"recording {path.name} ({type(exc).__name__}: {exc})")
    return n
