"""Figures of the exploration analyses on the demo models (issue 4), printed as Markdown.

Run after `make demo` (the demo models must be in the workspace):

    .venv/bin/python docs/make_demo_analyses.py [--home DIR] [--larger NAME ...] > docs/demo-analyses.md

docs/demo-analyses.md was made with `--larger linux-char-lstm-512`, a larger char model trained by
hand (13 min on two CPU cores) with

    rnnvis train --data linux-kernel --level char --cell lstm --name linux-char-lstm-512 --emb 64 \
        --hidden 512 --lr 3e-3 --batch-size 64 --bptt 100 --epochs 1 --lr-schedule cosine --clip 1.0 \
        --max-train-tokens 10000000

1. Sentiment LSTM: co-cluster units x words by expected response of h; purity of the word
   clusters over the polar words of the VADER lexicon (shipped in the vaderSentiment sdist the
   `movies` data set is fetched from), next to the same clusters with shuffled labels.
2. Brown LSTM: agreement (NMI) of the word clusters with each word's most frequent gold POS tag,
   next to shuffled labels.
3. Linux char LSTM: the units that best track "inside a string or comment" (AUC) and bracket
   depth (correlation).
"""
from __future__ import annotations

import argparse
import collections
import tarfile

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

import rnnvis
from rnnvis.analysis import annotate, coarse_brown_tag, cocluster, discover_units, expected_response

SHUFFLES = 200


def response(store, tok, stream: str, min_count: int):
    st = store.stats[stream].deltas
    return expected_response(st.mean.numpy(), st.var.numpy(), st.count.numpy(), tok.vocab.itos,
                             min_count=min_count)


def vader_lexicon(ws) -> dict[str, int]:
    """word -> +1 / -1 for VADER words with |mean valence| >= 1 (clearly polar)."""
    archive = ws.downloads_dir / "vaderSentiment-3.3.2.tar.gz"
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("vaderSentiment/vader_lexicon.txt"))
        text = tar.extractfile(member).read().decode("utf-8", "replace")
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            try:
                v = float(parts[1])
            except ValueError:
                continue
            if abs(v) >= 1.0:
                out[parts[0].lower()] = 1 if v > 0 else -1
    return out


def purity(labels: np.ndarray, classes: np.ndarray) -> float:
    total = 0
    for c in np.unique(labels):
        total += collections.Counter(classes[labels == c].tolist()).most_common(1)[0][1]
    return total / len(classes)


