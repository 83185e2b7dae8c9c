"""Comparison and training figures of the demo models (issue 5), printed as Markdown.

Run after `make demo`:

    .venv/bin/python docs/make_demo_comparison.py [--home DIR] > docs/demo-comparison.md

1. Brown LSTM vs Brown GRU on the same test tokens: per-token loss difference aggregated by the
   gold part of speech of the predicted word — the word classes each model wins on.
2. The training curves of every demo model from the catalog (validation figure per epoch).
3. The error taxonomy (Karpathy, Johnson, Fei-Fei 2015) of the Linux char LSTM: errors
   (p(true) < 0.5) peeled off by the n-gram, memory, rare-word, word-start, punctuation and boost
   oracles, on the recorded part of the test split.
"""
from __future__ import annotations

import argparse

import numpy as np

import rnnvis
from rnnvis.analysis import coarse_brown_tag
from rnnvis.analysis.similarity import loss_difference

KARPATHY_NOTE = (
    "Karpathy et al. (2015) peel off the errors of a much larger 3-layer LSTM on War and Peace with the same "
    "oracles and report that scaling the model up removes mostly the n-gram errors. Their per-category shares "
    "are not quoted here: the paper could not be consulted from this offline machine, and quoting them from "
    "memory would not be a measurement. The app's Summary view draws this breakdown as a pie for any language "
    "model, with example errors in context.")

# Coarse Brown classes (see rnnvis.analysis.coarse_brown_tag) in words.
BROWN_CLASSES = {
    "nn": "noun", "np": "proper noun", "nr": "adverbial noun", "vb": "verb", "be": "form of 'be'",
    "hv": "form of 'have'", "do": "form of 'do'", "md": "modal", "jj": "adjective", "rb": "adverb",
    "ql": "qualifier", "in": "preposition", "at": "article", "ap": "post-determiner", "dt": "determiner",
    "ab": "pre-quantifier", "cc": "coordinating conjunction", "cs": "subordinating conjunction",
    "pp": "pronoun", "wd": "wh-determiner", "wp": "wh-pronoun", "wr": "wh-adverb", "wq": "wh-qualifier",
    "cd": "cardinal number", "od": "ordinal", "to": "infinitival 'to'", "rp": "particle",
    "ex": "existential 'there'", "pn": "nominal pronoun", "*": "negator not/n't", ".": "sentence end", ",": "comma", "``": "open quote", "''": "close quote",
    "--": "dash", "(": "bracket", ")": "bracket", ":": "colon", "<eos>": "end of document",
}


def target_classes(store, corpus) -> np.ndarray:
    """(tokens,) coarse POS class of the word each token's prediction is scored on (the next one)."""
    out = []
    for d, p in zip(store.doc_ids.tolist(), store.positions.tolist()):
        tags = corpus.documents[d].meta["pos"]
        out.append(coarse_brown_tag(tags[p + 1]) if p + 1 < len(tags) else "<eos>")
    return np.asarray(out, dtype=object)


def lstm_vs_gru(ws, cat) -> list[str]:
    a = rnnvis.record_model("brown-lstm", ws, cat, split="test", progress=False)
    b = rnnvis.record_model("brown-gru", ws, cat, split="test", progress=False)
    if not np.array_equal(a.token_ids, b.token_ids):
        raise SystemExit("the two recordings do not cover the same tokens")
    la, lb = a.output("loss"), b.output("loss")
    ok = ~(np.isnan(la) | np.isnan(lb))
    classes = target_classes(a, rnnvis.load_dataset("brown", ws))
    d = loss_difference(la[ok], lb[ok], classes[ok], min_count=300)
    order = np.argsort(d.mean_diff)
    lines = [
        "## Brown LSTM vs Brown GRU: which word classes each one predicts better",
        "",
        f"Same {int(ok.sum()):,} test tokens for both models. Loss is −log p(next word) in nats; "
        "the difference is LSTM − GRU, so negative means the LSTM is better. Classes with at least 300 "
        "tokens, by the gold Brown tag of the predicted word.",
        "",
        f"Overall: mean difference {d.total_mean_diff:+.4f} nats; the LSTM has the lower loss on "
        f"{d.total_a_wins:.1%} of the tokens.",
        "",
        "| predicted word class | tokens | mean loss LSTM − GRU | LSTM better on |",
        "|---|---|---|---|",
    ]
    for i in order:
        g = d.groups[i]
        code = f"`{g}`" if "`" not in g else f"'{g}'"
        lines.append(f"| {BROWN_CLASSES.get(g, g)} ({code}) | {int(d.count[i]):,} | {d.mean_diff[i]:+.4f} | "
                     f"{d.a_wins[i]:.1%} |")
    lstm = [BROWN_CLASSES.get(d.groups[i], d.groups[i]) for i in order[:3] if d.mean_diff[i] < 0]
    gru = [BROWN_CLASSES.get(d.groups[i], d.groups[i]) for i in order[::-1][:3] if d.mean_diff[i] > 0]
    lines += ["", f"The LSTM wins most on: {', '.join(lstm) or 'none'}. "
                  f"The GRU wins most on: {', '.join(gru) or 'none'}.", ""]
    return lines


