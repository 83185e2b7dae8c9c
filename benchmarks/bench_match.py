"""Benchmark of pattern match (LSTMVis): run-length index vs a plain vectorised scan (a script, not a test).

Builds a synthetic recording in a temporary folder: a float16 numpy memmap (tokens, units)
(default 1M x 650) of smooth per-unit AR(1) states, documents of 50..2000 tokens, and planted
on-patterns (groups of 6..12 units switched on together over 2..8 tokens at many places, off just
before). Thresholds: each unit's 90th percentile from a systematic sample of rows.

Then: build the run index streaming over the memmap (timed), and run the same queries - 20
selections from brushed ranges, half on planted places, half random, alternating min_fraction 1
and 0.8 - through the index (`match_index`) and through the chunked scan over the full array
(`match_scan`), checks that both return identical results, and prints tokens, units, the index
build time, per-query times and the ratio. Last line: RESULT match_speedup=... identical=true|false

    python benchmarks/bench_match.py [--quick]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from rnnvis.analysis import build_run_index, match_index, match_scan, select_units


def make_recording(folder: Path, tokens: int, units: int, seed: int, chunk: int = 16384):
    """(values memmap (tokens, units) float16, doc_ids (tokens,), planted [(start, stop, units)])."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 2001, tokens // 50 + 2)
    doc_ids = np.repeat(np.arange(lengths.size), lengths)[:tokens].astype(np.int64)
    values = np.lib.format.open_memmap(folder / "values.npy", mode="w+", dtype=np.float16, shape=(tokens, units))
    rho = rng.uniform(0.8, 0.98, units)  # per-unit smoothness
    zi = np.zeros((1, units))
    for a in range(0, tokens, chunk):  # AR(1) per unit, chunk by chunk (lfilter state carried)
        b = min(tokens, a + chunk)
        noise = rng.normal(size=(b - a, units))
        out = np.empty_like(noise)
        for j in np.unique(np.round(rho, 2)):  # lfilter needs one coefficient per call: group units
            cols = np.flatnonzero(np.round(rho, 2) == j)
            out[:, cols], zi[:, cols] = lfilter([np.sqrt(1 - j * j)], [1, -j], noise[:, cols], axis=0,
                                                zi=zi[:, cols])
        values[a:b] = out
    planted = []
    for _ in range(12):  # pattern groups
        group = np.sort(rng.choice(units, int(rng.integers(6, 13)), replace=False))
        for s in rng.integers(1, tokens - 10, max(5, tokens // 10000)):
            e = int(s) + int(rng.integers(2, 9))
            if doc_ids[s - 1] != doc_ids[e]:
                continue
            block = np.asarray(values[s - 1:e + 1, group], dtype=np.float32)
            block[0], block[1:-1], block[-1] = -2.5, 2.5, -2.5
            values[s - 1:e + 1, group] = block
            planted.append((int(s), e, group))
    values.flush()
    return values, doc_ids, planted


def same(a, b) -> bool:
    fields = ("units", "threshold", "doc_ids", "starts", "stops", "matched", "extra", "jaccard", "length_hist")
    return a.total == b.total and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k tokens instead of 1M")
    ap.add_argument("--tokens", type=int)
    ap.add_argument("--units", type=int, default=650)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tokens = args.tokens or (100_000 if args.quick else 1_000_000)
    rng = np.random.default_rng(args.seed + 1)
    tmp = Path(tempfile.mkdtemp(prefix="rnnvis-bench-match-"))
    try:
        t0 = time.perf_counter()
        values, doc_ids, planted = make_recording(tmp, tokens, args.units, args.seed)
        print(f"tokens={tokens} units={args.units} dtype=float16 docs={int(doc_ids[-1]) + 1} "
              f"planted={len(planted)} generate_s={time.perf_counter() - t0:.1f}")
        sample = np.asarray(values[::max(1, tokens // 20000)], dtype=np.float32)
        theta = np.quantile(sample, 0.9, axis=0).astype(np.float32)  # (units,) per-unit 90th percentile

        t0 = time.perf_counter()
        index = build_run_index(values, doc_ids, theta)
        build_s = time.perf_counter() - t0
        size_mb = (index.starts.nbytes + index.ends.nbytes + index.offsets.nbytes) / 2**20
        path = index.save(tmp / "index.npz")
        print(f"index build_s={build_s:.2f} runs={index.starts.size} size_mb={size_mb:.1f} "
              f"file_mb={path.stat().st_size / 2**20:.1f}")

        t_idx, t_scan, identical, q = [], [], True, 0
        while q < args.queries:
            if q % 2 == 0:  # brush a planted place
                s, e, _ = planted[int(rng.integers(len(planted)))]
            else:  # brush a random range of 1..4 tokens inside one document
                s = int(rng.integers(1, tokens - 5))
                e = s + int(rng.integers(1, 5))
                if doc_ids[s] != doc_ids[e - 1]:
                    continue
            sel = select_units(values, doc_ids, s, e, theta)
            if sel.k == 0:
                continue
            frac = 1.0 if q % 4 < 2 else 0.8
            t0 = time.perf_counter()
            fast = match_index(index, sel, min_fraction=frac)
            t1 = time.perf_counter()
            slow = match_scan(values, doc_ids, sel, min_fraction=frac)
            t2 = time.perf_counter()
            ok = same(fast, slow)
            identical &= ok
            t_idx.append(t1 - t0)
            t_scan.append(t2 - t1)
            best = f"{fast[0].start}-{fast[0].stop} j={fast[0].jaccard:.2f}" if len(fast) else "-"
            print(f"query {q:2d} brush=[{s},{e}) k={sel.k:3d} min_fraction={frac} matches={fast.total:6d} "
                  f"best={best} index_ms={1e3 * (t1 - t0):8.2f} scan_ms={1e3 * (t2 - t1):9.1f} "
                  f"speedup={(t2 - t1) / (t1 - t0):8.1f} identical={str(ok).lower()}")
            q += 1
        speedup = sum(t_scan) / sum(t_idx)
        print(f"total index_s={sum(t_idx):.3f} scan_s={sum(t_scan):.2f} "
              f"median_query_speedup={np.median(np.array(t_scan) / np.array(t_idx)):.1f} "
              f"build_vs_one_scan={build_s / np.mean(t_scan):.2f}")
        print(f"RESULT match_speedup={speedup:.1f} identical={str(identical).lower()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