def shuffled(metric, labels: np.ndarray, classes: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = [metric(rng.permutation(labels), classes) for _ in range(SHUFFLES)]
    return float(np.mean(vals)), float(np.percentile(vals, 99))


def sentiment(ws, cat) -> list[str]:
    ckpt = rnnvis.load_model("movies-lstm", ws, cat)
    store = rnnvis.record_model("movies-lstm", ws, cat, split="train", progress=False)
    r = response(store, ckpt.tokenizer, "layer0.fwd.h", min_count=5)
    cc = cocluster(r.mean.T, seed=0, words=r.words)
    lex = vader_lexicon(ws)
    polar = np.array([i for i, w in enumerate(r.words) if w in lex])
    labels = cc.word_labels[polar]
    classes = np.array([lex[r.words[i]] for i in polar])
    p = purity(labels, classes)
    base, p99 = shuffled(purity, labels, classes)
    majority = max((classes > 0).mean(), (classes < 0).mean())
    return [
        "## Sentiment LSTM (`movies-lstm`): word clusters against VADER polarity",
        "",
        f"Expected response of `layer0.fwd.h` over the training split ({store.n_tokens:,} tokens), "
        f"{len(r.words):,} words seen at least 5 times, co-clustered on |s| into k = {cc.n_clusters} "
        f"(chosen by bipartite modularity). {len(polar)} of those words are clearly polar in the VADER "
        "lexicon (|mean valence| ≥ 1).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| cluster purity over polar words (goal ≥ 0.8) | **{p:.3f}** |",
        f"| same clusters, shuffled labels ({SHUFFLES}×): mean / 99th percentile | {base:.3f} / {p99:.3f} |",
        f"| majority polarity alone | {majority:.3f} |",
        "",
    ]


def brown_pos(ws, cat) -> list[str]:
    ckpt = rnnvis.load_model("brown-lstm", ws, cat)
    store = rnnvis.record_model("brown-lstm", ws, cat, split="test", progress=False)
    r = response(store, ckpt.tokenizer, "layer0.fwd.h", min_count=5)
    cc = cocluster(r.mean.T, seed=0, words=r.words)
    corpus = rnnvis.load_dataset("brown", ws)
    tags: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for d in corpus.documents:
        for w, t in zip(d.tokens, d.meta["pos"]):
            tags[w.lower()][coarse_brown_tag(t)] += 1
    keep = np.array([i for i, w in enumerate(r.words) if w in tags])
    labels = cc.word_labels[keep]
    gold = np.array([tags[r.words[i]].most_common(1)[0][0] for i in keep])
    nmi = normalized_mutual_info_score(gold, labels)
    base, p99 = shuffled(normalized_mutual_info_score, labels, gold)
    return [
        "## Brown LSTM (`brown-lstm`): word clusters against gold POS",
        "",
        f"Expected response of `layer0.fwd.h` over the test split ({store.n_tokens:,} tokens), "
        f"{len(keep):,} words seen at least 5 times, k = {cc.n_clusters}; each word's gold class is its most "
        f"frequent coarse Brown tag ({len(set(gold.tolist()))} classes).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| NMI(word clusters, gold POS) | **{nmi:.3f}** |",
        f"| shuffled labels ({SHUFFLES}×): mean / 99th percentile | {base:.4f} / {p99:.4f} |",
        "",
    ]


def linux_units(ws, cat, max_tokens: int, model: str = "linux-char-lstm") -> list[str]:
    ckpt = rnnvis.load_model(model, ws, cat)
    store = rnnvis.record_model(model, ws, cat, split="test", max_tokens=max_tokens,
                                store_streams=("*.h", "*.c"), window=5000, batch_size=16, progress=False)
    itos = ckpt.tokenizer.vocab.itos
    tokens = [itos[i] for i in store.token_ids]
    ann = annotate(tokens, ["c_string", "c_comment", "bracket_depth"], doc_ids=store.doc_ids)
    ann["string_or_comment"] = ann.pop("c_string") | ann.pop("c_comment")
    streams = {n: store.read(n).astype(np.float32) for n in store.streams}
    found = discover_units(streams, ann, method="pearson", probe=True, doc_ids=store.doc_ids)
    lines = [
        f"## Linux char LSTM (`{model}`): units that track code structure",
        "",
        f"{store.n_tokens:,} characters of the test split, windows of 5,000 characters; streams h and c "
        f"({ckpt.model.config['hidden']} units each; test {cat.find_model(model)['metrics'].get('test', {}).get('bpc', float('nan')):.3f} "
        "bits/char).",
        "",
        "Goals for a model large enough: AUC 0.9 for strings/comments, correlation 0.8 for bracket depth.",
        "",
        "| hypothesis | best unit | score | linear probe on the best stream (held out) |",
        "|---|---|---|---|",
    ]
    for name, metric in (("string_or_comment", "AUC"), ("bracket_depth", "correlation")):
        rk = found.rankings[name]
        s, u, e = rk.top(1)[0]
        score = rk.score[0]
        if metric == "AUC":  # a unit that is LOW inside tracks the region as well as one that is high
            shown = f"AUC {score:.3f} ({max(score, 1 - score):.3f} {'low' if score < 0.5 else 'high'} inside)"
        else:
            shown = f"r = {score:.3f} (magnitude {abs(score):.3f})"
        probe = max((p for (a, _), p in found.probes.items() if a == name), key=lambda p: p.test_score)
        lines.append(f"| {name} | `{s}` unit {u} | {shown} | {probe.metric} {probe.test_score:.3f} "
                     f"(`{probe.stream}`; baseline {probe.baseline:.3f}) |")
    lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="workspace holding the demo models")
    ap.add_argument("--max-tokens", type=int, default=300_000, help="characters of the Linux test split")
    ap.add_argument("--larger", nargs="*", default=[],
                    help="more Linux char models to report (e.g. one trained bigger with `rnnvis train`)")
    args = ap.parse_args()
    ws = rnnvis.Workspace.open(args.home)
    cat = rnnvis.Catalog(ws.catalog_path)
    out = ["# Exploration analyses on the demo models", "",
           "Made by `docs/make_demo_analyses.py` from the models `make demo` trains (figures on one run).", ""]
    out += sentiment(ws, cat)
    out += brown_pos(ws, cat)
    out += linux_units(ws, cat, args.max_tokens)
    for name in args.larger:
        out += linux_units(ws, cat, args.max_tokens, name)
    print("\n".join(out))


if __name__ == "__main__":
    main()
