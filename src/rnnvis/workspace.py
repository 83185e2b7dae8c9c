"""The one directory that holds everything rnnvis writes.

Layout (default `~/.rnnvis`, or `$RNNVIS_HOME`, or `--home`):

    data/         fetched corpora, one folder per data set
    downloads/    package archives as fetched (kept to verify checksums)
    checkpoints/  trained models: safetensors + config.json + vocab.json
    recordings/   Zarr stores of recorded states and their statistics
    catalog.sqlite  the catalog (see rnnvis.catalog)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import RnnvisError


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """`home` if given, else `$RNNVIS_HOME`, else `~/.rnnvis`."""
    if home is None:
        home = os.environ.get("RNNVIS_HOME") or Path.home() / ".rnnvis"
    return Path(home).expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    home: Path

    @classmethod
    def open(cls, home: str | os.PathLike | None = None) -> "Workspace":
        root = resolve_home(home)
        try:
            for sub in ("data", "downloads", "checkpoints", "recordings"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RnnvisError(
                f"cannot create the workspace at {root}: {exc.strerror}",
                "choose a writable folder with --home DIR or RNNVIS_HOME",
            ) from exc
        return cls(root)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def downloads_dir(self) -> Path:
        return self.home / "downloads"

    @property
    def checkpoints_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def recordings_dir(self) -> Path:
        return self.home / "recordings"

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.sqlite"

    def contains(self, path: str | os.PathLike) -> bool:
        """True when `path` resolves inside the workspace (server path checks)."""
        try:
            Path(path).resolve().relative_to(self.home)
        except ValueError:
            return False
        return True
