"""The exploration views on tiny models: schemas, consistency with the analyses, own models."""
import numpy as np
import pytest
import torch

from explore_support import make_explorer
from rnnvis.errors import NotFound, RnnvisError
from rnnvis.explore import memory, patterns
from rnnvis.explore import discovery as disc
from rnnvis.explore import sentence as sent
from rnnvis.explore.session import NotReady


@pytest.fixture(scope="module")
def ex(tmp_path_factory, one_thread):
    ex = make_explorer(tmp_path_factory.mktemp("explore") / "home")
    yield ex
    ex.jobs.shutdown()


def ready(ex, ref):
    """The view recording, made through the 409 path on first use."""
    try:
        return ex.store(ref)
    except NotReady as e:
        job = ex.jobs.wait(e.job.id, 60)
        assert job.status == "done", job.error
        return ex.store(ref)


def test_recording_is_a_job_then_ready(ex):
    info = ex.info("wlm")
    assert info["recording"]["status"] in ("missing", "running")
    with pytest.raises(NotReady) as e:
        ex.store("wlm")
    job = ex.jobs.wait(e.value.job.id, 60)
    assert job.kind == "record" and job.status == "done" and job.result["tokens"] > 0
    store = ex.store("wlm")
    info = ex.info("wlm")
    assert info["recording"]["status"] == "ready" and info["recording"]["tokens"] == store.n_tokens
    assert ex.start_recording("wlm").status == "done"
    assert info["kind"] == "lm" and info["level"] == "word" and info["cell"] == "lstm" and info["hidden"] == 12
    assert info["default_stream"] == "layer0.fwd.h"
    assert {s["name"] for s in info["streams"]} >= {"layer0.fwd.h", "layer0.fwd.c", "layer0.fwd.gate.f"}
    assert not info["own"] and not info["has_pos"]


def test_cancelled_recording_leaves_nothing(ex, tmp_path):
    from rnnvis.explore.jobs import JobCancelled
    calls = []

    def stop(done, total):
        calls.append(done)
        raise JobCancelled("stop")

    before = len(ex.catalog.recordings())
    with pytest.raises(JobCancelled):
        _record_with(ex, stop)
    assert calls and len(ex.catalog.recordings()) == before
    assert not [p for p in ex.ws.recordings_dir.iterdir() if p.name.endswith(".part")]


class _Ctx:
    def __init__(self, cb):
        self.cb = cb

    def progress(self, f, message=None, eta_s=None):
        self.cb(int(f * 100), 100)


def _record_with(ex, cb):
    h = ex.model("clm")
    old, ex.max_tokens = ex.max_tokens, 123  # another key: not the view recording
    try:
        return ex._record_catalog_on(h, ex.corpus("code"), _Ctx(cb))
    finally:
        ex.max_tokens = old


def test_cocluster_matches_the_analysis(ex):
    from rnnvis.analysis import cocluster, expected_response

    store = ready(ex, "wlm")
    out = memory.cocluster(ex, "wlm", min_count=2, max_words=50)
    st = store.stats["layer0.fwd.h"].deltas
    r = expected_response(st.mean.numpy(), st.var.numpy(), st.count.numpy(), ex.model("wlm").itos, min_count=2)
    cc = cocluster(r.mean.T, seed=0, words=r.words)
    assert out["k"] == cc.n_clusters and out["n_words"] == len(r.words)
    assert [u["cluster"] for u in out["units"]] == cc.unit_labels.tolist()
    assert np.allclose(np.array(out["links"], dtype=float), cc.link, atol=1e-5)
    words = {w["word"]: (c["id"], w["count"]) for c in out["word_clusters"] for w in c["words"]}
    for i, w in enumerate(r.words):
        assert words[w] == (int(cc.word_labels[i]), int(r.counts[i]))
    assert out["score_name"] == "bipartite modularity" and len(out["k_scores"]) >= 1
    assert out["k_rule"] == cc.k_rule and out["gap_threshold"] == 1.2
    assert [s["gap"] for s in out["k_scores"]] == pytest.approx([None if np.isnan(g) else g for g in cc.k_gaps])
    assert memory.cocluster(ex, "wlm", k=2, min_count=2)["k"] == 2
    with pytest.raises(RnnvisError):
        memory.cocluster(ex, "wlm", k=0)
    with pytest.raises(NotFound):
        memory.cocluster(ex, "wlm", stream="layer9.fwd.h")


