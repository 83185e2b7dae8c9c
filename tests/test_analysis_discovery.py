"""Unit discovery: vectorised AUC/correlations, probes, and a hand-built bracket-counting LSTM."""
import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from rnnvis.analysis import (
    auc_all_units,
    bracket_depth,
    discover_units,
    inside_quotes,
    linear_probe,
    pearson_all_units,
    rank_units,
    spearman_all_units,
)
from rnnvis.analysis.discovery import annotation_kind
from rnnvis.errors import RnnvisError


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(300, 20)), 1)  # many ties
    y = rng.random(300) < 0.3
    x[:, 3] += 2 * y  # one informative unit
    ours = auc_all_units(x, y)
    ref = np.array([roc_auc_score(y, x[:, j]) for j in range(20)])
    np.testing.assert_allclose(ours, ref)
    with pytest.raises(RnnvisError):
        auc_all_units(x, np.zeros(300, bool))


def test_correlations_match_numpy_and_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 5))
    x[:, 4] = 1.0  # constant unit
    t = rng.normal(size=100) + x[:, 0]
    r = pearson_all_units(x, t)
    np.testing.assert_allclose(r[:4], [np.corrcoef(x[:, j], t)[0, 1] for j in range(4)])
    assert r[4] == 0.0
    rho = spearman_all_units(x, t)
    np.testing.assert_allclose(rho[:4], [spearmanr(x[:, j], t).statistic for j in range(4)])


def test_annotation_kinds():
    assert annotation_kind(np.array([True, False])) == "binary"
    assert annotation_kind(np.array([0, 1, 1])) == "binary"
    assert annotation_kind(np.array([0, 1, 2])) == "scalar"
    assert annotation_kind(np.array([0.0, np.nan, 1.0])) == "scalar"
    assert annotation_kind(np.array(["NOUN", "VERB"])) == "categorical"


def test_rank_units_signed_effects_over_streams():
    rng = np.random.default_rng(2)
    y = rng.random(400) < 0.5
    a = rng.normal(size=(400, 3))
    b = rng.normal(size=(400, 2))
    a[:, 1] -= 3 * y  # strongly lower on annotated tokens
    b[:, 0] += 1 * y
    r = rank_units({"a": a, "b": b}, y, "flag")
    assert r.top(2)[0][:2] == ("a", 1) and r.top(2)[0][2] < -0.4
    assert r.top(2)[1][:2] == ("b", 0) and r.top(2)[1][2] > 0.1
    assert r.metric == "auc" and len(r.unit) == 5
    assert r.of_stream("b").unit.tolist()[0] == 0


def test_probes_read_planted_signal_held_out():
    rng = np.random.default_rng(3)
    n = 600
    x = rng.normal(size=(n, 8))
    docs = np.repeat(np.arange(12), n // 12)
    y_bin = x[:, 0] + 0.5 * x[:, 1] > 0
    p = linear_probe(x, y_bin, "flag", "s", doc_ids=docs)
    assert p.metric == "accuracy" and p.test_score > 0.9 > p.baseline
    assert p.n_train + p.n_test == n and p.n_test == 150  # 3 of 12 documents held out
    y_cat = np.array(["A", "B", "C"])[np.digitize(x[:, 2], [-0.5, 0.5])]
    assert linear_probe(x, y_cat).test_score > 0.85
    y_sc = 2 * x[:, 3] - x[:, 4] + 0.1 * rng.normal(size=n)
    ps = linear_probe(x, y_sc)
    assert ps.metric == "r2" and ps.test_score > 0.95
    again = linear_probe(x, y_sc)
    assert again == ps  # seeded


def bracket_lstm(hidden=6, seed=0):
    """An LSTM whose unit 0 counts open brackets in its cell state; the other units are random."""
    import torch

    torch.manual_seed(seed)
    vocab = "()ab "
    cell = torch.nn.LSTMCell(len(vocab), hidden)
    lstm = torch.nn.LSTM(len(vocab), hidden)
    with torch.no_grad():
        for p in cell.parameters():
            p.mul_(3.0)
        H = hidden
        for p in (cell.weight_ih, cell.weight_hh):
            p[[0, H, 2 * H, 3 * H]] = 0.0  # unit 0 of every gate: no input, no recurrence ...
        cell.bias_hh[[0, H, 2 * H, 3 * H]] = 0.0
        cell.bias_ih[[0, H, 2 * H, 3 * H]] = torch.tensor([20.0, 20.0, 0.0, 20.0])  # i, f, o open
        cell.weight_ih[2 * H, vocab.index("(")] = 20.0  # ... candidate +1 on '('
        cell.weight_ih[2 * H, vocab.index(")")] = -20.0  # ... and -1 on ')'
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, name + "_l0").copy_(getattr(cell, name))
    return vocab, cell, lstm


