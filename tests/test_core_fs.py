"""Workspace resolution and atomic writes."""
import os

import pytest

from rnnvis.fsutil import atomic_path, atomic_write_text
from rnnvis.workspace import Workspace, resolve_home


def test_home_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNVIS_HOME", str(tmp_path / "env"))
    assert resolve_home() == (tmp_path / "env").resolve()
    assert resolve_home(tmp_path / "flag") == (tmp_path / "flag").resolve()
    monkeypatch.delenv("RNNVIS_HOME")
    assert resolve_home().name == ".rnnvis"


def test_workspace_layout_and_containment(tmp_path):
    ws = Workspace.open(tmp_path / "h")
    for d in (ws.data_dir, ws.checkpoints_dir, ws.recordings_dir, ws.downloads_dir):
        assert d.is_dir()
    assert ws.contains(ws.data_dir / "x")
    assert not ws.contains(tmp_path / "elsewhere")
    assert not ws.contains(ws.data_dir / ".." / ".." / "escape")


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.json"]  # no temporary left behind


def test_atomic_directory_replace(tmp_path):
    target = tmp_path / "ckpt"
    for content in ("one", "two"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "w").write_text(content)
    assert (target / "w").read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]
