"""`rnnvis demo`: fetch the demo corpora, train the demo models once, compare them with baselines.

The models are sized so that the first run finishes in about ten minutes on two
CPU cores; every later run finds them in the catalog (same name and same demo
key) and starts in seconds. A data set whose package client is missing is
reported and its models skipped; the rest still work.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .catalog import Catalog
from .errors import NotFound, RnnvisError
from .fsutil import atomic_write_text
from .workspace import Workspace

Log = Callable[[str], None]

# Sizes measured on 2 CPU cores (see README): a 5k-word vocabulary halves the softmax
# cost against 10k, which buys the epochs the word models need to beat Kneser-Ney.
_WORD_LM = dict(task="lm", level="word", layers=1, emb=200, hidden=200, dropout=0.2, tie_weights=True,
                max_vocab=5000, lr=3e-3, batch_size=32, bptt=35, epochs=3, patience=None,
                lr_schedule="cosine", clip=0.5)
_SENTIMENT = dict(task="classify", level="word", layers=1, emb=100, hidden=128, dropout=0.5,
                  max_vocab=12000, min_count=1, lr=3e-3, batch_size=32, epochs=6, patience=2,
                  lr_schedule="plateau", clip=1.0)
_CHAR_LM = dict(task="lm", level="char", layers=1, emb=64, hidden=256, dropout=0.0, max_vocab=None,
                lr=3e-3, batch_size=64, bptt=100, epochs=1, patience=None, lr_schedule="cosine", clip=1.0,
                max_train_tokens=6_000_000)


@dataclass(frozen=True)
class DemoModel:
    name: str
    data: str
    config: dict = field(default_factory=dict)
    data_options: dict = field(default_factory=dict)

    def key(self) -> str:
        """Changes whenever what would be trained changes, so a stale demo model is retrained."""
        blob = json.dumps([self.name, self.data, self.config, self.data_options], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("brown-lstm", "brown", {**_WORD_LM, "cell": "lstm"}),
    DemoModel("brown-gru", "brown", {**_WORD_LM, "cell": "gru", "epochs": 4, "dropout": 0.1}),
    DemoModel("movies-lstm", "movies", {**_SENTIMENT, "cell": "lstm", "pooling": "mean"}),
    DemoModel("movies-gru", "movies", {**_SENTIMENT, "cell": "gru", "pooling": "last", "dropout": 0.3}),
    DemoModel("linux-char-lstm", "linux-kernel", {**_CHAR_LM, "cell": "lstm"}),
)


def _existing(catalog: Catalog, demo: DemoModel) -> dict | None:
    try:
        model = catalog.find_model(demo.name)
    except NotFound:
        return None
    if model["run_id"] is None or not Path(model["path"]).is_dir():
        return None
    tags = catalog.get_run(model["run_id"])["config"].get("tags", {})
    return model if tags.get("demo_key") == demo.key() else None


def _log(msg: str) -> None:
    print(f"rnnvis demo: {msg}", file=sys.stderr, flush=True)


def prepare_demo(ws: Workspace, catalog: Catalog, only: Iterable[str] | None = None, device: str = "cpu",
                 log: Log = _log) -> list[dict]:
    """Fetch, train (once) and evaluate the demo models; returns one summary row per model."""
    from .baselines import compute_baselines
    from .data import fetch_dataset, load_dataset
    from .models import TrainConfig, load_checkpoint, train

    wanted = [m for m in DEMO_MODELS if not only or m.name in set(only)]
    if only and len(wanted) != len(set(only)):
        unknown = sorted(set(only) - {m.name for m in DEMO_MODELS})
        raise RnnvisError(f"unknown demo model(s): {', '.join(unknown)}",
                          f"choose from {', '.join(m.name for m in DEMO_MODELS)}")
    rows, broken = [], {}
    started = time.time()
    for name in dict.fromkeys(m.data for m in wanted):
        try:
            fetch_dataset(name, ws, catalog=catalog, log=log)
        except RnnvisError as exc:
            broken[name] = str(exc)
            log(f"skipping the models on {name!r}: {exc}")
    corpora: dict = {}
    for demo in wanted:
        if demo.data in broken:
            rows.append({"model": demo.name, "data": demo.data, "status": "skipped", "why": broken[demo.data]})
            continue
        if demo.data not in corpora:
            corpora[demo.data] = load_dataset(demo.data, ws, catalog=catalog, **demo.data_options)
        corpus = corpora[demo.data]
        model = _existing(catalog, demo)
        if model is None:
            log(f"training {demo.name} on {demo.data} (first run only)")
            config = TrainConfig(name=demo.name, device=device, tags={"demo_key": demo.key()}, **demo.config)
            result = train(corpus, config, ws, catalog, progress=True)
            if result.interrupted:
                raise KeyboardInterrupt
            model = catalog.find_model(demo.name)
        else:
            log(f"{demo.name}: already trained ({model['id'][:12]})")
        ckpt = load_checkpoint(model["path"])
        splits = corpus.split(seed=ckpt.config["split"]["seed"], fractions=tuple(ckpt.config["split"]["fractions"]))
        base = compute_baselines(corpus, splits, ckpt.tokenizer, corpus.task, ckpt.config["level"], catalog=catalog)
        rows.append({"model": demo.name, "data": demo.data, "status": "ready", "id": model["id"],
                     "test": model["metrics"].get("test", {}), "baselines": {k: v["test"] for k, v in base.items() if isinstance(v, dict) and "test" in v}})
    summary = {"models": rows, "seconds": round(time.time() - started, 1)}
    atomic_write_text(ws.home / "demo.json", json.dumps(summary, indent=2, default=str))
    for line in format_table(rows):
        log(line)
    return rows


def format_table(rows: list[dict]) -> list[str]:
    """One line per demo model: its test figure next to the baselines'."""
    out = []
    for r in rows:
        if r["status"] != "ready":
            out.append(f"{r['model']:<16} skipped: {r['why']}")
            continue
        t = r["test"]
        if "ppl" in t or "bpc" in t:
            key = "bpc" if "bpc" in t else "ppl"
        else:
            key = "accuracy"
        bases = {k: v[key] for k, v in r["baselines"].items() if key in v}
        figs = ", ".join(f"{k} {v:.4g}" for k, v in bases.items() if v is not None)
        out.append(f"{r['model']:<16} test {key} {t.get(key, float('nan')):.4g}   baselines: {figs}")
    return out
