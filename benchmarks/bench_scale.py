"""Corpus-scale recording and analyses (a script, not a test): the whole Linux kernel char corpus.

With the demo char LSTM (`linux-char-lstm`: 1 layer, 256 units, trained by `rnnvis demo`; trained
here with the same recipe when the workspace lacks it, or `--model REF`):

1. record the whole `linux-kernel` corpus (train, valid and test documents) into a fresh view
   recording (`record_model(..., split="all", workers=N)`, N = 2 by default), in a temporary
   workspace that shares the model and the data, so a cached recording is never timed; then its
   first `THROUGHPUT_TOKENS` (100k with --quick) again with the other worker count (1), for
   tokens/s with 1 and with 2 recording workers (local Dask clusters, start-up included);
2. build the pattern index of `layer0.fwd.h` at θ = 0.5 (`open_pattern_index`);
3. rank every unit against the char annotations over every token (`explore.discovery.rank_store`);
4. the LM error taxonomy of every token, the n-gram oracle fitted on the training split included
   (`explore.taxonomy.fit_oracle` + `taxonomy_store`).

Peak RSS is the largest sum of the resident memory of this process and its children, sampled
every 0.1 s (and never below `ru_maxrss` of either), overall and per step. Last line:

    RESULT record_s=... discovery_s=... taxonomy_s=... index_s=... peak_rss_mb=... workers1_tok_s=... workers2_tok_s=...

    python benchmarks/bench_scale.py [--home DIR] [--model REF] [--workers N] [--quick]

`--quick` runs on the first 1M characters, with the oracle fitted on 1M training characters, and,
without a demo model, trains `linux-char-lstm-quick` (the demo recipe on 300k training characters)
— under 2 minutes once the data and the model exist, on two otherwise idle cores.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

DATA = "linux-kernel"
MODEL = "linux-char-lstm"
QUICK_MODEL = "linux-char-lstm-quick"
QUICK_CHARS = 1_000_000
QUICK_TRAIN_TOKENS = 300_000
QUICK_ORACLE_TOKENS = 1_000_000
THROUGHPUT_TOKENS = 2_000_000  # tokens recorded with the other worker count (full corpus)
QUICK_THROUGHPUT_TOKENS = 100_000  # the same with --quick
STREAM = "layer0.fwd.h"
THETA = 0.5


class Peak:
    """Largest resident memory of this process plus its children, sampled in a thread."""

    def __init__(self, every: float = 0.1):
        self.proc, self.every = psutil.Process(), every
        self.peak = self.step = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:  # a child that just ended
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.sample()
            self.peak, self.step = max(self.peak, rss), max(self.step, rss)
            self._stop.wait(self.every)

    def start_step(self) -> None:
        self.step = self.sample()

    def peak_mb(self) -> float:
        """The sampled peak, never below the kernel's high-water mark of this process or of a child."""
        maxrss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                     resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024  # KiB on Linux
        return max(self.peak, maxrss) / 2 ** 20

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def log(msg: str) -> None:
    print(f"bench_scale: {msg}", file=sys.stderr, flush=True)


def ensure_model(ws, cat, ref: str | None, quick: bool) -> str:
    """The model to measure: `ref`, the demo model, or (trained here with the demo recipe) either."""
    from rnnvis.demo import DEMO_MODELS, prepare_demo
    from rnnvis.errors import NotFound

    if ref:
        return ref
    for name in ((MODEL, QUICK_MODEL) if quick else (MODEL,)):
        try:
            if Path(cat.find_model(name)["path"]).is_dir():
                return name
        except NotFound:
            pass
    if not quick:
        log(f"training {MODEL} with the demo recipe (many minutes, once)")
        prepare_demo(ws, cat, only=[MODEL])
        return MODEL
    from rnnvis.data import load_dataset
    from rnnvis.models import TrainConfig, train

    demo = next(m for m in DEMO_MODELS if m.name == MODEL)
    log(f"no {MODEL} in the workspace: training {QUICK_MODEL} (its recipe on {QUICK_TRAIN_TOKENS:,} characters)")
    cfg = TrainConfig(name=QUICK_MODEL, **{**demo.config, "max_train_tokens": QUICK_TRAIN_TOKENS})
    train(load_dataset(DATA, ws, catalog=cat), cfg, ws, cat, progress=False)
    return QUICK_MODEL


