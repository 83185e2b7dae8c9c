"""The demo path on real data: trains once, reuses afterwards, writes its summary table."""
import json

import pytest

from rnnvis import demo
from rnnvis.catalog import Catalog

pytestmark = pytest.mark.integration

# A small classifier on the real movie sentences: the cheapest demo-shaped model and baselines.
TINY = demo.DemoModel("movies-tiny", "movies", dict(
    task="classify", level="word", layers=1, emb=8, hidden=8, dropout=0.0, max_vocab=2000, lr=1e-2,
    batch_size=64, epochs=1, patience=None, lr_schedule="none", clip=1.0, cell="gru"))


def test_demo_trains_once_then_reuses(ws, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_MODELS", (TINY,))
    cat = Catalog(ws.catalog_path)
    rows = demo.prepare_demo(ws, cat, log=lambda m: None)
    assert rows[0]["status"] == "ready"
    assert "accuracy" in rows[0]["test"] and {"majority", "bow_logreg"} <= set(rows[0]["baselines"])
    runs_after_first = len(cat.runs())
    again = demo.prepare_demo(ws, cat, log=lambda m: None)
    assert len(cat.runs()) == runs_after_first  # nothing retrained
    assert again[0]["id"] == rows[0]["id"]
    summary = json.loads((ws.home / "demo.json").read_text())
    assert summary["models"][0]["model"] == "movies-tiny"
    # a changed recipe is a different demo model: it is retrained
    monkeypatch.setattr(demo, "DEMO_MODELS", (demo.DemoModel(TINY.name, TINY.data, {**TINY.config, "hidden": 6}),))
    demo.prepare_demo(ws, cat, log=lambda m: None)
    assert len(cat.runs()) == runs_after_first + 1


def test_unknown_demo_model_is_refused(ws):
    with pytest.raises(demo.RnnvisError, match="unknown demo model"):
        demo.prepare_demo(ws, Catalog(ws.catalog_path), only=["nope"], log=lambda m: None)