def bracket_text(n=300, seed=0):
    rng = np.random.default_rng(seed)
    out, depth = [], 0
    for _ in range(n):
        u = rng.random()
        if u < 0.15 and depth < 6:
            out.append("(")
            depth += 1
        elif u < 0.3 and depth > 0:
            out.append(")")
            depth -= 1
        else:
            out.append("ab "[rng.integers(3)])
    return out


def test_hand_built_counter_unit_is_ranked_first_for_bracket_depth():
    torch = pytest.importorskip("torch")
    vocab, cell, lstm = bracket_lstm()
    tokens = bracket_text()
    x = torch.nn.functional.one_hot(torch.tensor([vocab.index(t) for t in tokens]), len(vocab)).float()
    with torch.no_grad():
        out, _ = lstm(x[:, None, :])  # (time, 1, hidden)
        h = torch.zeros(1, cell.hidden_size)
        c = torch.zeros(1, cell.hidden_size)
        hs, cs = [], []
        for t in range(x.shape[0]):
            h, c = cell(x[t:t + 1], (h, c))
            hs.append(h[0])
            cs.append(c[0])
    h_steps, c_steps = torch.stack(hs).numpy(), torch.stack(cs).numpy()
    np.testing.assert_allclose(h_steps, out[:, 0].numpy(), atol=1e-5)  # the cell loop is the LSTM
    depth = bracket_depth(tokens)
    np.testing.assert_allclose(c_steps[:, 0], depth, atol=1e-4)  # the planted counter works
    streams = {"layer0.fwd.h": h_steps, "layer0.fwd.c": c_steps}
    annotations = {"bracket_depth": depth, "inside_quotes": inside_quotes(tokens)}  # no quotes: skipped
    found = discover_units(streams, annotations, method="pearson", probe=True)
    top = found.rankings["bracket_depth"].top(3)
    assert top[0][:2] == ("layer0.fwd.c", 0) and top[0][2] == pytest.approx(1.0, abs=1e-4)
    assert abs(top[1][2]) < top[0][2]
    spearman = discover_units(streams, {"bracket_depth": depth}, probe=False).rankings["bracket_depth"]
    assert spearman.of_stream("layer0.fwd.c").unit[0] == 0
    assert spearman.unit[0] == 0  # h = o·tanh(c) of the same unit ties with c under ranks
    assert "inside_quotes" not in found.rankings
    assert found.probes[("bracket_depth", "layer0.fwd.c")].test_score > 0.99


def test_categorical_annotation_ranked_one_vs_rest():
    rng = np.random.default_rng(4)
    tags = rng.choice(["NOUN", "VERB", "DET"], size=300)
    s = rng.normal(size=(300, 4))
    s[:, 2] += 3 * (tags == "VERB")
    found = discover_units({"h": s}, {"pos": tags}, probe=True)
    assert set(found.rankings) == {"pos=NOUN", "pos=VERB", "pos=DET"}
    assert found.rankings["pos=VERB"].top(1)[0][:2] == ("h", 2)
    assert found.probes[("pos", "h")].kind == "categorical"
