"""Users' models as they are (issue 15): a model spec instead of a wrapper, plain vocabularies and
tokenizer objects, and saliency in the model's own layout."""
import json

import httpx
import numpy as np
import pytest
import torch

import rnnvis
from own_model_support import (ITOS, TEXTS, BatchLM, CallOnlyTokenizer, FakeHFTokenizer, PackedClassifier,
                               TimeBiLM, word_lm)
from rnnvis.analysis import saliency
from rnnvis.errors import RnnvisError
from rnnvis.models.spec import bind
from test_server_explore import wait_ready

CELLS = ["LSTM", "GRU", "RNN_TANH"]
STOI = {w: i for i, w in enumerate(ITOS)}


class HttpClient(httpx.Client):
    """An httpx client on a served app, with `.ex` (its Explorer) as the shared helpers expect."""

    def __init__(self, server):
        super().__init__(base_url=server.url.rstrip("/"), timeout=60)
        self.ex = server.explorer


def _explorer(home, models: dict, data: dict | None = None):
    """An Explorer (no warm-up) with own models given as Explorer.add_model arguments."""
    from rnnvis.catalog import Catalog
    from rnnvis.explore.jobs import JobManager
    from rnnvis.explore.session import Explorer
    from rnnvis.workspace import Workspace

    ws = Workspace.open(home)
    ex = Explorer(ws, Catalog(ws.catalog_path), JobManager(), warm=False)
    for name, texts in (data or {}).items():
        ex.add_data(name, texts)
    for name, kw in models.items():
        ex.add_model(name, **kw)
    return ex


def _ok(r):
    assert r.status_code == 200, (str(r.url), r.text)
    return json.loads(r.text)  # strict JSON: no NaN


# ---- the standard word language model, served as it is ---------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_standard_word_lm_is_served_with_a_short_spec_and_every_view_answers(tmp_path, cell, one_thread):
    model = word_lm(cell)
    spec = {"layout": "time", "extra": {"hidden": "init_hidden"},  # the spec: at most 3 lines
            "output": 0, "scores": "logprobs"}
    server = rnnvis.serve(models={"wlm": (model, ITOS, spec)}, data={"texts": TEXTS}, home=tmp_path / "h",
                          port=0, block=False, quiet=True)
    try:
        c = HttpClient(server)
        info = _ok(c.get("/api/models/wlm/info"))
        assert info["own"] and info["cell"] == cell.split("_")[0].lower() and info["layers"] == 2
        wait_ready(c, "wlm")
        cc = _ok(c.get("/api/models/wlm/cocluster", params={"min_count": 1}))
        word = cc["word_clusters"][0]["words"][0]["word"]
        doc = _ok(c.get("/api/models/wlm/documents"))["documents"][0]["doc"]
        typed = _ok(c.post("/api/models/wlm/sentence", json={"text": "the cat sat on"}))
        corpus = _ok(c.post("/api/models/wlm/sentence", json={"doc": doc, "start": 0, "stop": 4}))
        sal = _ok(c.post("/api/models/wlm/saliency", json={"text": "the cat sat", "steps": 4}))
        for url, kw in [("/api/models/wlm/word", {"params": {"word": word}}),
                        ("/api/models/wlm/unit", {"params": {"unit": 2}}),
                        ("/api/models/wlm/radar", {"params": {"words": word}}),
                        ("/api/models/wlm/projection", {"params": {"what": "units"}}),
                        ("/api/models/wlm/projection", {"params": {"what": "trajectory", "text": "the cat sat on"}}),
                        ("/api/models/wlm/saturation", {}),
                        ("/api/models/wlm/discovery", {"params": {"annotations": "position_in_sentence", "top": 2}})]:
            _ok(c.get(url, **kw))
        for url, body in [("/api/models/wlm/pattern/select", {"doc": doc, "start": 0, "stop": 1,
                                                              "threshold": {"kind": "abs", "value": 0.0}}),
                          ("/api/models/wlm/pattern/match", {"units": [0], "threshold": {"kind": "pct", "value": 80}})]:
            _ok(c.post(url, json=body))
    finally:
        server.stop()

    # the typed sentence is the model's own time-major run: states and next-token losses
    ids = torch.tensor([[STOI[w] for w in "the cat sat on".split()]])  # (1, T)
    with torch.no_grad():
        logp, _ = model(ids.t(), model.init_hidden(1))  # (T·1, V)
        _, rec = rnnvis.record(model, ids.t(), model.init_hidden(1))
    stream = next(iter(typed["streams"]))
    np.testing.assert_allclose(np.array(typed["streams"][stream]), rec[stream][0], atol=1e-5)
    want = [-float(logp[t, ids[0, t + 1]]) for t in range(3)]
    np.testing.assert_allclose(typed["outputs"]["loss"][:3], want, atol=1e-5)
    # the view recording (own_batches + record_corpus with the handle's forward) holds the same states
    first = TEXTS[doc] if doc < len(TEXTS) else None
    assert corpus["tokens"] == first.split()[:4]
    ids = torch.tensor([[STOI[w] for w in corpus["tokens"]]])
    with torch.no_grad():
        _, rec = rnnvis.record(model, ids.t(), model.init_hidden(1))
    np.testing.assert_allclose(np.array(corpus["streams"][stream]), rec[stream][0], atol=2e-3)  # float16 store
    # saliency: the next-token log-prob of the predicted word after the last token, per token
    assert sal["tokens"] == ["the", "cat", "sat"] and len(sal["methods"]["grad"]) == 3
    assert all(np.isfinite(sal["methods"]["integrated"]))


