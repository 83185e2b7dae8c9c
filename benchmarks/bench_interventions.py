"""Benchmark of interventions (a script, not a test): the cost of a corpus-wide ablation as a ratio
to one plain forward pass over the same tokens.

A word-level LSTM language model (random weights; the cost does not depend on them) runs over
`--tokens` tokens in windows of `--window`, `--batch` windows a batch, three ways, side by side:
  - plain: the model's own forward (torch's fused LSTM kernel) and the per-token loss;
  - ablation: the same with units of layer 0's h zeroed inside the recurrence (rnnvis' explicit loop,
    `rnnvis.recording.intervene`) and the per-token loss;
  - job: what the corpus job runs, the original, the ablation and `--controls` random-unit controls
    stacked as rows of one batch (per variant, to compare with one pass).
ablation_vs_forward = plain time / ablation time (1.0: an ablation costs one forward pass; the target
is >= 0.5 on the CPU); job_per_variant_vs_forward = plain time * variants / job time.
Last line: RESULT ablation_vs_forward=... job_per_variant_vs_forward=... tokens=...

    python benchmarks/bench_interventions.py [--quick]
"""
from __future__ import annotations

import argparse
import time

import torch

from rnnvis.explore.interventions import token_loss
from rnnvis.models.zoo import LanguageModel
from rnnvis.recording.engine import next_token_targets
from rnnvis.recording.intervene import Edit, run_edited


def forward(m, batch):
    return m(batch["ids"])[0]


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a small setting (about a minute on 2 cores)")
    ap.add_argument("--tokens", type=int, default=64_000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=10_000)
    ap.add_argument("--hidden", type=int, default=650)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--controls", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if a.quick:
        a.tokens, a.vocab, a.hidden, a.batch, a.repeat = 12_800, 2_000, 256, 16, 2
    torch.manual_seed(0)
    m = LanguageModel(a.vocab, "lstm", emb=a.hidden, hidden=a.hidden, layers=a.layers).eval()
    n_win = max(1, a.tokens // a.window)
    ids = torch.randint(0, a.vocab, (n_win, a.window))
    batches = [ids[i:i + a.batch] for i in range(0, n_win, a.batch)]
    units = tuple(range(0, a.hidden, max(1, a.hidden // 10)))[:10]
    V = 2 + a.controls

    def plain():
        with torch.no_grad():
            for x in batches:
                token_loss(forward(m, {"ids": x}), next_token_targets(x, torch.full((x.shape[0],), x.shape[1])))

    def ablation():
        for x in batches:
            out = run_edited(m, {"ids": x}, [Edit("layer0.fwd.h", units)], forward=forward)
            token_loss(out, next_token_targets(x, torch.full((x.shape[0],), x.shape[1])))

    def job():  # what the corpus job runs per batch of windows: every variant stacked in one batch
        for x in batches[: max(1, len(batches) // V)]:
            R = x.shape[0]
            edits = [Edit("layer0.fwd.h", units, rows=tuple(range(R, 2 * R)))]
            edits += [Edit("layer0.fwd.h", tuple(u + 1 for u in units), rows=tuple(range((2 + k) * R, (3 + k) * R)))
                      for k in range(a.controls)]
            xs = x.repeat(V, 1)
            out = run_edited(m, {"ids": xs}, edits, forward=forward)
            token_loss(out, next_token_targets(xs, torch.full((xs.shape[0],), xs.shape[1])))

    n = sum(int(x.numel()) for x in batches)
    n_job = sum(int(x.numel()) for x in batches[: max(1, len(batches) // V)])
    print(f"LSTM {a.layers}x{a.hidden}, vocab {a.vocab:,}, {n:,} tokens in windows of {a.window}, "
          f"{a.batch} windows a batch, {torch.get_num_threads()} threads")
    t_plain = t_abl = t_job = float("inf")
    for _ in range(a.repeat):  # interleaved, best of each: load from other processes hits all three alike
        t_plain = min(t_plain, timed(plain, 1))
        t_abl = min(t_abl, timed(ablation, 1))
        t_job = min(t_job, timed(job, 1))
    per_tok_plain = t_plain / n
    per_tok_job_variant = t_job / (n_job * V)
    print(f"plain forward + loss : {t_plain:8.3f} s  ({n / t_plain:,.0f} tokens/s)")
    print(f"ablation + loss      : {t_abl:8.3f} s  ({n / t_abl:,.0f} tokens/s)")
    print(f"job ({V} variants)    : {t_job:8.3f} s  for {n_job:,} tokens x {V} ({n_job * V / t_job:,.0f} token-variants/s)")
    print(f"RESULT ablation_vs_forward={t_plain / t_abl:.2f} job_per_variant_vs_forward="
          f"{per_tok_plain / per_tok_job_variant:.2f} tokens={n}")


if __name__ == "__main__":
    main()
