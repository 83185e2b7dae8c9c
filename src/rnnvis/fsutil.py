"""Atomic file writes: a reader sees the old file or the complete new one, never half.

A temporary beside its target is named `.<target>.rnnvis-<pid>-<host tag>.<random>.part`, so that
`rnnvis.heal` can tell a temporary whose writer was killed (remove it) from one being written now
(keep it). `writer_alive` is that test, shared with training runs and recordings in progress.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterator

# A writer's process start time, read from /proc, may differ from the time it recorded by clock ticks
# and by the rounding of the boot time: this much slack before a pid counts as reused.
_START_SLACK_S = 2.0
OWNER = "owner.json"  # in a folder written over a long time (a recording's .part): who writes it
TEMP_NAME = re.compile(r"^\..+\.rnnvis-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.[A-Za-z0-9_]+\.part$")


def host_name() -> str:
    return socket.gethostname()


def host_tag(host: str | None = None) -> str:
    """8 hex digits naming a host in temporary file names (a host name may hold dots and dashes)."""
    return hashlib.sha1((host or host_name()).encode("utf-8")).hexdigest()[:8]


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), from /proc; None where /proc cannot tell."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat_line.rsplit(")", 1)[1].split()[19])  # field 22: start time in clock ticks after boot
        btime = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                     if ln.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def writer_alive(pid: int | None, since: float | None = None) -> bool:
    """Is the process `pid` of this host that started writing at `since` (epoch seconds) still running?

    A pid not in use is gone; a pid in use by a process that started after `since` is a reused
    pid, so the writer is gone too. Without /proc, a pid in use counts as alive."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    started = process_start_time(pid)
    return started is None or since is None or started <= since + _START_SLACK_S


def write_owner(folder: str | os.PathLike) -> None:
    """Mark this process as the writer of `folder` (pid, host, start time), replacing an earlier writer's mark."""
    atomic_write_text(Path(folder) / OWNER,
                      json.dumps({"pid": os.getpid(), "host": host_name(), "started_at": time.time()}))


def read_owner(folder: str | os.PathLike) -> dict | None:
    """The writer marked in `folder`, or None when there is no readable mark."""
    try:
        owner = json.loads((Path(folder) / OWNER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = (isinstance(owner, dict) and isinstance(owner.get("pid"), int)
          and isinstance(owner.get("started_at"), (int, float)))
    return owner if ok else None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it into place only on success.

    Works for files and directories. On any exception the temporary is removed
    and `target` is left exactly as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.rnnvis-{os.getpid()}-{host_tag()}.", suffix=".part",
                               dir=target.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_dir() and target.exists():
            # os.replace cannot replace a non-empty directory: swap via a side name.
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp_path, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp_path, target)
    except BaseException:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def read_user_file(path: str | os.PathLike) -> bytes:
    """The bytes of a user's file, which must be a regular file.

    A FIFO, socket or device is refused with a RnnvisError instead of read: reading a FIFO nobody
    writes blocks forever, and a device such as /dev/zero never ends. The file is opened without
    blocking (O_NONBLOCK: opening a FIFO returns at once; reads of a regular file ignore the flag) and
    checked on the open descriptor, so a path swapped after a check cannot slip by.
    """
    from .errors import RnnvisError

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise RnnvisError(f"cannot read {path}: {exc.strerror}", "check the path and its permissions") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise RnnvisError(f"{path} is {_kind(mode)}, not a regular file",
                              "give a regular file (save the data to a file first)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as exc:
        raise RnnvisError(f"cannot read {path}: {exc.strerror}", "check the path and its permissions") from exc
    finally:
        os.close(fd)
