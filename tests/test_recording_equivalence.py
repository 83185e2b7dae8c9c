"""Every recorded h, c and gate equals a plain step-by-step computation (torch docs formulas)."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


from rnnvis.errors import RnnvisError
from rnnvis.recording import record

I, H, P, T, B = 3, 4, 2, 5, 3


pytestmark = pytest.mark.usefixtures("one_thread")
TOL = 1e-5


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def ref_step(kind, w, x, h, c):
    """One step of the docs' formulas in float64; returns h, c and gates."""
    W_ih, W_hh, b_ih, b_hh, W_hr = w
    gi = W_ih @ x + b_ih
    gh = W_hh @ h + b_hh
    if kind == "lstm":
        n = W_hh.shape[0] // 4
        i, f = _sig(gi[:n] + gh[:n]), _sig(gi[n:2 * n] + gh[n:2 * n])
        g, o = np.tanh(gi[2 * n:3 * n] + gh[2 * n:3 * n]), _sig(gi[3 * n:] + gh[3 * n:])
        c = f * c + i * g
        h = o * np.tanh(c)
        if W_hr is not None:
            h = W_hr @ h
        return h, c, {"gate.i": i, "gate.f": f, "gate.g": g, "gate.o": o}
    if kind == "gru":
        n_ = W_hh.shape[0] // 3
        r = _sig(gi[:n_] + gh[:n_])
        z = _sig(gi[n_:2 * n_] + gh[n_:2 * n_])
        n = np.tanh(gi[2 * n_:] + r * gh[2 * n_:])
        return (1 - z) * n + z * h, None, {"gate.r": r, "gate.z": z, "gate.n": n}
    pre = gi + gh
    return (np.tanh(pre) if kind == "rnn_tanh" else np.maximum(pre, 0)), None, {}


def _weights(m, sfx):
    g = lambda n: getattr(m, n + sfx).detach().double().numpy() if hasattr(m, n + sfx) else None  # noqa: E731
    return g("weight_ih"), g("weight_hh"), g("bias_ih"), g("bias_hh"), g("weight_hr")


def ref_module(m, kind, xs, h0, c0):
    """Reference over each sequence separately: {name: [ (len_b, units) per sequence ]}."""
    D = 2 if m.bidirectional else 1
    out = {}
    for b, xb in enumerate(xs):  # xb (len_b, I)
        layer_in = xb
        for k in range(m.num_layers):
            dir_outs = []
            for d in range(D):
                w = _weights(m, f"_l{k}" + ("_reverse" if d else ""))
                h, c = h0[k * D + d, b], (c0[k * D + d, b] if c0 is not None else None)
                steps = range(len(xb)) if d == 0 else range(len(xb) - 1, -1, -1)
                rec = {}
                for t in steps:
                    h, c, gates = ref_step(kind, w, layer_in[t], h, c)
                    vals = {"h": h, **({"c": c} if c is not None else {}), **gates}
                    for n, v in vals.items():
                        rec.setdefault(n, {})[t] = v
                dname = "fwd" if d == 0 else "bwd"
                for n, per_t in rec.items():
                    arr = np.stack([per_t[t] for t in range(len(xb))])
                    out.setdefault(f"layer{k}.{dname}.{n}", []).append(arr)
                dir_outs.append(np.stack([rec["h"][t] for t in range(len(xb))]))
            layer_in = np.concatenate(dir_outs, axis=1)
    return out


def make(kind, layers, bidir, bf, proj):
    args = dict(input_size=I, hidden_size=H, num_layers=layers, bidirectional=bidir, batch_first=bf)
    if kind == "lstm":
        return nn.LSTM(proj_size=proj, **args)
    if kind == "gru":
        return nn.GRU(**args)
    return nn.RNN(nonlinearity=kind[4:], **args)


CONFIGS = [("rnn_tanh", 0), ("rnn_relu", 0), ("gru", 0), ("lstm", 0), ("lstm", P)]


@pytest.mark.parametrize("method", ["scan", "batched"])
@pytest.mark.parametrize("init", [False, True])
@pytest.mark.parametrize("packed", ["no", "sorted", "unsorted"])
@pytest.mark.parametrize("bf", [False, True])
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("kind,proj", CONFIGS)
def test_fused_matches_reference(kind, proj, layers, bidir, bf, packed, init, method):
    torch.manual_seed(layers * 7 + bidir)
    m = make(kind, layers, bidir, bf, proj).eval()
    D = 2 if bidir else 1
    lengths = torch.tensor([5, 4, 2] if packed == "sorted" else [3, 5, 2]) if packed != "no" else torch.full((B,), T)
    x = torch.randn(B, T, I)  # (batch, time, in)
    hout = proj or H
    h0 = torch.randn(layers * D, B, hout) if init else torch.zeros(layers * D, B, hout)
    c0 = torch.randn(layers * D, B, H) if (init and kind == "lstm") else torch.zeros(layers * D, B, H)
    xin = x if bf else x.transpose(0, 1)
    if packed != "no":
        xin = pack_padded_sequence(xin, lengths, batch_first=bf, enforce_sorted=packed == "sorted")
    args = (xin,)
    if init:
        args += ((h0, c0),) if kind == "lstm" else (h0,)
    out, rec = record(m, *args, method=method)
    ref = ref_module(m, kind, [x[b, : lengths[b]].double().numpy() for b in range(B)],
                     h0.double().numpy(), c0.double().numpy() if kind == "lstm" else None)
    assert sorted(rec.streams) == sorted(ref)
    np.testing.assert_array_equal(rec.lengths, lengths.numpy())
    for name, per_seq in ref.items():
        got = rec[name]
        assert got.dtype == np.float32 and got.shape[:2] == (B, T)
        for b, want in enumerate(per_seq):
            L = len(want)
            np.testing.assert_allclose(got[b, :L], want, atol=TOL, err_msg=name)
            assert np.all(got[b, L:] == 0)
    # the model's own output is returned untouched
    ref_out = m(*args)[0]
    o = out[0]
    assert torch.equal(o.data if packed != "no" else o, ref_out.data if packed != "no" else ref_out)


