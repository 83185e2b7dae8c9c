"""Unit matching across models and correspondence of clusterings."""
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from rnnvis.analysis.matching import cluster_correspondence, correlation_matrix, match_units
from rnnvis.errors import RnnvisError


def test_matching_recovers_a_permutation_of_units_with_noise():
    rng = np.random.default_rng(0)
    a = np.tanh(rng.normal(size=(3000, 32)))
    perm = rng.permutation(32)
    b = a[:, perm] + 0.3 * rng.normal(size=a.shape)  # unit j of B is unit perm[j] of A
    m = match_units(a, b)
    assert all(perm[m.partner_of(i)] == i for i in range(32))
    assert m.mean > 0.8 and m.matched.min() > 0.8
    # a sign flip is matched only when asked for
    b2 = b.copy()
    b2[:, 0] *= -1
    assert perm[match_units(a, b2, absolute=True).partner_of(perm[0])] == perm[0]


def test_unequal_widths_and_constant_units():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 6))
    b = np.c_[a[:, [4, 1]], np.ones(500)]
    m = match_units(a, b)
    assert m.rows.size == 3 and m.partner_of(4) == 0 and m.partner_of(1) == 1
    assert m.unmatched_a.size == 3 and m.unmatched_b.size == 0
    assert np.all(correlation_matrix(a, b)[:, 2] == 0)
    with pytest.raises(RnnvisError):
        match_units(a, b[:10])


def test_cluster_correspondence_matches_sklearn_ari():
    rng = np.random.default_rng(2)
    la = rng.integers(0, 4, 200)
    relabel = np.array([2, 0, 3, 1])
    same = cluster_correspondence(la, relabel[la])
    assert same.ari == pytest.approx(1.0)
    assert sorted(same.pairs) == sorted((a, int(relabel[a]), int((la == a).sum())) for a in range(4))
    lb = np.where(rng.uniform(size=200) < 0.3, rng.integers(0, 3, 200), la % 3)
    c = cluster_correspondence(la, lb)
    assert c.contingency.shape == (4, 3) and c.contingency.sum() == 200
    assert c.ari == pytest.approx(adjusted_rand_score(la, lb))
    assert abs(cluster_correspondence(la, rng.integers(0, 4, 200)).ari) < 0.05