def curves(ws, cat) -> list[str]:
    from rnnvis.demo import DEMO_MODELS

    lines = ["## Training curves of the demo models", "",
             "Validation figure after each epoch, from the catalog (`/api/runs/{id}/metrics` serves the "
             "per-step series too).", ""]
    for demo in DEMO_MODELS:
        model = cat.find_model(demo.name)
        series = cat.metric_series(model["run_id"])
        key = next(k for k in ("bpc", "ppl", "accuracy") if k in series.get("valid", {}))
        pts = series["valid"][key]
        test = series.get("test", {}).get(key)
        logged = len(series.get("train", {}).get("loss", []))
        row = " → ".join(f"{v:.4g}" for _, _, v in pts)
        lines.append(f"- `{demo.name}` (run {model['run_id']}, training loss logged at {logged} points): valid {key} "
                     f"per epoch {row}; test {test[-1][2]:.4g}" if test else f"- `{demo.name}`: valid {key} {row}")
    lines.append("")
    return lines


def linux_errors(ws, cat, max_tokens: int, max_order: int = 5) -> list[str]:
    import collections

    from rnnvis.analysis import error_taxonomy, ngram_p_true

    ckpt = rnnvis.load_model("linux-char-lstm", ws, cat)
    store = rnnvis.record_model("linux-char-lstm", ws, cat, split="test", max_tokens=max_tokens,
                                store_streams=("*.h", "*.c"), window=5000, batch_size=16, progress=False)
    corpus = rnnvis.load_dataset("linux-kernel", ws)
    cfg = ckpt.config["split"]
    splits = corpus.split(seed=cfg["seed"], fractions=tuple(cfg["fractions"]))
    tok = ckpt.tokenizer
    docs = list(dict.fromkeys(store.doc_ids.tolist()))  # recorded documents, in order
    seqs = [tok.encode_doc(corpus.documents[d]) for d in docs]
    offset = dict(zip(docs, np.cumsum([0] + [len(q) for q in seqs[:-1]]).tolist()))
    train = [tok.encode_doc(corpus.documents[d]) for d in splits["train"]]
    ngram = ngram_p_true(train, seqs, len(tok.vocab), max_order=max_order)  # (orders, eval tokens)
    loss = store.output("loss")
    keep = ~np.isnan(loss)
    d_ids, pos = store.doc_ids[keep], store.positions[keep]
    flat = np.array([offset[d] + p + 1 for d, p in zip(d_ids.tolist(), pos.tolist())])  # the predicted token
    allseq = np.concatenate([np.asarray(q) for q in seqs])
    tokens = [tok.vocab.itos[i] for i in allseq[flat]]
    words = collections.Counter(w for d in splits["train"] for w in corpus.documents[d].chars().split())
    tax = error_taxonomy(tokens, d_ids, np.exp(-loss[keep]), words, ngram_p=ngram[:, flat], level="char",
                         max_order=max_order)
    lines = ["## Error taxonomy of the Linux char LSTM", "",
             f"{tax.tokens:,} predicted characters of the test split; {tax.errors:,} errors (p(true) < 0.5, "
             f"error rate {tax.error_rate:.1%}), peeled off in this order by oracles (Kneser–Ney n-grams of "
             f"order 1..{max_order} fitted on the training split):", "",
             "| category | errors | share of errors |", "|---|---|---|"]
    for c in tax.categories:
        lines.append(f"| {c.name} | {c.count:,} | {c.share:.1%} |")
    lines += ["", KARPATHY_NOTE, ""]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="workspace holding the demo models")
    ap.add_argument("--max-tokens", type=int, default=300_000, help="characters of the Linux test split")
    args = ap.parse_args()
    ws = rnnvis.Workspace.open(args.home)
    cat = rnnvis.Catalog(ws.catalog_path)
    out = ["# Comparison and training of the demo models", "",
           "Made by `docs/make_demo_comparison.py` from the models `make demo` trains.", ""]
    out += lstm_vs_gru(ws, cat)
    out += curves(ws, cat)
    out += linux_errors(ws, cat, args.max_tokens)
    print("\n".join(out))


if __name__ == "__main__":
    main()
