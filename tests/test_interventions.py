"""Interventions on the recurrence (issue 16): edits checked against hand-written step loops,
a planted bracket counter, corpus effects with random-unit controls, Python, CLI and HTTP."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from intervene_support import (BRACKET_VOCAB, COUNTER, DISTRACTOR, BracketLM, bracket_texts, cells_of,
                               gru_cell_step, lstm_cell_step, set_units)
from rnnvis.errors import RnnvisError
from rnnvis.recording.intervene import Edit, editable_streams, run_edited

pytestmark = pytest.mark.usefixtures("one_thread")


def _lstm(layers=2, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    return nn.LSTM(5, 7, num_layers=layers, batch_first=True, bidirectional=bidirectional).eval()


def _out(module):
    return lambda m, x: m(x)[0]


def test_no_edit_is_the_plain_forward():
    m = _lstm()
    x = torch.randn(3, 9, 5)
    got = run_edited(m, x, [], forward=_out(m))
    assert torch.allclose(got, m(x)[0], atol=1e-5)


def test_lstm_edits_match_a_hand_written_loop():
    """h zeroed at some steps of layer 0, c set to a constant in layer 1, forget gate fixed at 1 and
    input gate scaled in layer 0: the edited state carries to the next step and the next layer."""
    m = _lstm()
    x = torch.randn(2, 8, 5)
    edits = [Edit("layer0.fwd.h", (1, 4), "zero", steps=(2, 3, 6)),
             Edit("layer0.fwd.gate.f", (0, 2), "value", value=1.0),
             Edit("layer0.fwd.gate.i", (5,), "scale", value=0.5),
             Edit("layer1.fwd.c", (3,), "value", value=0.7, steps=(4,)),
             Edit("layer1.fwd.h", (0, 6), "mean", value=(0.1, -0.2))]
    got = run_edited(m, x, edits, forward=_out(m))
    c0, c1 = cells_of(m, 0), cells_of(m, 1)
    h = [torch.zeros(2, 7) for _ in range(2)]
    c = [torch.zeros(2, 7) for _ in range(2)]
    outs = []
    with torch.no_grad():
        # the hand step equals torch's own cell without edits
        ref = c0(x[:, 0], (h[0], c[0]))
        mine = lstm_cell_step(c0, x[:, 0], h[0], c[0])
        assert torch.allclose(ref[0], mine[0], atol=1e-6) and torch.allclose(ref[1], mine[1], atol=1e-6)
        for t in range(8):
            def g0(gs):
                gs = dict(gs)
                gs["f"] = set_units(gs["f"], (0, 2), 1.0)
                i = gs["i"].clone()
                i[:, 5] *= 0.5
                gs["i"] = i
                return gs
            h[0], c[0] = lstm_cell_step(c0, x[:, t], h[0], c[0], gate_fn=g0,
                                        h_fn=lambda v: set_units(v, (1, 4), 0.0, t in (2, 3, 6)))
            h[1], c[1] = lstm_cell_step(c1, h[0], h[1], c[1],
                                        c_fn=lambda v: set_units(v, (3,), 0.7, t == 4),
                                        h_fn=lambda v: set_units(v, (0, 6), torch.tensor([0.1, -0.2])))
            outs.append(h[1])
    want = torch.stack(outs, 1)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, m(x)[0], atol=1e-3)  # the edits changed something


def test_gru_gate_and_state_edits_match_a_hand_written_loop():
    torch.manual_seed(1)
    m = nn.GRU(4, 6, batch_first=True).eval()
    x = torch.randn(3, 7, 4)
    edits = [Edit("layer0.fwd.gate.z", (0, 3), "scale", value=0.0), Edit("layer0.fwd.gate.n", (2,), "value", value=0.5),
             Edit("layer0.fwd.h", (5,), "value", value=-1.0, steps=(1,))]
    got = run_edited(m, x, edits, forward=_out(m))
    cell = cells_of(m, 0, cls=nn.GRUCell)
    h = torch.zeros(3, 6)
    outs = []
    with torch.no_grad():
        assert torch.allclose(gru_cell_step(cell, x[:, 0], h), cell(x[:, 0], h), atol=1e-6)

        def gf(gs):
            gs = dict(gs)
            z = gs["z"].clone()
            z[:, [0, 3]] = 0.0
            gs["z"] = z
            if "n" in gs:
                gs["n"] = set_units(gs["n"], (2,), 0.5)
            return gs
        for t in range(7):
            h = gru_cell_step(cell, x[:, t], h, gate_fn=gf, h_fn=lambda v: set_units(v, (5,), -1.0, t == 1))
            outs.append(h)
    assert torch.allclose(got, torch.stack(outs, 1), atol=1e-5)


def test_rnn_edit_matches_a_hand_written_loop():
    torch.manual_seed(2)
    m = nn.RNN(3, 5, batch_first=True).eval()
    x = torch.randn(2, 6, 3)
    got = run_edited(m, x, [Edit("layer0.fwd.h", (0,), "value", value=0.9)], forward=_out(m))
    h = torch.zeros(2, 5)
    outs = []
    with torch.no_grad():
        for t in range(6):
            h = torch.tanh(x[:, t] @ m.weight_ih_l0.t() + m.bias_ih_l0 + h @ m.weight_hh_l0.t() + m.bias_hh_l0)
            h = set_units(h, (0,), 0.9)
            outs.append(h)
    assert torch.allclose(got, torch.stack(outs, 1), atol=1e-5)


def test_patch_on_the_backward_direction_of_packed_sequences():
    """Activation patching of the backward h at original steps 1 and 2, on packed sequences of unequal
    lengths: the reversed pass takes the source's values at the right original steps."""
    m = _lstm(layers=1, bidirectional=True, seed=3)
    x = torch.randn(2, 6, 5)
    src = torch.randn(1, 6, 5)
    lengths = torch.tensor([6, 4])

    def fwd(mod, inp):
        lens = lengths if inp.shape[0] == 2 else torch.tensor([inp.shape[1]])  # the source: one full row
        packed = nn.utils.rnn.pack_padded_sequence(inp, lens, batch_first=True, enforce_sorted=False)
        out, _ = mod(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]

    got = run_edited(m, x, [Edit("layer0.bwd.h", (0, 3), "patch", steps=(1, 2))], forward=fwd,
                     source=src)
    with torch.no_grad():
        src_out = m(src)[0]  # (1, 6, 14): the source's own backward h is src_out[..., 7:]
        cf, cb = cells_of(m, 0), cells_of(m, 0, reverse=True)
        for b, L in enumerate(lengths.tolist()):
            h, c = torch.zeros(1, 7), torch.zeros(1, 7)
            outs = {}
            for t in reversed(range(L)):
                h, c = lstm_cell_step(cb, x[b:b + 1, t], h, c,
                                      h_fn=lambda v: set_units(v, (0, 3), src_out[:, t, 7:][:, [0, 3]], t in (1, 2)))
                outs[t] = h
            want_b = torch.cat([outs[t] for t in range(L)])  # (L, 7)
            assert torch.allclose(got[b, :L, 7:], want_b, atol=1e-5)
            hf, cf_ = torch.zeros(1, 7), torch.zeros(1, 7)
            for t in range(L):  # the forward direction is untouched
                hf, cf_ = lstm_cell_step(cf, x[b:b + 1, t], hf, cf_)
                assert torch.allclose(got[b, t, :7], hf[0], atol=1e-5)


