"""Representation similarity (CKA, SVCCA) and per-group loss differences."""
import numpy as np
import pytest
from scipy.stats import ortho_group

from rnnvis.analysis.similarity import layer_similarity, linear_cka, loss_difference, svcca
from rnnvis.errors import RnnvisError


def _data(seed=0, tokens=2000, units=16):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(tokens, units)) @ rng.normal(size=(units, units))  # correlated units


def test_cka_is_one_for_itself_and_rotations_and_low_for_unrelated_data():
    x = _data()
    q = ortho_group.rvs(16, random_state=1)
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ q) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0)  # isotropic scale and shift
    unrelated = linear_cka(x, _data(seed=2))
    assert unrelated < 0.2
    assert linear_cka(x, x[:, :8]) < 1.0


def test_svcca_is_one_for_rotations_and_low_for_unrelated_data():
    x = _data()
    rng = np.random.default_rng(3)
    assert svcca(x, x) == pytest.approx(1.0)
    assert svcca(x, x @ ortho_group.rvs(16, random_state=2)) == pytest.approx(1.0)
    assert svcca(x, x @ rng.normal(size=(16, 16))) > 0.95  # the 99% cut may keep other directions
    assert svcca(x, _data(seed=4)) < 0.2


def test_layer_similarity_matrix():
    x1, x2 = _data(0), _data(5)
    s = layer_similarity({"l1": x1, "l2": x2}, {"m1": x2, "m2": x1, "m3": x1 @ ortho_group.rvs(16, random_state=0)})
    assert s.matrix.shape == (2, 3)
    assert s.value("l1", "m2") == pytest.approx(1) and s.value("l2", "m1") == pytest.approx(1)
    assert s.value("l1", "m3") == pytest.approx(1) and s.value("l1", "m1") < 0.2
    assert layer_similarity({"a": x1}, {"b": x1}, method="svcca").matrix[0, 0] == pytest.approx(1)
    with pytest.raises(RnnvisError):
        layer_similarity({"a": x1}, {"b": x1[:10]})
    with pytest.raises(RnnvisError):
        layer_similarity({"a": x1}, {"b": x1}, method="rsa")


def test_loss_difference_by_group():
    la = np.array([1.0, 2.0, 3.0, 1.0, 5.0])
    lb = np.array([2.0, 2.5, 1.0, 1.0, 4.0])
    d = loss_difference(la, lb, ["the", "the", "cat", "the", "dog"])
    assert d.groups == ("the", "cat", "dog")
    r = d.row("the")
    assert r["count"] == 3 and r["mean_diff"] == pytest.approx(-0.5) and r["a_wins"] == pytest.approx(2 / 3)
    assert r["share"] == pytest.approx(0.6) and d.total_mean_diff == pytest.approx(0.3)
    assert loss_difference(la, lb, ["x"] * 4 + ["y"], min_count=2).groups == ("x",)


def test_checkpoint_dynamics_uses_cka_to_the_final_checkpoint():
    from rnnvis.analysis.dynamics import checkpoint_dynamics, mean_abs_delta

    rng = np.random.default_rng(7)
    final_h = np.tanh(_data(8, tokens=600, units=8) / 4)
    ckpts = []
    for noise in (3.0, 1.0, 0.0):  # training converges on the final representation
        h = final_h + noise * rng.normal(size=final_h.shape)
        f = 1 / (1 + np.exp(-rng.normal(0, 1 + 3 * (3 - noise), size=(600, 8))))  # gates saturate over training
        ckpts.append({"layer1.fwd.h": h, "layer1.fwd.gate.f": f})
    docs = np.repeat([0, 1], 300)
    d = checkpoint_dynamics(ckpts, labels=["e1", "e2", "e3"], doc_ids=docs)
    cka = d.cka_to_final["layer1.fwd.h"]
    assert cka[-1] == pytest.approx(1.0) and cka[0] < cka[1] < cka[2]
    sat = d.saturation_left["layer1.fwd.gate.f"] + d.saturation_right["layer1.fwd.gate.f"]
    assert sat[0] < sat[1] < sat[2] and "layer1.fwd.gate.f" not in d.delta
    h = np.array([[0.0], [1.0], [5.0], [6.0]])
    assert mean_abs_delta(h) == pytest.approx(2.0) and mean_abs_delta(h, np.array([0, 0, 1, 1])) == 1.0
    with pytest.raises(RnnvisError):
        checkpoint_dynamics([{}, {"layer1.fwd.h": final_h}])  # the first lacks a stream
