"""2-D projections: PCA recovers a known plane, t-SNE is seeded, UMAP fails clearly when absent."""
import sys

import numpy as np
import pytest

from rnnvis.analysis import Projection, project, project_trajectory, project_units
from rnnvis.errors import RnnvisError


def plane_in_10d(n=40, seed=0):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(10, 2)))  # (10, 2) orthonormal
    uv = rng.normal(size=(n, 2)) * [3.0, 1.0]  # in-plane coordinates, distinct variances
    return uv @ basis.T + rng.normal(size=10), uv, basis  # (n, 10), offset off the origin


def test_pca_recovers_a_plane_embedded_in_10d():
    x, uv, _ = plane_in_10d()
    p = project_units(x)
    assert isinstance(p, Projection) and p.method == "pca"
    assert p.coords.shape == (40, 2)
    assert p.explained_variance.shape == (2,)
    assert p.explained_variance.sum() == pytest.approx(1.0, abs=1e-10)
    assert p.explained_variance[0] > p.explained_variance[1]
    # the map is the plane up to a rotation/reflection: pairwise distances are preserved
    d_map = np.linalg.norm(p.coords[:, None] - p.coords[None], axis=-1)
    centred = uv - uv.mean(0)
    d_true = np.linalg.norm(centred[:, None] - centred[None], axis=-1)
    np.testing.assert_allclose(d_map, d_true, atol=1e-9)
    # and the coordinates are an orthogonal transform of the centred in-plane coordinates
    q, *_ = np.linalg.lstsq(centred, p.coords, rcond=None)
    np.testing.assert_allclose(q.T @ q, np.eye(2), atol=1e-9)
    assert p.labels == tuple(str(i) for i in range(40))
    # deterministic signs
    np.testing.assert_array_equal(project(x).coords, p.coords)


def test_pca_of_a_trajectory_with_token_labels_and_one_feature():
    states = np.outer(np.arange(5.0), [1.0, 2.0, -1.0])  # a straight line in 3-D
    p = project_trajectory(states, tokens=["a", "b", "c", "d", "e"])
    assert p.labels == ("a", "b", "c", "d", "e")
    assert p.explained_variance[0] == pytest.approx(1.0)
    assert np.allclose(p.coords[:, 1], 0)
    one = project(np.arange(4.0)[:, None])
    assert one.coords.shape == (4, 2) and one.explained_variance[1] == 0


def test_tsne_is_seeded_and_reproducible():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.1, (6, 5)), rng.normal(5, 0.1, (6, 5))])  # two tight clusters
    a = project_units(x, "tsne", seed=3)
    b = project_units(x, "tsne", seed=3)
    assert a.method == "tsne" and a.explained_variance is None
    assert a.coords.shape == (12, 2)
    np.testing.assert_allclose(a.coords, b.coords)
    # the two clusters stay apart: every within-cluster distance beats every across-cluster one
    d = np.linalg.norm(a.coords[:, None] - a.coords[None], axis=-1)
    assert d[:6, :6].max() < d[:6, 6:].min() and d[6:, 6:].max() < d[:6, 6:].min()
    # perplexity is clipped below n for tiny inputs
    assert project_trajectory(x[:4], "tsne").coords.shape == (4, 2)


def test_umap_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(RnnvisError) as err:
        project(np.random.default_rng(0).normal(size=(10, 3)), "umap")
    assert "umap-learn" in str(err.value) and "pip install umap-learn" in err.value.fix


@pytest.mark.parametrize("bad", [
    np.zeros((2, 5)),  # fewer than 3 points
    np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]),
    np.array([[0.0, 1.0], [np.inf, 2.0], [3.0, 4.0]]),
    np.zeros(5),  # not 2-D
    np.zeros((4, 0)),
])
def test_bad_input_is_an_rnnvis_error(bad):
    for method in ("pca", "tsne"):
        with pytest.raises(RnnvisError):
            project(bad, method)


def test_bad_options():
    x = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(RnnvisError):
        project(x, "lda")
    with pytest.raises(RnnvisError):
        project(x, labels=["a", "b"])
    with pytest.raises(RnnvisError):
        project(x, "tsne", perplexity=0)