def test_rows_limit_an_edit_to_some_batch_rows():
    m = _lstm(layers=1)
    x = torch.randn(1, 5, 5).expand(3, 5, 5).contiguous()
    got = run_edited(m, x, [Edit("layer0.fwd.c", (0, 1, 2), "zero", rows=(1,))], forward=_out(m))
    assert torch.allclose(got[0], got[2]) and torch.allclose(got[0], m(x)[0][0], atol=1e-5)
    assert not torch.allclose(got[0], got[1], atol=1e-3)


def test_bad_edits_are_refused_with_a_fix():
    m = _lstm(layers=1)
    x = torch.randn(1, 3, 5)
    with pytest.raises(RnnvisError, match="layer0.fwd.gate.q"):
        run_edited(m, x, [Edit("layer0.fwd.gate.q", (0,))], forward=_out(m))
    with pytest.raises(RnnvisError, match="units \\[9\\]"):
        run_edited(m, x, [Edit("layer0.fwd.h", (9,))], forward=_out(m))
    with pytest.raises(RnnvisError, match="mode"):
        Edit("layer0.fwd.h", (0,), "erase")
    with pytest.raises(RnnvisError, match="value"):
        Edit("layer0.fwd.h", (0,), "value")
    assert "layer0.fwd.gate.f" in editable_streams(m)


