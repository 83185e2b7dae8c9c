"""Benchmark of the recording engine (a script, not a test).

On the same tokens, for a 2-layer LSTM and GRU language model (650 units, 10k vocabulary,
embedding 650, batch 64, sequence lengths 35 and 200):

  (a) plain fused forward (embedding + rnn + decoder logits) under torch.no_grad, no recording
  (b) rnnvis statistics only: every stream of every layer computed, the default statistics
      folded (per word x unit for h and c, per unit and saturation for every stream), model
      outputs (loss/rank/top-k), nothing written per token
  (c) the default store: (b) + h of every layer (float16), ids, outputs and float32 keyframes
      written to the Zarr store (c and the gates are recomputed from the model when a view asks)
  (d) everything: every stream stored per token and per-word statistics of every stream
  (e) the naive alternative: a Python loop over explicit per-step cell maths appending every
      stream to lists

Prints tokens/s and ratios, the default store's bytes per token (on disk, statistics apart)
against the target 2 x (units over layers and directions) + 64, write throughput next to the
raw sequential write speed of the same disk, and peak RSS for recording 1M vs 100k tokens
(small model, in subprocesses). Last line: RESULT default_vs_forward=... all_vs_forward=...
stats_vs_forward=... bytes_per_token=... rss_ratio=... (ratios: the worst over the
configurations; bytes: the largest).

    python benchmarks/bench_recording.py [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


from rnnvis.recording import record_corpus  # noqa: E402


class LM(nn.Module):
    def __init__(self, cell: str, vocab: int, emb: int, hidden: int, layers: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](emb, hidden, num_layers=layers, batch_first=True)
        self.dec = nn.Linear(hidden, vocab)

    def forward(self, ids):
        return self.dec(self.rnn(self.emb(ids))[0])


def make_batches(n_batches: int, batch: int, seq: int, vocab: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_batches):
        out.append({"ids": torch.randint(0, vocab, (batch, seq), generator=g),
                    "lengths": torch.full((batch,), seq), "doc_ids": torch.arange(batch) + i * batch,
                    "start_pos": torch.zeros(batch, dtype=torch.long)})
    return out


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_forward(model, batches, device):
    with torch.no_grad():
        for b in batches:
            model(b["ids"].to(device))
    sync(device)


def naive(model, batches, device):
    """Per-step explicit cell maths in Python, every stream appended to lists (moved to CPU)."""
    rnn = model.rnn
    H = rnn.hidden_size
    with torch.no_grad():
        for b in batches:
            x = model.emb(b["ids"].to(device))  # (B, T, E)
            streams: dict[str, list] = {}
            for k in range(rnn.num_layers):
                w_ih, w_hh = getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")
                b_ih, b_hh = getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")
                h = x.new_zeros(x.shape[0], H)
                c = x.new_zeros(x.shape[0], H)
                outs = []
                for t in range(x.shape[1]):
                    gi = x[:, t] @ w_ih.t() + b_ih
                    gh = h @ w_hh.t() + b_hh
                    if isinstance(rnn, nn.LSTM):
                        i, f, g, o = (gi + gh).chunk(4, 1)
                        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                        c = f * c + i * g
                        h = o * c.tanh()
                        vals = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}
                    else:
                        r = (gi[:, :H] + gh[:, :H]).sigmoid()
                        z = (gi[:, H:2 * H] + gh[:, H:2 * H]).sigmoid()
                        n = (gi[:, 2 * H:] + r * gh[:, 2 * H:]).tanh()
                        h = (1 - z) * n + z * h
                        vals = {"r": r, "z": z, "n": n, "h": h}
                    for name, v in vals.items():
                        streams.setdefault(f"{k}.{name}", []).append(v.cpu().numpy())
                    outs.append(h)
                x = torch.stack(outs, 1)
            model.dec(x)
    sync(device)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def disk_write_speed(path: Path, nbytes: int) -> float:
    """Raw sequential write speed (bytes/s) of `nbytes` with os.write + fsync."""
    block = os.urandom(1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    t0 = time.perf_counter()
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, block[: min(left, len(block))])
        os.fsync(fd)
    finally:
        os.close(fd)
    dt = time.perf_counter() - t0
    path.unlink()
    return nbytes / dt


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_config(cell, seq, n_batches, args, device, workdir) -> dict:
    torch.manual_seed(0)
    model = LM(cell, args.vocab, args.hidden, args.hidden, 2).to(device).eval()
    batches = make_batches(n_batches, args.batch, seq, args.vocab)
    warm = make_batches(1, args.batch, seq, args.vocab, seed=1)
    n_tok = n_batches * args.batch * seq
    out = workdir / f"{cell}{seq}"
    plain_forward(model, warm, device)
    record_corpus(model, warm, out, vocab_size=args.vocab, progress=False, write=False)
    everything = workdir / f"{cell}{seq}-all"
    ta = tb = tc = te = float("inf")
    for _ in range(args.rounds):  # interleaved rounds, best of each: robust to a noisy machine
        ta = min(ta, timed(lambda: plain_forward(model, batches, device)))
        tb = min(tb, timed(lambda: record_corpus(model, batches, out, vocab_size=args.vocab, progress=False,
                                                 write=False)))
        shutil.rmtree(out, ignore_errors=True)
        tc = min(tc, timed(lambda: record_corpus(model, batches, out, vocab_size=args.vocab, progress=False)))
        shutil.rmtree(everything, ignore_errors=True)
        te = min(te, timed(lambda: record_corpus(model, batches, everything, vocab_size=args.vocab, progress=False,
                                                 store_streams="*", word_stats="*")))
    stats_bytes = sum(dir_bytes(p) for p in out.rglob("stats") if p.is_dir())
    store_bytes = dir_bytes(out) - stats_bytes
    all_bytes = dir_bytes(everything) - sum(dir_bytes(p) for p in everything.rglob("stats") if p.is_dir())
    shutil.rmtree(everything)
    units = 2 * args.hidden  # h units over layers and directions
    half = max(1, n_batches // 2)
    td = timed(lambda: naive(model, batches[:half], device)) * n_batches / half
    disk = disk_write_speed(workdir / "raw.bin", store_bytes)
    shutil.rmtree(out)
    r = {"cell": cell, "seq": seq, "tokens": n_tok, "forward": n_tok / ta, "stats": n_tok / tb,
         "record": n_tok / tc, "all": n_tok / te, "naive": n_tok / td, "store_bytes_per_token": store_bytes / n_tok,
         "store_write_MBps": store_bytes / tc / 1e6, "disk_MBps": disk / 1e6, "stats_MB": stats_bytes / 1e6,
         "target_bytes": 2 * units + 64}
    print(f"{cell:4s} seq={seq:<4d} tokens={n_tok:<7d} tok/s: forward={r['forward']:.0f} stats={r['stats']:.0f} "
          f"default={r['record']:.0f} all={r['all']:.0f} naive={r['naive']:.0f} | "
          f"stats/fwd={r['stats'] / r['forward']:.2f} default/fwd={r['record'] / r['forward']:.2f} "
          f"all/fwd={r['all'] / r['forward']:.2f} default/naive={r['record'] / r['naive']:.2f} | "
          f"default store {r['store_bytes_per_token']:.0f} B/tok (target <= {r['target_bytes']}; everything "
          f"{all_bytes / n_tok:.0f} B/tok; +{r['stats_MB']:.0f} MB stats), written at "
          f"{r['store_write_MBps']:.0f} MB/s (raw disk {r['disk_MBps']:.0f} MB/s, os.write+fsync)", flush=True)
    return r


def rss_child(n_tokens: int, workdir: str, device: str) -> None:
    """Record n_tokens with a small model; print peak RSS (KiB) as JSON."""
    torch.manual_seed(0)
    dev = torch.device(device)
    model = LM("lstm", 1000, 32, 64, 1).to(dev).eval()
    batch, seq = 128, 64
    n_batches = max(1, n_tokens // (batch * seq))

    def gen():
        for i in range(n_batches):  # generated lazily: the corpus is never in RAM
            yield make_batches(1, batch, seq, 1000, seed=i)[0]

    out = Path(workdir) / f"rss{n_tokens}"
    record_corpus(model, gen(), out, vocab_size=1000, progress=False, chunk_tokens=16384)
    shutil.rmtree(out)
    print(json.dumps({"maxrss_kib": peak_rss_kib()}))


def peak_rss_kib() -> int:
    """Peak RSS of this process: VmHWM (reset at exec, unlike ru_maxrss which a child can
    inherit from a large parent), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_rss(n_tokens: int, workdir: Path, device: str) -> int:
    res = subprocess.run([sys.executable, __file__, "--rss-child", str(n_tokens), "--workdir", str(workdir),
                          "--device", device, "--threads", str(torch.get_num_threads())],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["maxrss_kib"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller run (under a minute)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help="directory for stores (default: a temp dir here)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per method (best is kept)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.rss_child:
        rss_child(args.rss_child, args.workdir, args.device)
        return
    args.vocab, args.hidden, args.batch = 10000, 650, 64
    args.rounds = args.rounds or (1 if args.quick else 2)
    device = torch.device(args.device)
    workdir = Path(tempfile.mkdtemp(prefix="rnnvis-bench-", dir=args.workdir))
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} quick={args.quick}")
    shapes = [(35, 3 if args.quick else 40), (200, 1 if args.quick else 7)]
    if device.type == "cuda":
        shapes = [(35, 20 if args.quick else 100), (200, 4 if args.quick else 20)]
    try:
        small, big = (20_000, 200_000) if args.quick else (100_000, 1_000_000)
        r_small = measure_rss(small, workdir, args.device)
        r_big = measure_rss(big, workdir, args.device)
        print(f"peak RSS (small LSTM, 1000 words, 64 units, batch 128x64): {small} tokens {r_small / 1024:.0f} MiB, "
              f"{big} tokens {r_big / 1024:.0f} MiB (ratio {r_big / r_small:.2f})", flush=True)
        rows = [bench_config(cell, seq, nb, args, device, workdir) for cell in ("lstm", "gru") for seq, nb in shapes]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    worst = lambda key, base: min(r[key] / r[base] for r in rows)  # noqa: E731
    print(f"RESULT default_vs_forward={worst('record', 'forward'):.2f} all_vs_forward={worst('all', 'forward'):.2f} "
          f"stats_vs_forward={worst('stats', 'forward'):.2f} "
          f"bytes_per_token={max(r['store_bytes_per_token'] for r in rows):.0f} rss_ratio={r_big / r_small:.2f}")


if __name__ == "__main__":
    main()
