"""Co-clustering: planted bicluster structure (positive and negative) must be recovered."""
import numpy as np
import pytest
from sklearn.datasets import make_biclusters
from sklearn.metrics import consensus_score

from rnnvis.analysis import bipartite_modularity, cocluster
from rnnvis.analysis.cocluster import block_means
from rnnvis.errors import RnnvisError

K_RANGE = range(2, 8)


def planted(k=3, noise=0.0, shape=(24, 48), seed=0):
    data, rows, cols = make_biclusters(shape, k, noise=noise, random_state=seed)
    return data, rows, cols


def test_clean_blocks_recovered_exactly():
    data, rows, cols = planted()
    r = cocluster(data, k=3, seed=0)
    assert consensus_score(r.biclusters(), (rows, cols)) == pytest.approx(1.0)
    assert r.unit_labels.shape == (24,) and r.word_labels.shape == (48,)
    assert sorted(np.concatenate(r.unit_clusters).tolist()) == list(range(24))
    assert sorted(np.concatenate(r.word_clusters).tolist()) == list(range(48))


def test_noisy_blocks_recovered():
    data, rows, cols = planted(noise=5.0)
    r = cocluster(data, k=3, seed=0)
    assert consensus_score(r.biclusters(), (rows, cols)) >= 0.9


def test_negative_blocks_recovered_with_sign_kept():
    data, rows, cols = planted(k=4, noise=2.0, seed=1)
    signs = np.array([1, -1, -1, 1])
    s = data.copy()
    for b, sg in enumerate(signs):
        s[np.ix_(rows[b], cols[b])] *= sg
    r = cocluster(s, k=4, seed=0)
    assert consensus_score(r.biclusters(), (rows, cols)) >= 0.9
    for b, sg in enumerate(signs):
        a = np.bincount(r.unit_labels[rows[b]]).argmax()  # our cluster holding planted block b
        assert np.sign(r.link[a, a]) == sg
        assert (r.link_pos[a, a] > 5) if sg > 0 else (r.link_neg[a, a] < -5)
    np.testing.assert_allclose(r.link, r.link_pos + r.link_neg)
    assert (r.link_pos >= 0).all() and (r.link_neg <= 0).all()


@pytest.mark.parametrize("k", [3, 5])
def test_modularity_picks_planted_k(k):
    data, rows, cols = planted(k=k, noise=3.0, shape=(30, 60), seed=0)
    r = cocluster(data, k_range=K_RANGE, seed=0)
    assert r.n_clusters == k
    assert r.k_values.tolist() == list(K_RANGE)
    assert r.k_scores.argmax() == k - 2
    assert consensus_score(r.biclusters(), (rows, cols)) >= 0.9


def test_same_seed_same_result():
    data, _, _ = planted(noise=8.0, seed=3)
    a = cocluster(data, k_range=range(2, 5), seed=7)
    b = cocluster(data, k_range=range(2, 5), seed=7)
    assert np.array_equal(a.unit_labels, b.unit_labels) and np.array_equal(a.word_labels, b.word_labels)
    np.testing.assert_array_equal(a.k_scores, b.k_scores)


def test_word_clouds_weights_and_strings():
    data, rows, cols = planted()
    words = [f"w{i}" for i in range(48)]
    r = cocluster(data, k=3, words=words)
    for c in range(3):
        cloud = r.word_cloud(c)
        weights = [w for _, w in cloud]
        assert weights == sorted(weights, reverse=True)
        for name, w in cloud:
            j = int(name[1:])
            units = r.unit_clusters[c]
            assert w == pytest.approx(np.abs(data[units, j]).mean())
    with pytest.raises(RnnvisError):
        r.word_cloud(3)


def test_bipartite_modularity_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    # two perfect blocks: 1 - (1*1 + 1*1) / 4
    assert bipartite_modularity(a, np.array([0, 1]), np.array([0, 1])) == pytest.approx(0.5)
    assert bipartite_modularity(a, np.array([0, 0]), np.array([0, 0])) == pytest.approx(0.0)
    assert bipartite_modularity(a, np.array([0, 1]), np.array([1, 0])) == pytest.approx(-0.5)