# -- the planted bracket counter, through the corpus job ------------------------------------------
@pytest.fixture(scope="module")
def brackets(tmp_path_factory):
    """An Explorer serving the hand-built BracketLM on bracket texts, its view recording made."""
    from rnnvis.catalog import Catalog
    from rnnvis.explore.jobs import JobManager
    from rnnvis.explore.session import Explorer
    from rnnvis.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("brackets") / "home")
    ex = Explorer(ws, Catalog(ws.catalog_path), JobManager(), max_tokens=5000, warm=False)
    stoi = {w: i for i, w in enumerate(BRACKET_VOCAB)}
    ex.add_data("brackets", bracket_texts())
    ex.add_model("brackets", BracketLM(), encode=lambda t: [stoi[w] for w in t.split()], itos=BRACKET_VOCAB,
                 data="brackets")
    job = ex.jobs.wait(ex.start_recording("brackets").id, 120)
    assert job.status == "done", job.error
    yield ex
    ex.jobs.shutdown()


def _effects(ex, units, **kw):
    from rnnvis.explore.interventions import corpus_effects

    return corpus_effects(ex, "brackets", units, wait_s=120, **kw)


def _group(out, family, name):
    return next(g for g in out["groups"][family] if g["name"] == name)


def test_ablating_the_counter_breaks_closing_brackets(brackets):
    counter = _effects(brackets, [COUNTER])
    distractor = _effects(brackets, [DISTRACTOR])
    close_c, close_d = _group(counter, "word", ")"), _group(distractor, "word", ")")
    assert close_c["before"] < 0.1  # the intact model predicts ')' well
    assert close_c["delta"] > 3.0  # ablating the counter breaks it
    assert abs(close_d["delta"]) < 0.05  # ablating the distractor does not
    # the controls (one random unit of the other five, five draws) stay near zero on ')'
    assert counter["controls"] == 5 and len(counter["control_units"]) == 5
    assert all(COUNTER not in u for u in counter["control_units"])
    assert abs(close_c["control_mean"]) < 0.05 and close_c["excess"] > 3.0
    # inside brackets (bracket depth 1) the effect shows in the annotation table too: a and b are
    # easier to predict there without the counter (it made the model expect ')')
    depth = _group(counter, "annotation", "bracket_depth=1")
    assert depth["delta"] < -1.0 and abs(depth["control_mean"]) < 0.05
    assert counter["groups"]["annotation"][0]["name"] in ("bracket_depth=0", "bracket_depth=1")
    assert counter["overall"]["tokens"] > 0 and counter["measure"] == "loss"
    # next to it, the correlational score: the counter's h follows bracket depth, the distractor's does not
    assert counter["correlation"]["bracket_depth"][0] > 0.9
    assert abs(distractor["correlation"]["bracket_depth"][0]) < 0.5


def test_corpus_effect_of_no_change_is_exactly_zero(brackets):
    """Idle units (all weights zero): the edit changes nothing, and Δ is exactly 0 since the original
    runs in the same batch as the edit."""
    out = _effects(brackets, [4, 5], controls=2)
    assert out["overall"]["delta"] == 0.0