def test_the_standard_word_lm_needs_no_spec_at_all(tmp_path, one_thread):
    """Time-major (its layer is), a `hidden` argument (it has init_hidden), flattened log-probs:
    all found by the probe call; the bound call equals the spelled-out spec's."""
    model = word_lm("LSTM")
    auto = bind(model, None, "lm", len(ITOS))
    spelled = bind(model, {"layout": "time", "extra": {"hidden": "init_hidden"}, "output": 0}, "lm", len(ITOS))
    assert (auto.layout, auto.extra, auto.shape, auto.scores) == ("time", {"hidden": "init_hidden"}, "flat", "logprobs")
    assert auto.flat_order == "time"
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [2, 2, 3, 3]])  # (B=3, T=4)
    with torch.no_grad():
        got = auto(model, ids)
        ref, _ = model(ids.t(), model.init_hidden(3))  # (T·B, V), time-major rows
    assert got.shape == (3, 4, len(ITOS))
    torch.testing.assert_close(got, ref.view(4, 3, -1).transpose(0, 1))
    torch.testing.assert_close(spelled(model, ids), got)
    ex = _explorer(tmp_path / "h", {"wlm": {"module": model, "tokenizer": ITOS}})
    try:
        tokens, rec, out = ex.model("wlm").run_text("the dog ran")
        assert tokens == ["the", "dog", "ran"] and out["logits"].shape == (1, 3, len(ITOS))
    finally:
        ex.jobs.shutdown()


def test_batch_major_probs_and_time_major_output_are_read_right():
    torch.manual_seed(0)
    m = BatchLM(len(ITOS)).eval()
    b = bind(m, None, "lm", len(ITOS))
    assert (b.layout, b.shape, b.scores) == ("batch", "bt", "logits")

    class Probs(torch.nn.Module):  # batch-major input, a time-major GRU inside, (T, B, V) probabilities out
        def __init__(self):
            super().__init__()
            self.inner = BatchLM(len(ITOS))

        def forward(self, ids):
            return torch.softmax(self.inner(ids)[0], -1).transpose(0, 1)

    p = Probs().eval()
    b = bind(p, None, "lm", len(ITOS))
    assert (b.layout, b.shape, b.scores) == ("batch", "tb", "probs")
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(b(p, ids), torch.log_softmax(p.inner(ids)[0], -1), atol=1e-5, rtol=1e-5)


def test_the_layout_is_the_one_the_recurrent_layer_really_sees():
    """A step cell's model (no batch_first to read) and a time-major layer behind a batch-major
    forward: the probe's batch size as the recurrent module saw it decides."""

    class CellLM(torch.nn.Module):  # batch-major ids, a GRUCell stepped over time
        def __init__(self):
            super().__init__()
            self.embedding, self.cell = torch.nn.Embedding(len(ITOS), 4), torch.nn.GRUCell(4, 5)
            self.out = torch.nn.Linear(5, len(ITOS))

        def forward(self, ids):
            e, h, hs = self.embedding(ids), None, []
            for t in range(ids.shape[1]):
                h = self.cell(e[:, t], h)
                hs.append(h)
            return self.out(torch.stack(hs, 1))

    class Transposing(torch.nn.Module):  # batch-major ids; transposes for its time-major GRU
        def __init__(self):
            super().__init__()
            self.embedding, self.rnn = torch.nn.Embedding(len(ITOS), 4), torch.nn.GRU(4, 5)
            self.out = torch.nn.Linear(5, len(ITOS))

        def forward(self, ids):
            return self.out(self.rnn(self.embedding(ids).transpose(0, 1))[0]).transpose(0, 1)

    torch.manual_seed(0)
    for m in (CellLM().eval(), Transposing().eval()):
        b = bind(m, None, "lm", len(ITOS))
        assert (b.layout, b.shape) == ("batch", "bt"), type(m).__name__
        ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
        with torch.no_grad():
            torch.testing.assert_close(b(m, ids), m(ids))


