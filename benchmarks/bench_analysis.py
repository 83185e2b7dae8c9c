"""Benchmark of the interactive analyses (a script, not a test).

Times, on a planted 10,000-word x 1,300-unit response matrix (the size of a 2-layer 650-unit
model's h responses over a 10k vocabulary):
  - co-clustering with the number of clusters chosen over k = 2..10 (spectral gap, else
    bipartite modularity), and with k given;
  - the expected-response profile of one word (building `ExpectedResponse` from per-word
    statistics once, then one `profile(word)` lookup) and one unit's top words.
And the choice of k on scikit-learn's planted biclusters (`make_biclusters`, 300 x 300, k = 5..10,
noise 1/5/10, seeds 0-2: the grid of issue 15): how often the planted k is found, with k chosen,
and the mean consensus score with the planted blocks when k is given (scikit-learn's
`SpectralCoclustering` on the same |matrix| for comparison).
Last line: RESULT cocluster_s=... cocluster_fixed_k_s=... word_profile_ms=... top_words_ms=...
autok_hits=N/54 consensus_given_k=... sklearn_consensus_given_k=...

    python benchmarks/bench_analysis.py [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from rnnvis.analysis import cocluster, expected_response


def planted(words: int, units: int, k: int, seed: int = 0) -> np.ndarray:
    """(units, words) responses with k signed blocks plus noise."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0, 0.05, (units, words))
    ub, wb = np.array_split(rng.permutation(units), k), np.array_split(rng.permutation(words), k)
    for i in range(k):
        s[np.ix_(ub[i], wb[i])] += rng.choice([-1, 1]) * rng.uniform(0.3, 0.6)
    return s


def planted_grid() -> tuple[int, int, float, float]:
    """(hits, cases, our mean consensus at the planted k, scikit-learn's) over the grid of issue 15."""
    from sklearn.cluster import SpectralCoclustering
    from sklearn.datasets import make_biclusters
    from sklearn.metrics import consensus_score

    hits, cases, ours, theirs = 0, 0, [], []
    for k in range(5, 11):
        for noise in (1, 5, 10):
            for seed in range(3):
                s, rows, cols = make_biclusters((300, 300), k, noise=noise, random_state=seed, shuffle=True)
                chosen = cocluster(s, seed=0)
                cases += 1
                hits += chosen.n_clusters == k
                if chosen.n_clusters != k:
                    print(f"  planted k={k} noise={noise} seed={seed}: chose {chosen.n_clusters} ({chosen.k_rule})")
                ours.append(consensus_score(cocluster(s, k=k, seed=0).biclusters(), (rows, cols)))
                ref = SpectralCoclustering(n_clusters=k, random_state=0).fit(np.abs(s))
                theirs.append(consensus_score(ref.biclusters_, (rows, cols)))
    return hits, cases, float(np.mean(ours)), float(np.mean(theirs))


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 words x 260 units (well under a minute)")
    args = ap.parse_args()
    words, units = (2000, 260) if args.quick else (10000, 1300)
    s = planted(words, units, k=6)
    itos = [f"w{i}" for i in range(words)]
    counts = np.full(words, 20)
    print(f"response matrix: {words} words x {units} units, 6 planted blocks")

    t_auto = timed(lambda: cocluster(s, seed=0, words=itos))
    result = cocluster(s, seed=0, words=itos)
    t_fixed = timed(lambda: cocluster(s, k=6, seed=0, words=itos), repeat=2)
    print(f"cocluster, k chosen over 2..10: {t_auto:.2f} s (chose k={result.n_clusters}); k=6 given: {t_fixed:.2f} s")

    t_build = timed(lambda: expected_response(s.T, np.full_like(s.T, 0.01), counts, itos, min_count=1))
    r = expected_response(s.T, np.full_like(s.T, 0.01), counts, itos, min_count=1)
    n = 200
    t_prof = timed(lambda: [r.profile(f"w{i}") for i in range(n)]) / n
    t_top = timed(lambda: [r.top_words(u, 10) for u in range(n)]) / n
    print(f"expected response over the vocabulary: {t_build * 1e3:.1f} ms once; "
          f"one word's profile {t_prof * 1e3:.3f} ms; one unit's top words {t_top * 1e3:.3f} ms")
    hits, cases, ours, theirs = planted_grid()
    print(f"planted biclusters (300 x 300, k 5..10, noise 1/5/10, 3 seeds): planted k found in {hits}/{cases}; "
          f"consensus at the given planted k {ours:.3f} (scikit-learn {theirs:.3f})")
    print(f"RESULT cocluster_s={t_auto:.2f} cocluster_fixed_k_s={t_fixed:.2f} "
          f"word_profile_ms={t_prof * 1e3:.3f} top_words_ms={t_top * 1e3:.3f} "
          f"autok_hits={hits}/{cases} consensus_given_k={ours:.3f} sklearn_consensus_given_k={theirs:.3f}")


if __name__ == "__main__":
    main()
