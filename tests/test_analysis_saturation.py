"""Gate saturation from per-token values and from folded counts."""
import numpy as np
import pytest

from rnnvis.analysis import (
    gate_saturation,
    gate_saturation_from_counts,
    saturation_fractions,
)
from rnnvis.analysis.saturation import parse_gate_name
from rnnvis.errors import RnnvisError


def test_parse_gate_names():
    assert parse_gate_name("layer1.fwd.gate.f") == ("layer1", "fwd", "f")
    assert parse_gate_name("layer2.bwd.gate.n") == ("layer2", "bwd", "n")
    assert parse_gate_name("layer1.fwd.h") is None


def test_sigmoid_and_tanh_thresholds():
    v = np.array([[0.05, -0.95], [0.5, 0.0], [0.95, 0.95], [0.02, 0.05]])
    left, right = saturation_fractions(v[:, :1])
    assert left.tolist() == [0.5] and right.tolist() == [0.25]
    left, right = saturation_fractions(v[:, 1:], tanh=True)
    assert left.tolist() == [0.25] and right.tolist() == [0.25]  # 0.0 and 0.05 are not saturated


def test_from_values_and_from_counts_agree_with_summary():
    rng = np.random.default_rng(0)
    values = {
        "layer1.fwd.gate.i": rng.uniform(0, 1, (500, 4)),
        "layer1.fwd.gate.f": 1 / (1 + np.exp(-rng.normal(0, 4, (500, 4)))),
        "layer1.fwd.gate.g": np.tanh(rng.normal(0, 3, (500, 4))),
        "layer2.fwd.gate.f": rng.uniform(0.95, 1.0, (500, 4)),
        "layer1.fwd.h": rng.normal(size=(500, 4)),  # not a gate: ignored
    }
    a = gate_saturation(values)
    assert [s.name for s in a.streams] == sorted(k for k in values if ".gate." in k)
    g = a.get("layer1.fwd.gate.g")
    assert g.tanh and g.left == pytest.approx((values["layer1.fwd.gate.g"] < -0.9).mean(0))
    counts = {}
    for name, v in values.items():
        tanh = name.endswith("gate.g")
        counts[name] = ((v < -0.9) if tanh else (v < 0.1)).sum(0), (v > 0.9).sum(0), v.shape[0]
    b = gate_saturation_from_counts(counts)
    for sa, sb in zip(a.streams, b.streams):
        np.testing.assert_allclose(sa.left, sb.left)
        np.testing.assert_allclose(sa.right, sb.right)
    assert a.get("layer2.fwd.gate.f").right == pytest.approx(np.ones(4))
    f_all = a.summary_of("f")
    assert f_all.units == 8
    expect = np.concatenate([a.get("layer1.fwd.gate.f").right, a.get("layer2.fwd.gate.f").right]).mean()
    assert f_all.right == pytest.approx(expect)
    assert a.summary_of("f", "layer2").right == pytest.approx(1.0)
    with pytest.raises(RnnvisError):
        a.summary_of("z")
    with pytest.raises(RnnvisError):
        a.get("layer9.fwd.gate.i")


def test_recorder_counts_give_the_same_saturation_as_values():
    """The recorder's below/above thresholds (saturation_low) match the analysis' definition."""
    from rnnvis.recording.stats import SAT_HIGH, saturation_low

    rng = np.random.default_rng(1)
    values = {"layer0.fwd.gate.g": np.tanh(rng.normal(0, 2, (500, 3))),
              "layer0.fwd.gate.f": 1 / (1 + np.exp(-rng.normal(0, 3, (500, 3))))}
    counts = {n: ((v < saturation_low(n)).sum(0), (v > SAT_HIGH).sum(0), v.shape[0]) for n, v in values.items()}
    from_values, from_counts = gate_saturation(values), gate_saturation_from_counts(counts)
    for name in values:
        np.testing.assert_allclose(from_counts.get(name).left, from_values.get(name).left)
        np.testing.assert_allclose(from_counts.get(name).right, from_values.get(name).right)
    assert from_values.get("layer0.fwd.gate.g").left.min() > 0  # the tanh gate really saturates low


def test_errors():
    with pytest.raises(RnnvisError):
        gate_saturation({"layer1.fwd.h": np.zeros((3, 2))})
    with pytest.raises(RnnvisError):
        gate_saturation_from_counts({"layer1.fwd.gate.i": (np.zeros(2), np.zeros(2), 0)})
    with pytest.raises(RnnvisError):
        saturation_fractions(np.zeros((0, 2)))