def test_the_row_order_of_flattened_logits_is_found_not_assumed():
    """A batch-major model may flatten (T, B, V) (time order) and a time-major one (B, T, V)."""

    class Flat(torch.nn.Module):
        def __init__(self, batch_first: bool, flatten_time: bool):
            super().__init__()
            self.flatten_time = flatten_time
            self.embedding = torch.nn.Embedding(len(ITOS), 4)
            self.rnn = torch.nn.GRU(4, 5, batch_first=batch_first)
            self.out = torch.nn.Linear(5, len(ITOS))

        def forward(self, ids):
            h = self.out(self.rnn(self.embedding(ids))[0])  # the input's layout
            time_first = not self.rnn.batch_first
            if time_first != self.flatten_time:
                h = h.transpose(0, 1)
            return h.reshape(-1, h.shape[-1])

    torch.manual_seed(0)
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 1, 2, 3]])  # (B=3, T=4)
    for batch_first in (True, False):
        for flatten_time in (True, False):
            m = Flat(batch_first, flatten_time).eval()
            b = bind(m, None, "lm", len(ITOS))
            assert b.flat_order == ("time" if flatten_time else "batch")
            x = ids if batch_first else ids.t()
            with torch.no_grad():
                ref = m.out(m.rnn(m.embedding(x))[0])
                ref = ref if batch_first else ref.transpose(0, 1)  # (B, T, V)
                torch.testing.assert_close(b(m, ids), ref)