def test_word_unit_radar_saturation(ex):
    ready(ex, "wlm")
    w = memory.word(ex, "wlm", None, "the")
    assert w["word"] == "the" and w["count"] > 0 and len(w["response"]) == 12 and len(w["std"]) == 12
    with pytest.raises(NotFound):
        memory.word(ex, "wlm", None, "xylophone")
    u = memory.unit(ex, "wlm", "layer0.fwd.h", 3, k=4, min_count=1)
    assert u["unit"] == 3 and len(u["positive"]) <= 4 and sum(u["histogram"]["counts"]) == ex.store("wlm").n_tokens
    assert len(u["histogram"]["edges"]) == len(u["histogram"]["counts"]) + 1
    for s in u["positive"]:
        assert s["mean"] > 0 and set(s) == {"word", "mean", "std", "count", "q"}
        assert s["q"] is None or (len(s["q"]) == 4 and s["q"][0] <= s["q"][3])
    with pytest.raises(NotFound):
        memory.unit(ex, "wlm", None, 99)
    present = [w["word"] for c in memory.cocluster(ex, "wlm", min_count=1)["word_clusters"] for w in c["words"]]
    rd = memory.radar(ex, "wlm", None, present[:3], n=5)
    assert rd["chosen_by"] == "variance across words" and len(rd["dims"]) == 5
    assert np.array(rd["values"]).shape == (3, 5)
    assert memory.radar(ex, "wlm", None, ["the"], dims=[1, 2])["chosen_by"] == "given"
    sat = memory.saturation(ex, "wlm")
    assert {g["gate"] for g in sat["gates"]} == {"i", "f", "g", "o"}
    assert all(0 <= x["low"] <= 1 and 0 <= x["high"] <= 1 for g in sat["gates"] for x in g["units"])
    assert {s["gate"] for s in sat["summary"]} == {"i", "f", "g", "o"}


def test_typed_sentence_glyphs_match_the_analysis(ex):
    from rnnvis.analysis import sentence_glyphs

    ready(ex, "wlm")
    out = sent.sentence(ex, "wlm", text="the cat sat on the mat .", streams=["layer0.fwd.h", "layer0.fwd.c"])
    assert out["source"] == "typed" and out["tokens"] == ["the", "cat", "sat", "on", "the", "mat", "."]
    assert np.array(out["streams"]["layer0.fwd.c"]).shape == (7, 12)
    assert len(out["outputs"]["loss"]) == 7 and out["outputs"]["loss"][-1] is None
    assert len(out["outputs"]["top"][0]) == 5 and out["outputs"]["probs"] is None
    _, rec, _ = ex.model("wlm").run_text("the cat sat on the mat .")
    labels = np.array(out["glyphs"]["unit_labels"])
    g = sentence_glyphs(rec["layer0.fwd.h"][0], labels, forget=rec["layer0.fwd.gate.f"][0],
                        n_clusters=out["glyphs"]["k"])
    for key in ("pos", "neg", "dpos", "dneg", "kept"):
        assert np.allclose(np.array(out["glyphs"][key], dtype=float), getattr(g, key), atol=1e-4)
    with pytest.raises(RnnvisError):
        sent.sentence(ex, "wlm")


def test_documents_and_corpus_sentence(ex):
    store = ready(ex, "wlm")
    docs = sent.documents(ex, "wlm", limit=3)
    assert docs["total"] == len(np.unique(store.doc_ids)) and len(docs["documents"]) == 3
    d = docs["documents"][0]
    out = sent.sentence(ex, "wlm", doc=d["doc"], start=1, stop=4)
    assert out["source"] == "corpus" and len(out["tokens"]) == 3
    assert np.array(out["streams"]["layer0.fwd.h"]).shape == (3, 12)
    assert len(out["outputs"]["loss"]) == 3 and np.array(out["glyphs"]["pos"]).shape[0] == 3
    word = d["preview"].split()[1]
    hit = sent.documents(ex, "wlm", q=word)
    assert hit["total"] >= 1 and all(word in x["preview"] for x in hit["documents"])
    with pytest.raises(NotFound):
        sent.sentence(ex, "wlm", doc=10_000)


def test_slow_discovery_runs_as_a_job(ex, monkeypatch):
    ready(ex, "wlm")
    monkeypatch.setattr(disc, "INLINE_CELLS", 0)
    with pytest.raises(NotReady) as e:
        disc.discovery(ex, "wlm", ["position_in_sentence"], top=2)
    job = ex.jobs.wait(e.value.job.id, 60)
    assert job.kind == "analysis" and job.status == "done"
    assert disc.discovery(ex, "wlm", ["position_in_sentence"], top=2)["annotations"][0]["name"] == "position_in_sentence"


