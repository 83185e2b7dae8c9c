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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors run ~5x faster on one thread (no thread-pool spin-up for each op)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Playwright, one per test module (browser tests only)."""
    from web_support import chromium

    with chromium() as b:
        yield b
