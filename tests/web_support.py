"""Support for the browser tests: a workspace with tiny trained models, a live server, Chromium.

The browser is Debian's chromium (apt package `chromium`, installed by `make test` as root) driven
by Playwright through `executable_path`; Playwright's own browser download is never used.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
WEB = Path(__file__).resolve().parent.parent / "src" / "rnnvis" / "web" / "index.html"  # the built app
# Flags for a sandboxed, offline machine: no first-run, sync or component downloads.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

SENTENCES = [
    "the cat sat on the mat and the dog slept .", "a dog ran in the park with a red ball .",
    "the bird sang a song in the tall tree .", "my friend read the book about the old king .",
    "the sun is hot today so we stay inside .", "we ate the cake at noon with my mother .",
    "the king said that the war was not over .", "she did not like the cold rain in winter .",
    "the children played near the river all day .", "he never said a word about the money .",
    "a small boat sailed across the quiet lake .", "the teacher wrote ( a long ) list on the board .",
]
REVIEWS = [("a wonderful and moving film", "pos"), ("great acting and a clever story", "pos"),
           ("i loved every minute of it", "pos"), ("a delightful , funny movie", "pos"),
           ("boring and far too long", "neg"), ("the plot was dull and silly", "neg"),
           ("i did not like it at all", "neg"), ("a terrible waste of time", "neg")]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def browser_marks() -> list:
    """pytestmark of a browser test module: skipped, saying why, without chromium or the built app."""
    import pytest

    return [pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed "
                               "(`apt-get install -y chromium`; `make test` does it as root)"),
            pytest.mark.skipif(not WEB.exists(), reason="the web app is not built (`make frontend`)")]


def make_workspace(home: Path) -> Path:
    """A workspace with two word LMs (LSTM and GRU) on the same text and a sentiment classifier."""
    import torch

    from rnnvis.catalog import Catalog
    from rnnvis.data import load_user_data
    from rnnvis.models import TrainConfig, train
    from rnnvis.workspace import Workspace

    torch.manual_seed(0)
    ws = Workspace.open(home)
    cat = Catalog(ws.catalog_path)
    text = home / "lines.txt"
    text.write_text("\n".join(SENTENCES * 8))
    corpus = load_user_data(text, per_line=True, name="lines")
    for cell in ("lstm", "gru"):
        train(corpus, TrainConfig(name=f"tiny-{cell}", task="lm", level="word", cell=cell, emb=16, hidden=24,
                                  epochs=2, batch_size=8, bptt=12, device="cpu", log_every=5), ws, cat,
              progress=False)
    csv = home / "reviews.csv"
    csv.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in REVIEWS * 6))
    reviews = load_user_data(csv, label_column="label", name="reviews")
    train(reviews, TrainConfig(name="tiny-sentiment", task="classify", level="word", cell="lstm", emb=16,
                               hidden=16, epochs=3, batch_size=8, device="cpu", log_every=5), ws, cat,
          progress=False)
    cat.close()
    return home


def own_data(home: Path) -> dict:
    """Own data for the test server, as `rnnvis.serve(data=...)` gives it: the lines the word LMs were
    trained on, under the same name, so POST /api/train (the UI's "Train…") can train on them."""
    from rnnvis.data import load_user_data

    return {"lines": load_user_data(home / "lines.txt", per_line=True, name="lines")}


@contextlib.contextmanager
def live_server(home: Path, data: dict | None = None):
    """Serve the app of workspace `home` on a free loopback port, as `rnnvis.serve(block=False)` does
    for a user; yields the base URL. `data`: own data {name: texts, path or Corpus}."""
    import rnnvis

    server = rnnvis.serve(home=home, data=data, port=0, block=False, quiet=True)
    try:
        yield server.url.split("?")[0].rstrip("/")
    finally:
        server.stop()


@contextlib.contextmanager
def chromium(headless: bool = True):
    """A Playwright Chromium browser (Debian's binary)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=headless, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


DRAWN = """root => [...document.querySelectorAll(
    `${root} svg rect, ${root} svg path, ${root} svg circle, ${root} svg text, ${root} canvas, ${root} table td`)]
    .some(e => { const b = e.getBoundingClientRect(); return b.width > 0 && b.height > 0 })"""


def wait_drawn(pg, root: str) -> None:
    """Wait until `root` shows a drawn chart (visible svg marks, a canvas or a table) and no chart failed."""
    pg.wait_for_function(DRAWN, arg=root)
    pg.wait_for_function(f"() => !document.querySelector('{root} [data-test=chart-loading]')")
    assert pg.locator(f"{root} [data-test=chart-error]").count() == 0, \
        pg.locator(f"{root} [data-test=chart-error]").first.inner_text()


@contextlib.contextmanager
def checked_page(browser, timeout_ms: int, ignore=lambda text: False):
    """A fresh page (1400 x 900) that fails the test on any console error or page error, except
    console errors whose text `ignore` accepts."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(timeout_ms)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and not ignore(m.text) else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        ctx.close()
    assert not errors, f"console errors: {errors}"


def add_char_model(home: Path, name: str = "tiny-char") -> None:
    """A tiny character LM on the workspace's lines (space is one of its heaviest "words")."""
    import torch

    from rnnvis.catalog import Catalog
    from rnnvis.data import load_user_data
    from rnnvis.models import TrainConfig, train
    from rnnvis.workspace import Workspace

    torch.manual_seed(0)
    ws = Workspace.open(home)
    cat = Catalog(ws.catalog_path)
    corpus = load_user_data(home / "lines.txt", per_line=True, name="lines")
    train(corpus, TrainConfig(name=name, task="lm", level="char", cell="lstm", emb=8, hidden=16, epochs=1,
                              batch_size=8, bptt=24, device="cpu", log_every=5), ws, cat, progress=False)
    cat.close()
