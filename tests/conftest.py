import os

import pytest

# Tests never touch the user's real workspace.
os.environ.setdefault("RNNVIS_HOME", os.path.join(os.path.dirname(__file__), "..", ".rnnvis-test", "home"))


@pytest.fixture
def ws(tmp_path):
    from rnnvis.workspace import Workspace

    return Workspace.open(tmp_path / "home")


@pytest.fixture
def catalog(ws):
    from rnnvis.catalog import Catalog

    return Catalog(ws.catalog_path)