def test_mean_and_value_modes_and_the_cache(brackets):
    a = _effects(brackets, [COUNTER], mode="mean", controls=2)
    b = _effects(brackets, [COUNTER], mode="mean", controls=2)
    assert a == b  # cached
    clamp = _effects(brackets, [COUNTER], mode="value", value=1.0, controls=2, what="c")
    assert clamp["stream"] == "layer0.fwd.c"
    # a counter stuck at 'open' predicts ')' everywhere: the loss of other tokens rises
    assert _group(clamp, "word", "a")["delta"] > 1.0


def test_bad_requests_say_how_to_fix_them(brackets):
    from rnnvis.errors import NotFound

    with pytest.raises(NotFound, match="units \\[99\\]"):
        _effects(brackets, [99])
    with pytest.raises(RnnvisError, match="mode"):
        _effects(brackets, [0], mode="erase")
    with pytest.raises(NotFound, match="gate.q"):
        _effects(brackets, [0], what="gate.q")
    with pytest.raises(RnnvisError, match="number"):
        _effects(brackets, [0], mode="value", value="x")


def test_one_text_before_and_after(brackets):
    from rnnvis.explore.interventions import text_effects

    out = text_effects(brackets, "brackets", [COUNTER], text="a ( b a ) b", controls=3)
    assert out["tokens"] == ["a", "(", "b", "a", ")", "b"]
    assert out["delta"][0] is None and out["delta"][4] > 3.0  # the loss of ')' rises
    assert abs(out["control_delta"][4]) < 0.05
    assert out["next_before"][3][0]["token"] == ")" and out["next_after"][3][0]["token"] != ")"
    # patching the counter from a text with no open bracket has the same effect as ablating it
    patched = text_effects(brackets, "brackets", [COUNTER], text="a ( b a ) b", mode="patch",
                             source="a b a b a b")
    assert patched["delta"][4] > 3.0
    doc = text_effects(brackets, "brackets", [COUNTER], doc=0, controls=0)
    assert len(doc["tokens"]) == len(doc["delta"]) and doc["control_delta"] is None


def test_classifier_effects_per_slice(tmp_path):
    """Ablating the latch unit of a hand-built classifier drops the accuracy on positive examples to
    chance; the idle units (the controls) change nothing."""
    from intervene_support import CLF_VOCAB, LatchClassifier, latch_corpus
    from rnnvis.catalog import Catalog
    from rnnvis.explore.interventions import corpus_effects, text_effects
    from rnnvis.explore.jobs import JobManager
    from rnnvis.explore.session import Explorer
    from rnnvis.workspace import Workspace

    ws = Workspace.open(tmp_path / "home")
    ex = Explorer(ws, Catalog(ws.catalog_path), JobManager(), max_tokens=5000, warm=False)
    try:
        stoi = {w: i for i, w in enumerate(CLF_VOCAB)}
        ex.add_data("latch", latch_corpus())
        ex.add_model("latch", LatchClassifier(), encode=lambda t: [stoi[w] for w in t.split()], itos=CLF_VOCAB,
                     kind="classifier", labels=["neg", "pos"], data="latch")
        assert ex.jobs.wait(ex.start_recording("latch").id, 120).status == "done"
        out = corpus_effects(ex, "latch", [0], controls=2, wait_s=120)
        assert out["kind"] == "classifier" and out["measure"] == "p_gold"
        assert out["overall"]["before"] == 1.0 and out["overall"]["after"] == 0.5
        gold = {g["name"]: g for g in out["groups"]["gold"]}
        assert gold["pos"]["after"] == 0.0 and gold["pos"]["delta"] < -0.4
        assert gold["pos"]["control_mean"] == 0.0 and gold["pos"]["control_std"] == 0.0
        one = text_effects(ex, "latch", [0], text="the good film", controls=1)
        assert one["before"][1] > 0.99 and abs(one["after"][1] - 0.5) < 1e-6
    finally:
        ex.jobs.shutdown()