@pytest.mark.parametrize("kind", ["rnn_tanh", "gru", "lstm"])
def test_cells_in_user_loop(kind):
    torch.manual_seed(1)
    cell = {"rnn_tanh": nn.RNNCell(I, H), "gru": nn.GRUCell(I, H), "lstm": nn.LSTMCell(I, H)}[kind]

    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = cell

        def forward(self, x):  # (B, T, I)
            state = None
            outs = []
            for t in range(x.shape[1]):
                state = self.cell(x[:, t], state)
                outs.append(state[0] if kind == "lstm" else state)
            return torch.stack(outs, 1)

    x = torch.randn(B, T, I)
    out, rec = record(Loop(), x)
    assert torch.allclose(out, Loop()(x))
    w = (cell.weight_ih.detach().double().numpy(), cell.weight_hh.detach().double().numpy(),
         cell.bias_ih.detach().double().numpy(), cell.bias_hh.detach().double().numpy(), None)
    want_names = {"rnn_tanh": ["h"], "gru": ["h", "gate.r", "gate.z", "gate.n"],
                  "lstm": ["h", "c", "gate.i", "gate.f", "gate.g", "gate.o"]}[kind]
    assert sorted(rec.streams) == sorted(f"cell.{n}" for n in want_names)
    for b in range(B):
        h, c = np.zeros(H), np.zeros(H)
        for t in range(T):
            h, c2, gates = ref_step(kind, w, x[b, t].double().numpy(), h, c)
            vals = {"h": h, **gates, **({"c": c2} if kind == "lstm" else {})}
            c = c2
            for n, v in vals.items():
                np.testing.assert_allclose(rec[f"cell.{n}"][b, t], v, atol=TOL, err_msg=n)
    assert rec["cell.h"].shape == (B, T, H)


class EncDec(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential()
        self.encoder.add_module("rnn", nn.GRU(I, H, batch_first=True, bidirectional=True))
        self.decoder = nn.LSTM(2 * H, H, num_layers=2)

    def forward(self, x):
        e, _ = self.encoder.rnn(x)
        d, _ = self.decoder(e.transpose(0, 1))
        return d


def test_two_modules_are_prefixed():
    torch.manual_seed(2)
    m = EncDec().eval()
    x = torch.randn(B, T, I)
    _, rec = record(m, x)
    assert "encoder.rnn.layer0.bwd.gate.z" in rec.streams
    assert "decoder.layer1.fwd.c" in rec.streams
    assert not any(s.startswith("layer") for s in rec.streams)
    # decoder's first layer input is the encoder's output: recorded h agrees with both modules
    e, _ = m.encoder.rnn(x)
    np.testing.assert_allclose(rec["encoder.rnn.layer0.fwd.h"], e[..., :H].detach().numpy(), atol=1e-5)
    d = m(x).transpose(0, 1).detach().numpy()
    np.testing.assert_allclose(rec["decoder.layer1.fwd.h"], d, atol=1e-5)


def test_unbatched_input_and_stream_filter():
    torch.manual_seed(3)
    m = nn.LSTM(I, H, num_layers=2).eval()
    x = torch.randn(T, I)  # unbatched (time, in)
    out, rec = record(m, x, streams=["*.gate.f", "layer1.*.h"])
    assert sorted(rec.streams) == ["layer0.fwd.gate.f", "layer1.fwd.gate.f", "layer1.fwd.h"]
    assert rec["layer1.fwd.h"].shape == (1, T, H)
    np.testing.assert_allclose(rec["layer1.fwd.h"][0], out[0].detach().numpy(), atol=1e-5)


def test_no_recurrent_layer_is_a_clear_error():
    with pytest.raises(RnnvisError, match="no nn.RNN"):
        record(nn.Linear(3, 4), torch.randn(2, 3))


def test_wrong_shape_is_wrapped_and_hooks_removed():
    m = nn.GRU(I, H, batch_first=True).eval()
    with pytest.raises(RnnvisError, match="while recording") as ei:
        record(m, torch.randn(2, 5, I + 1))
    assert isinstance(ei.value.__cause__, RuntimeError)
    assert len(m._forward_hooks) == 0
    with pytest.raises(RnnvisError):
        record(m, torch.randint(0, 3, (2, 5, I)))  # integer dtype
    assert len(m._forward_hooks) == 0


def test_training_mode_with_dropout_is_refused():
    m = nn.LSTM(I, H, num_layers=2, dropout=0.5).train()
    with pytest.raises(RnnvisError, match="eval"):
        record(m, torch.randn(T, B, I))


def test_mismatch_names_the_layer():
    m = nn.LSTM(I, H, num_layers=2).eval()

    def tamper(module, args, output):
        out, (h, c) = output
        h = h.clone()
        h[1] += 1.0
        return out, (h, c)

    m.register_forward_hook(tamper)
    with pytest.raises(RnnvisError, match="layer1.fwd"):
        record(m, torch.randn(T, B, I))