# ---- what cannot be detected is asked for; the model's errors are the model's ---------------------------
def test_an_argument_rnnvis_cannot_build_is_asked_for_by_its_spec_keyword():
    class NeedsMemory(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = BatchLM(len(ITOS))

        def forward(self, ids, memory):
            return self.inner(ids)[0] + memory

    with pytest.raises(RnnvisError, match="'memory'") as e:
        bind(NeedsMemory(), None, "lm", len(ITOS))
    assert "spec={'extra': {'memory':" in e.value.fix
    b = bind(NeedsMemory(), {"extra": {"memory": lambda batch_size: torch.zeros(batch_size, 1, 1)}}, "lm")
    assert b.extra["memory"](2).shape == (2, 1, 1)
    with pytest.raises(RnnvisError, match="unknown model spec key"):
        bind(word_lm("GRU"), {"hiden": "init_hidden"})
    with pytest.raises(RnnvisError, match="no method 'init_hiden'"):
        bind(word_lm("GRU"), {"extra": {"hidden": "init_hiden"}})
    with pytest.raises(RnnvisError, match="layout"):
        bind(word_lm("GRU"), {"layout": "tbc"})


def test_output_without_logits_asks_for_its_position():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = BatchLM(len(ITOS))

        def forward(self, ids):
            logits, state = self.inner(ids)
            return state, logits  # the first tensor is the state, not the logits

    with pytest.raises(RnnvisError, match="no logits") as e:
        bind(Odd(), None, "lm", len(ITOS))
    assert "'output'" in e.value.fix
    assert bind(Odd(), {"output": 1}, "lm", len(ITOS)).shape == "bt"


def test_an_error_inside_the_users_forward_is_theirs_with_the_call_rnnvis_made(tmp_path, one_thread):
    class Fragile(torch.nn.Module):
        """Fine on short inputs; its own bug on inputs of more than 3 steps."""

        def __init__(self):
            super().__init__()
            self.lm = word_lm("GRU")

        def forward(self, input, hidden):
            if input.shape[0] > 3:
                raise ValueError("sequence too long for my buffer")
            return self.lm(input, hidden)

        def init_hidden(self, bsz):
            return self.lm.init_hidden(bsz)

    server = rnnvis.serve(models={"f": (Fragile().eval(), ITOS)}, data={"texts": TEXTS}, home=tmp_path / "h",
                          port=0, block=False, quiet=True)
    try:
        with HttpClient(server) as c:
            r = c.post("/api/models/f/sentence", json={"text": "the cat sat on the mat"})
    finally:
        server.stop()
    body = r.json()
    assert r.status_code == 400, body
    assert "your model raised ValueError: sequence too long for my buffer" in body["error"]
    assert "Fragile.forward(int64(6, 1), hidden=float32(2, 1, 8))" in body["error"]
    assert "bug in rnnvis" not in body["fix"] and "model's own error" in body["fix"]

    class Broken(torch.nn.Module):  # fails on every call: refused when added, with the call
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(4, 4)

        def forward(self, input):
            raise RuntimeError("boom")

    with pytest.raises(RnnvisError, match=r"your model raised RuntimeError: boom .*Broken\.forward\(int64\(3, 2\)\)"):
        rnnvis.serve(models={"b": (Broken(), ITOS)}, home=tmp_path / "h2", block=False, port=0, quiet=True)


# ---- tokenizers -------------------------------------------------------------------------------------------
def _encoded(tmp_path, tokenizer, text, **kw):
    model = kw.pop("model", None) or BatchLM(len(ITOS) + 1).eval()
    ex = _explorer(tmp_path / "h", {"m": {"module": model, "tokenizer": tokenizer, **kw}})
    try:
        h = ex.model("m")
        return h.encode(text), h.level
    finally:
        ex.jobs.shutdown()


def test_a_plain_vocabulary_with_a_split_rule(tmp_path):
    (tokens, ids), level = _encoded(tmp_path, ITOS, "the cat zebra")
    assert tokens == ["the", "cat", "zebra"] and ids == [STOI["the"], STOI["cat"], 0] and level == "word"
    chars = {"<unk>": 0, "a": 1, "b": 2, " ": 3}
    (tokens, ids), level = _encoded(tmp_path, chars, "ab ba", split_by="chars")
    assert tokens == list("ab ba") and ids == [1, 2, 3, 2, 1] and level == "char"
    (tokens, ids), _ = _encoded(tmp_path, ITOS, "the,cat", split_by=lambda t: t.split(","))
    assert ids == [STOI["the"], STOI["cat"]]
    with pytest.raises(RnnvisError, match="'zebra' is not in the vocabulary"):
        _encoded(tmp_path, ITOS[1:], "the zebra")
    with pytest.raises(RnnvisError, match="split rule"):
        _encoded(tmp_path, ITOS, "the", split_by="words")


def test_tokenizer_objects_with_encode_or_call(tmp_path):
    (tokens, ids), _ = _encoded(tmp_path, FakeHFTokenizer(ITOS), "the cat")
    hf = FakeHFTokenizer(ITOS)
    assert ids == [hf.stoi["the"], hf.stoi["cat"]] and tokens == ["the", "cat"]  # no [CLS] added
    (tokens, ids), _ = _encoded(tmp_path, CallOnlyTokenizer(ITOS), "the mat")
    assert ids == [STOI["the"], STOI["mat"]] and tokens == ["the", "mat"]

    class NoTokens:
        def encode(self, text):
            return [1]

    with pytest.raises(RnnvisError, match="cannot read the tokens") as e:
        _encoded(tmp_path, NoTokens(), "x")
    assert "itos=" in e.value.fix


# ---- saliency in the model's own layout -----------------------------------------------------------------
def _hand(call, emb_mod, score_of, alpha=None):
    """(score, ∂score/∂e, e) with e the embedding output as the model produced it (optionally scaled)."""
    kept = {}

    def hook(mod, inputs, out):
        e = out if alpha is None else out * alpha
        e.retain_grad()
        kept["e"] = e
        return e

    h = emb_mod.register_forward_hook(hook)
    try:
        s = score_of(call())
        s.backward()
    finally:
        h.remove()
    return float(s), kept["e"].grad.detach(), kept["e"].detach()


def _check(model, emb_mod, ids, call, score_of, layout_tokens, **kw):
    """saliency against autograd on the real embedding output: grad, grad × input, integrated gradients."""
    steps = 4
    s = saliency(model, ids, steps=steps, score="logprob", **kw)
    model.zero_grad()
    score, g, e = _hand(call, emb_mod, score_of)
    np.testing.assert_allclose(s.score, score, atol=1e-5)
    np.testing.assert_allclose(s.grad, layout_tokens(g).double().numpy(), atol=1e-6)
    np.testing.assert_allclose(s.grad_x_input, (layout_tokens(g) * layout_tokens(e)).double().numpy(), atol=1e-6)
    ig = sum(layout_tokens(_hand(call, emb_mod, score_of, alpha=(k + 0.5) / steps)[1]) for k in range(steps))
    np.testing.assert_allclose(s.ig, (ig / steps * layout_tokens(e)).double().numpy(), atol=1e-6)
    return s


def test_saliency_of_a_time_major_model_hooks_its_real_embedding_output():
    model = word_lm("LSTM")
    ids = torch.tensor([STOI[w] for w in "the cat sat on".split()])  # (T,)
    b = bind(model)
    target = STOI["mat"]
    s = _check(model, model.encoder, ids, lambda: model(ids[:, None], model.init_hidden(1))[0],
               lambda out: out[3, target],  # (T·1, V) log-probs: the row of the last position
               lambda t: t[:, 0], forward=lambda x: b(model, x), position=3, target=target)
    assert s.tokens_ids.tolist() == ids.tolist() and s.grad.shape == (4, 8)
    assert model.training is False


def test_saliency_of_a_batch_major_model():
    torch.manual_seed(1)
    model = BatchLM(len(ITOS)).eval()
    ids = torch.tensor([3, 1, 4, 1, 5])
    _check(model, model.embedding, ids, lambda: model(ids[None])[0],
           lambda out: torch.log_softmax(out[0, 2], -1)[ids[3]], lambda t: t[0], position=2)


def test_saliency_of_a_bidirectional_time_major_model():
    torch.manual_seed(2)
    model = TimeBiLM(len(ITOS)).eval()
    b = bind(model, None, "lm", len(ITOS))
    assert (b.layout, b.shape) == ("time", "tb")
    ids = torch.tensor([2, 7, 1, 8])
    s = _check(model, model.embedding, ids, lambda: model(ids[:, None]),
               lambda out: torch.log_softmax(out[1, 0], -1)[5], lambda t: t[:, 0], forward=lambda x: b(model, x),
               position=1, target=5)
    assert abs(s.gxi_token[3]) > 0  # the backward direction lets a later token matter


def test_saliency_of_a_model_that_packs_its_input():
    torch.manual_seed(3)
    model = PackedClassifier(len(ITOS)).eval()
    ids = torch.tensor([4, 2, 6, 9, 1])
    b = bind(model, None, "classifier", len(ITOS))
    assert b.extra == {"lengths": "lengths"}
    lengths = torch.tensor([5])
    _check(model, model.embedding, ids, lambda: model(ids[None], lengths),
           lambda out: torch.log_softmax(out[0], -1)[2], lambda t: t[0], forward=lambda x: b(model, x), target=2)


def test_the_saliency_view_of_a_time_major_model(tmp_path, one_thread):
    model = word_lm("GRU")
    ex = _explorer(tmp_path / "h", {"wlm": {"module": model, "tokenizer": ITOS}})
    try:
        from rnnvis.explore.sentence import saliency as view

        out = view(ex, "wlm", "the cat sat", target="on", steps=2)
    finally:
        ex.jobs.shutdown()
    ids = torch.tensor([STOI[w] for w in ["the", "cat", "sat"]])
    _, g, e = _hand(lambda: model(ids[:, None], model.init_hidden(1))[0], model.encoder,
                    lambda o: o[2, STOI["on"]])
    assert out["target_label"] == "on"
    np.testing.assert_allclose(out["methods"]["grad_x_input"], (g[:, 0] * e[:, 0]).sum(-1).numpy(), atol=1e-5)


def test_an_own_classifier_that_packs_its_input_in_the_errors_view(tmp_path, one_thread):
    """forward(ids, lengths): lengths found by name, built per batch for the recording and for the
    misclassified examples' saliency."""
    from rnnvis.data import Corpus, Document
    from rnnvis.explore.perf import errors
    from rnnvis.explore.session import NotReady

    torch.manual_seed(4)
    model = PackedClassifier(len(ITOS)).eval()
    docs = [Document(id=str(i), text=t, label=i % 3) for i, t in enumerate(TEXTS)]
    ex = _explorer(tmp_path / "h", {"c": {"module": model, "tokenizer": ITOS, "kind": "classifier",
                                          "labels": ["x", "y", "z"], "data": "lab"}},
                   {"lab": Corpus("lab", docs)})
    try:
        for _ in range(3):
            try:
                out = errors(ex, "c")
                break
            except NotReady as e:
                assert ex.jobs.wait(e.job.id, 60).status == "done"
    finally:
        ex.jobs.shutdown()
    assert out["kind"] == "classifier" and out["misclassified"]
    m = out["misclassified"][0]
    ids = torch.tensor([STOI[w] for w in m["tokens"]])
    target = ["x", "y", "z"].index(m["predicted"])
    _, g, _ = _hand(lambda: model(ids[None], torch.tensor([len(ids)])), model.embedding,
                    lambda o: torch.log_softmax(o[0], -1)[target])
    np.testing.assert_allclose(m["saliency"], g[0].norm(dim=-1).numpy(), atol=1e-5)