def test_http_job_then_result_and_per_text(brackets):
    """POST /intervene answers 409 with the job while it runs (or the result once cached), then the
    same JSON as Python; /intervene/text answers at once; bad bodies get {error, fix}."""
    from fastapi.testclient import TestClient

    from rnnvis.server.app import create_app

    client = TestClient(create_app(brackets.ws, explorer=brackets), base_url="http://127.0.0.1:8000")
    body = {"units": [COUNTER], "controls": 3, "seed": 7}
    r = client.post("/api/models/brackets/intervene", json=body)
    if r.status_code == 409:
        job = r.json()["job"]
        assert brackets.jobs.wait(job["id"], 120).status == "done"
        r = client.post("/api/models/brackets/intervene", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["stream"] == "layer0.fwd.h" and out["controls"] == 3 and out["seed"] == 7
    assert _group(out, "word", ")")["delta"] > 3.0
    t = client.post("/api/models/brackets/intervene/text", json={"units": [COUNTER], "text": "a ( b )"})
    assert t.status_code == 200 and t.json()["delta"][3] > 3.0
    bad = client.post("/api/models/brackets/intervene", json={"units": [77]})
    assert bad.status_code == 404 and "fix" in bad.json()
    assert client.post("/api/models/brackets/intervene", json={"units": []}).status_code in (400, 422)
    assert client.post("/api/models/brackets/intervene/text", json={"units": [0]}).status_code == 400
    assert "/api/models/{ref}/intervene" in client.get("/openapi.json").json()["paths"]


def test_python_and_cli_on_a_catalog_model(tmp_path, capsys):
    """`rnnvis.intervene` and `rnnvis intervene` on a trained catalog LM: the recording is made first,
    the table lists the overall effect and the controls."""
    import rnnvis
    from rnnvis.cli import main

    home = tmp_path / "home"
    data = tmp_path / "lines.txt"
    data.write_text("\n".join(["the cat sat on the mat .", "a dog ran in the park .", "the ( cat ) sat ."] * 10))
    torch.manual_seed(0)
    assert main(["train", "--data", str(data), "--per-line", "--name", "wlm", "--epochs", "1", "--emb", "8",
                 "--hidden", "12", "--batch-size", "4", "--bptt", "8", "--home", str(home)]) == 0
    out = rnnvis.intervene("wlm", [0, 3], controls=2, home=home, split="train")
    assert out["units"] == [0, 3] and out["split"] == "train" and out["overall"]["tokens"] > 0
    assert set(out["groups"]) >= {"word", "annotation"}
    one = rnnvis.intervene("wlm", "1", text="the cat sat", mode="scale", value=0.0, controls=0, home=home)
    assert one["tokens"] == ["the", "cat", "sat"] and one["mode"] == "scale"
    capsys.readouterr()
    assert main(["intervene", "wlm", "--units", "0,3", "--controls", "2", "--split", "train",
                 "--home", str(home)]) == 0
    table = capsys.readouterr().out
    assert "layer0.fwd.h" in table and "all" in table and "control" in table
    assert main(["intervene", "wlm", "--units", "0", "--set", "mean", "--what", "c", "--controls", "2",
                 "--split", "train", "--json", "--home", str(home)]) == 0
    assert '"mode": "mean"' in capsys.readouterr().out
    assert main(["intervene", "wlm", "--units", "99", "--home", str(home), "--split", "train"]) == 2
    assert "rnnvis: error: units [99]" in capsys.readouterr().err


def test_lstm_with_projection_edits_the_projected_h():
    torch.manual_seed(4)
    m = nn.LSTM(3, 6, proj_size=2, batch_first=True).eval()
    x = torch.randn(2, 5, 3)
    assert editable_streams(m)["layer0.fwd.h"] == 2 and editable_streams(m)["layer0.fwd.c"] == 6
    got = run_edited(m, x, [Edit("layer0.fwd.h", (1,), "value", value=0.3)], forward=_out(m))
    h, c = torch.zeros(2, 2), torch.zeros(2, 6)
    outs = []
    with torch.no_grad():
        for t in range(5):
            pre = x[:, t] @ m.weight_ih_l0.t() + m.bias_ih_l0 + h @ m.weight_hh_l0.t() + m.bias_hh_l0
            i, f, g, o = pre.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = set_units((torch.sigmoid(o) * torch.tanh(c)) @ m.weight_hr_l0.t(), (1,), 0.3)
            outs.append(h)
    assert torch.allclose(got, torch.stack(outs, 1), atol=1e-5)


def test_effect_sums_equal_the_per_group_means():
    """Sums folded chunk by chunk give each group's mean Δ and the controls' mean and spread."""
    import numpy as np

    from rnnvis.analysis.effects import EffectSums, random_units

    rng = np.random.default_rng(0)
    n = 500
    names = rng.choice(np.array(["x", "y", "", "z"], dtype=object), n)
    before, delta = rng.normal(2, 1, n), rng.normal(0, 1, n)
    before[3] = np.nan  # the last token of a window: no loss, in no group
    ctrl = rng.normal(0, 0.1, (3, n))
    s = EffectSums(3)
    for a in range(0, n, 128):
        s.add("all", "all", before[a:a + 128], delta[a:a + 128], ctrl[:, a:a + 128])
        s.add("word", names[a:a + 128], before[a:a + 128], delta[a:a + 128], ctrl[:, a:a + 128])
    eff = s.result()
    for name in ("x", "y", "z"):
        sel = (names == name) & np.isfinite(before)
        g = eff.get("word", name)
        per_draw = ctrl[:, sel].mean(1)
        assert g.tokens == sel.sum() and np.isclose(g.delta, delta[sel].mean())
        assert np.isclose(g.before, before[sel].mean()) and np.isclose(g.after, (before + delta)[sel].mean())
        assert np.isclose(g.control_mean, per_draw.mean()) and np.isclose(g.control_std, per_draw.std(ddof=1))
    assert eff.tokens == n - 1 and {g.name for g in eff.family("word")} == {"x", "y", "z"}
    draws = random_units(10, 3, (0, 1), 5, seed=1)
    assert draws == random_units(10, 3, (0, 1), 5, seed=1) and all(len(set(d)) == 3 and 0 not in d and 1 not in d
                                                                   for d in draws)


def test_step_cells_are_refused_with_a_fix():
    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.LSTMCell(3, 4)

        def forward(self, x):
            h = c = torch.zeros(x.shape[0], 4)
            for t in range(x.shape[1]):
                h, c = self.cell(x[:, t], (h, c))
            return h

    with pytest.raises(RnnvisError, match="step cells"):
        run_edited(Loop().eval(), torch.randn(1, 3, 3), [Edit("cell.h", (0,))])


def test_unedited_layers_run_fused_and_final_states_stay_right():
    """An edit of layer 1 only: layer 0 runs torch's fused kernel, and the module's final (h_n, c_n)
    are those of the hand loop, for both layers."""
    m = _lstm(seed=5)
    x = torch.randn(2, 6, 5)
    out, (h_n, c_n) = run_edited(m, x, [Edit("layer1.fwd.c", (2,), "zero")], forward=lambda mod, inp: mod(inp))
    c0, c1 = cells_of(m, 0), cells_of(m, 1)
    h = [torch.zeros(2, 7) for _ in range(2)]
    c = [torch.zeros(2, 7) for _ in range(2)]
    with torch.no_grad():
        for t in range(6):
            h[0], c[0] = lstm_cell_step(c0, x[:, t], h[0], c[0])
            h[1], c[1] = lstm_cell_step(c1, h[0], h[1], c[1], c_fn=lambda v: set_units(v, (2,), 0.0))
    assert torch.allclose(out[:, -1], h[1], atol=1e-5)
    assert torch.allclose(h_n, torch.stack(h), atol=1e-5) and torch.allclose(c_n, torch.stack(c), atol=1e-5)