def test_saliency_projection_discovery_word_lm(ex):
    ready(ex, "wlm")
    s = sent.saliency(ex, "wlm", "the cat sat on", steps=4)
    assert s["tokens"] == ["the", "cat", "sat", "on"] and len(s["methods"]["integrated"]) == 4
    assert np.array(s["dims"]).shape == (4, 8) and len(s["prediction"]) == 5
    assert sent.saliency(ex, "wlm", "the cat sat on", target="mat", steps=0)["target_label"] == "mat"
    p = memory.projection(ex, "wlm", "units")
    assert len(p["points"]) == 12 and len(p["explained"]) == 2
    t = memory.projection(ex, "wlm", "trajectory", text="the cat sat on the mat")
    assert [x["label"] for x in t["points"]] == ["the", "cat", "sat", "on", "the", "mat"]
    d = disc.discovery(ex, "wlm", ["negation_scope", "position_in_sentence"], top=3)
    assert [a["name"] for a in d["annotations"]] == ["negation_scope", "position_in_sentence"]
    kinds = {a["name"]: (a["kind"], a["metric"]) for a in d["annotations"]}
    assert kinds == {"negation_scope": ("binary", "auc"), "position_in_sentence": ("scalar", "pearson")}
    assert len(d["annotations"][1]["top"]) == 3 and len(d["annotations"][0]["top"]) in (0, 3)  # constant: none
    with pytest.raises(RnnvisError):
        disc.discovery(ex, "wlm", ["c_string"])


def test_classifier_views(ex):
    ready(ex, "clf")
    info = ex.info("clf")
    assert info["kind"] == "classifier" and info["labels"] == ["neg", "pos"]
    out = sent.sentence(ex, "clf", text="a great film")
    assert out["outputs"]["loss"] is None and [p["label"] for p in out["outputs"]["probs"]] == ["neg", "pos"]
    doc = sent.documents(ex, "clf")["documents"][0]["doc"]
    assert sent.sentence(ex, "clf", doc=doc)["outputs"]["probs"] is not None
    s = sent.saliency(ex, "clf", "a great film", steps=4)
    assert s["target_label"] in ("neg", "pos") and abs(sum(p["prob"] for p in s["prediction"]) - 1) < 1e-4
    assert sent.saliency(ex, "clf", "a great film", target="neg", steps=0)["target"] == 0
    assert {g["gate"] for g in memory.saturation(ex, "clf")["gates"]} == {"r", "z", "n"}


def test_char_lm_views(ex):
    ready(ex, "clm")
    assert ex.info("clm")["level"] == "char"
    out = sent.sentence(ex, "clm", text="int x;")
    assert out["tokens"] == list("int x;")
    avail = disc.available(ex, "clm")
    assert "c_string" in avail and "bracket_depth" in avail
    assert memory.cocluster(ex, "clm", min_count=1)["k"] >= 1


def test_own_model_and_planted_pattern(ex):
    assert any(m["name"] == "own" and m["kind"] == "own" for m in ex.models())
    store = ready(ex, "own")
    info = ex.info("own")
    assert info["own"] and info["dataset"] == "planted" and info["cell"] == "lstm"
    docs, starts, _ = ex.doc_index("own")
    tokens = ex.model("own").decode(store.token_ids)
    first = next(i for i, t in enumerate(tokens) if t == "zz")
    doc = int(store.doc_ids[first])
    a = int(starts[list(docs).index(doc)])
    sel = patterns.select(ex, "own", None, doc, first - a, first - a + 1, {"kind": "abs", "value": 0.5})
    assert set(sel["units"]) == {0, 1, 2} and sel["tokens"] == ["zz"]
    m = patterns.match(ex, "own", None, sel["units"], {"kind": "abs", "value": 0.5}, limit=500)
    assert m["total"] == ex.planted == sum(t == "zz" for t in tokens)
    x = m["matches"][0]
    assert x["tokens"][x["context"][0]] == "zz" and x["matched"] == 3 and x["stop"] - x["start"] == 1
    assert len(x["counts"]) == len(x["tokens"]) and x["counts"][x["context"][0]] == 3
    assert set(x["tracks"]) >= {"inside_quotes", "negation_scope"}
    assert m["length_hist"] == {"lengths": [1], "counts": [ex.planted]}
    with pytest.raises(NotFound):
        ex.model("nobody")


def test_cached_is_memoised_and_persisted(ex):
    calls = []
    f = lambda: calls.append(1) or {"v": 1}  # noqa: E731
    assert ex.cached("t", "wlm", {"a": 1}, f, persist=True) == {"v": 1}
    assert ex.cached("t", "wlm", {"a": 1}, f, persist=True) == {"v": 1}
    assert len(calls) == 1
    ex._cache.clear()
    assert ex.cached("t", "wlm", {"a": 1}, f, persist=True) == {"v": 1} and len(calls) == 1


def test_own_model_run_text_shapes(ex):
    toks, rec, out = ex.model("own").run_text("a zz b")
    assert toks == ["a", "zz", "b"] and rec["layer0.fwd.h"].shape == (1, 3, 6)
    assert out["logits"].shape == (1, 3, 7) and len(out["loss"]) == 3
    assert rec["layer0.fwd.h"][0, 1, :3].min() > 0.5 and rec["layer0.fwd.h"][0, 0, :3].max() < 0.5
    assert torch.is_tensor(torch.as_tensor(out["logits"]))