def scratch_home(ws, parent: Path) -> Path:
    """A fresh workspace sharing the catalog (a copy: models) and the fetched data of `ws`."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=parent))
    src, dst = sqlite3.connect(ws.catalog_path), sqlite3.connect(home / ws.catalog_path.name)
    with dst:
        src.backup(dst)  # a consistent copy, write-ahead log included
    src.close()
    dst.close()
    for sub in ("data", "downloads"):
        if (ws.home / sub).exists():
            (home / sub).symlink_to(ws.home / sub)
    return home


def record(home: Path, ref: str, max_tokens: int | None, workers: int):
    """(store, seconds, tokens/s) of a fresh recording of every split of the corpus by `workers` Dask workers
    (the seconds include starting the local cluster)."""
    from rnnvis import Catalog, Workspace, record_model

    ws = Workspace.open(home)
    cat = Catalog(ws.catalog_path)
    t = time.perf_counter()
    store = record_model(ref, ws, cat, split="all", workers=workers, max_tokens=max_tokens, progress=False)
    s = time.perf_counter() - t
    return store, s, store.n_tokens / s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", default=None, help="workspace with the data and models (default: rnnvis' own)")
    ap.add_argument("--model", default=None, help=f"model to measure (default {MODEL})")
    ap.add_argument("--workers", type=int, default=2, help="recording workers of the main recording")
    ap.add_argument("--quick", action="store_true", help=f"the first {QUICK_CHARS:,} characters only")
    ap.add_argument("--scratch", default=None, help="folder for the fresh recordings (default: a temporary one)")
    args = ap.parse_args()

    from rnnvis import Catalog, Workspace
    from rnnvis.data import fetch_dataset, load_dataset
    from rnnvis.explore.discovery import CHAR_ANNOTATIONS, rank_store
    from rnnvis.explore.taxonomy import categories_path, fit_oracle, taxonomy_store
    from rnnvis.explore.session import one_blas_thread
    from rnnvis.recorder import load_model

    ws = Workspace.open(args.home) if args.home else Workspace.open()
    cat = Catalog(ws.catalog_path)
    fetch_dataset(DATA, ws, catalog=cat, log=log)
    ref = ensure_model(ws, cat, args.model, args.quick)
    limit = QUICK_CHARS if args.quick else None
    parent = Path(args.scratch or tempfile.mkdtemp(prefix="rnnvis-bench-scale-"))
    parent.mkdir(parents=True, exist_ok=True)
    peak = Peak()
    steps: dict[str, float] = {}
    try:
        log(f"recording {DATA} ({'first ' + format(limit, ',') + ' characters' if limit else 'every split'}) "
            f"with {ref}, {args.workers} worker(s)")
        peak.start_step()
        store, record_s, tok_s = record(scratch_home(ws, parent), ref, limit, args.workers)
        steps["record"] = peak.step
        log(f"{store.n_tokens:,} tokens recorded in {record_s:.1f} s ({tok_s:,.0f} tokens/s)")
        rates = {args.workers: tok_s}
        other = 1 if args.workers != 1 else 2
        n_other = min(store.n_tokens, QUICK_THROUGHPUT_TOKENS if args.quick else THROUGHPUT_TOKENS)
        log(f"recording {n_other:,} tokens again with {other} worker(s)")
        peak.start_step()
        rates[other] = record(scratch_home(ws, parent), ref, n_other, other)[2]
        steps[f"record with {other} worker(s)"] = peak.step

        from rnnvis.analysis import open_pattern_index

        blas = one_blas_thread()  # the analyses run as the app's analysis jobs do
        blas.__enter__()
        peak.start_step()
        t = time.perf_counter()
        idx = open_pattern_index(store, STREAM, THETA)
        index_s = time.perf_counter() - t
        steps["index"] = peak.step
        log(f"pattern index: {int(idx.offsets[-1]):,} runs in {index_s:.1f} s")

        ckpt = load_model(ref, ws, cat)
        tok = ckpt.tokenizer
        itos = tok.vocab.itos
        peak.start_step()
        t = time.perf_counter()
        found, _ = rank_store(store, lambda ids: [itos[int(i)] if 0 <= i < len(itos) else "<unk>" for i in ids],
                              list(CHAR_ANNOTATIONS))
        discovery_s = time.perf_counter() - t
        steps["discovery"] = peak.step
        log(f"discovery in {discovery_s:.1f} s: " + ", ".join(
            f"{n} {r.stream[0]}:{r.unit[0]} ({r.metric} {r.score[0]:.3f})" for n, r in found.rankings.items() if r.unit.size))

        cfg = ckpt.config
        corpus = load_dataset(DATA, ws, catalog=cat)
        train_docs = corpus.subset(corpus.split(seed=cfg["split"]["seed"],
                                                fractions=tuple(cfg["split"]["fractions"]))["train"])
        peak.start_step()
        t = time.perf_counter()
        score, counts, oracle = fit_oracle(train_docs, lambda d: tok.encode_doc(d, add_eos=True), itos, "char",
                                           max_train=QUICK_ORACLE_TOKENS if args.quick else 20_000_000)
        tax = taxonomy_store(store, itos, "char", score, counts, categories_path(store, 5))
        taxonomy_s = time.perf_counter() - t
        steps["taxonomy"] = peak.step
        log(f"taxonomy in {taxonomy_s:.1f} s (oracle on {oracle['train_tokens']:,} training characters): "
            f"{tax.errors:,} errors of {tax.tokens:,}: " + ", ".join(f"{c.name} {c.share:.1%}" for c in tax.categories))
        blas.__exit__(None, None, None)
    finally:
        peak.close()
        if not args.scratch:
            shutil.rmtree(parent, ignore_errors=True)
    log("peak RSS per step (MB): " + ", ".join(f"{k} {v / 2 ** 20:.0f}" for k, v in steps.items()))
    w1, w2 = rates.get(1, math.nan), rates.get(2, math.nan)
    print(f"RESULT record_s={record_s:.1f} discovery_s={discovery_s:.1f} taxonomy_s={taxonomy_s:.1f} "
          f"index_s={index_s:.1f} peak_rss_mb={peak.peak_mb():.0f} workers1_tok_s={w1:.0f} workers2_tok_s={w2:.0f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