def test_block_means_by_hand():
    s = np.array([[1.0, -3.0, 2.0], [5.0, 1.0, 0.0]])
    m = block_means(s, np.array([0, 1]), np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(m, [[-1.0, 2.0], [3.0, 0.0]])


def test_bad_input_is_a_clear_error():
    with pytest.raises(RnnvisError):
        cocluster(np.array([[1.0, np.nan], [0.0, 1.0]]), k=2)
    with pytest.raises(RnnvisError):
        cocluster(np.ones((3, 4)), k=5)
    with pytest.raises(RnnvisError):
        cocluster(np.ones((3, 4)), k=2, words=["a"])


def test_shared_svd_recovers_planted_blocks_as_well_as_sklearn():
    """One SVD for every k must not cost quality: over noisy planted matrices, our consensus with
    the planted blocks matches scikit-learn's SpectralCoclustering at the planted k."""
    from sklearn.cluster import SpectralCoclustering

    ours, theirs = [], []
    for seed in range(6):
        data, rows, cols = make_biclusters((60, 120), 4, noise=20.0, random_state=seed)
        a = np.abs(data)
        ref = SpectralCoclustering(n_clusters=4, svd_method="randomized", random_state=seed, n_init=10).fit(a)
        theirs.append(consensus_score(ref.biclusters_, (rows, cols)))
        ours.append(consensus_score(cocluster(data, k_range=range(2, 11), seed=seed).biclusters(), (rows, cols)))
    assert np.mean(ours) >= np.mean(theirs) - 0.02, (ours, theirs)


# -- choosing k honestly (issue 15) ------------------------------------------------------------------------
# (k, noise, seed) of the planted grid where bipartite modularity chose too few clusters
MODULARITY_MISSES = [(5, 5, 1), (6, 10, 1), (7, 10, 2), (9, 5, 1), (10, 10, 1)]


@pytest.mark.parametrize("k, noise, seed", MODULARITY_MISSES)
def test_spectral_gap_finds_the_planted_k_where_modularity_merged_blocks(k, noise, seed):
    s, rows, cols = make_biclusters((300, 300), k, noise=noise, random_state=seed, shuffle=True)
    r = cocluster(s, seed=0)
    assert r.k_rule == "spectral gap" and r.n_clusters == k
    assert r.k_scores.argmax() != k - 2  # the modularity curve alone would have chosen another k
    assert consensus_score(r.biclusters(), (rows, cols)) == pytest.approx(1.0)


def test_gap_rule_reads_the_spectrum_and_falls_back_to_modularity_without_structure():
    r = cocluster(np.random.default_rng(0).standard_normal((40, 90)), seed=0)
    assert np.nanmax(r.k_gaps) < 1.2 and r.k_rule == "bipartite modularity (no spectral gap)"
    assert r.n_clusters == r.k_values[r.k_scores.argmax()]
    s, *_ = make_biclusters((60, 120), 4, noise=2.0, random_state=0)
    a = np.abs(s) + 1e-9 * np.abs(s).max()
    sv = np.linalg.svd(a / np.sqrt(a.sum(1))[:, None] / np.sqrt(a.sum(0))[None, :], compute_uv=False)
    r = cocluster(s, k_range=range(2, 8), seed=0)
    np.testing.assert_allclose(r.k_gaps, sv[1:7] / sv[2:8], rtol=5e-3)  # sigma_k / sigma_(k+1), k = 2..7 (randomized SVD)
    assert r.k_rule == "spectral gap" and r.n_clusters == 4


@pytest.mark.parametrize("seed", range(4))
def test_every_cluster_has_units_and_words(seed):
    """Few units, many words, k near the number of units: k-means leaves clusters of words only."""
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((12, 200)) * rng.gamma(0.5, 1, size=(1, 200))
    for k in (None, 7):
        r = cocluster(s, k=k, seed=0)
        assert all(len(u) for u in r.unit_clusters) and all(len(w) for w in r.word_clusters)
        assert r.n_clusters == len(r.unit_clusters) == len(r.word_clusters) <= (k or 10)


def test_given_k_recovers_planted_blocks_at_least_as_well_as_sklearn():
    from sklearn.cluster import SpectralCoclustering

    for k, seed in ((7, 3), (9, 4), (10, 3)):
        s, rows, cols = make_biclusters((300, 300), k, noise=10, random_state=seed, shuffle=True)
        ref = SpectralCoclustering(n_clusters=k, random_state=0).fit(np.abs(s))
        ours = consensus_score(cocluster(s, k=k, seed=0).biclusters(), (rows, cols))
        assert ours == pytest.approx(1.0) and ours >= consensus_score(ref.biclusters_, (rows, cols))
