"""Sentence glyphs: per cluster positive/negative sums, their change, and the share kept."""
import numpy as np
import pytest

from rnnvis.analysis import sentence_glyphs
from rnnvis.analysis.glyphs import kept_from_change
from rnnvis.errors import RnnvisError

H = np.array([[0.5, -0.2, 1.0],
              [0.5, 0.4, -1.0],
              [0.0, 0.0, -1.0]])
LABELS = np.array([0, 0, 1])


def test_sums_and_changes_by_hand():
    g = sentence_glyphs(H, LABELS)
    np.testing.assert_allclose(g.pos, [[0.5, 1.0], [0.9, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(g.neg, [[-0.2, 0.0], [0.0, -1.0], [0.0, -1.0]])
    np.testing.assert_allclose(g.dpos, [[0.5, 1.0], [0.4, -1.0], [-0.9, 0.0]])
    np.testing.assert_allclose(g.dneg, [[-0.2, 0.0], [0.2, -1.0], [0.0, 0.0]])
    assert g.sizes.tolist() == [2, 1] and g.kept_from == "change"


def test_kept_from_change_by_hand():
    g = sentence_glyphs(H, LABELS)
    # t=0 from a zero state: nothing to keep
    np.testing.assert_allclose(g.kept[0], [0.0, 0.0])
    # t=1, cluster 0: Σ|Δh| = 0 + 0.6, Σ(|h_prev| + |Δh|) = 0.5 + 0.2 + 0.6
    assert g.kept[1, 0] == pytest.approx(1 - 0.6 / 1.3)
    # cluster 1: h flips from 1 to -1: |Δh| = 2 over 1 + 2
    assert g.kept[1, 1] == pytest.approx(1 - 2 / 3)
    # t=2, cluster 1 unchanged: fully kept
    assert g.kept[2, 1] == pytest.approx(1.0)
    assert ((g.kept >= 0) & (g.kept <= 1)).all()
    # both states zero: 0/0 counts as kept
    z = np.zeros((2, 1))
    assert kept_from_change(z, z, np.array([0]), 1).tolist() == [[1.0], [1.0]]


def test_kept_from_forget_gate_and_initial_state():
    f = np.array([[0.2, 0.4, 0.9], [1.0, 0.0, 0.5], [0.5, 0.5, 0.5]])
    g = sentence_glyphs(H, LABELS, forget=f, h0=np.array([0.5, -0.2, 1.0]))
    np.testing.assert_allclose(g.kept, [[0.3, 0.9], [0.5, 0.5], [0.5, 0.5]])
    assert g.kept_from == "forget"
    np.testing.assert_allclose(g.dpos[0], [0.0, 0.0])  # h0 equals h_0


def test_empty_cluster_and_errors():
    g = sentence_glyphs(H, LABELS, n_clusters=3)
    assert g.pos.shape == (3, 3) and (g.pos[:, 2] == 0).all()
    with pytest.raises(RnnvisError):
        sentence_glyphs(H, np.array([0, 1]))
    with pytest.raises(RnnvisError):
        sentence_glyphs(H, LABELS, n_clusters=1)
    with pytest.raises(RnnvisError):
        sentence_glyphs(H, LABELS, forget=np.ones((2, 3)))
