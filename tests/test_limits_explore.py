"""Size limits of the exploration views: typed texts in tokens, saliency's length, steps and
batches, and the pattern matcher's memory and index files."""
import pytest
from fastapi.testclient import TestClient

from explore_support import make_explorer
from rnnvis.errors import RnnvisError
from rnnvis.explore import patterns
from rnnvis.explore import sentence as sent
from rnnvis.explore.session import NotReady
from rnnvis.server import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory, one_thread):
    ex = make_explorer(tmp_path_factory.mktemp("limits") / "home", planted_n=10)
    with TestClient(create_app(ex.ws, explorer=ex), base_url="http://127.0.0.1:8000") as c:
        c.ex = ex
        yield c
    ex.jobs.shutdown()


def ready(ex, ref):
    try:
        return ex.store(ref)
    except NotReady as e:
        assert ex.jobs.wait(e.job.id, 60).status == "done"
        return ex.store(ref)


def too_large(r, word="tokens"):
    assert r.status_code == 413, r.text
    body = r.json()
    assert set(body) == {"error", "fix"} and word in body["error"]


def test_typed_text_is_limited_in_tokens(client):
    long_text = "the " * (sent.MAX_TOKENS + 1)  # 8 kB: under the character limit
    assert len(long_text) < sent.MAX_TEXT
    too_large(client.post("/api/models/wlm/sentence", json={"text": long_text}))
    too_large(client.get("/api/models/wlm/projection", params={"what": "trajectory", "text": long_text}))
    too_large(client.post("/api/models/clm/sentence", json={"text": "x" * (sent.MAX_TOKENS + 1)}))  # characters
    ok = client.post("/api/models/wlm/sentence", json={"text": "the " * sent.MAX_TOKENS})
    assert ok.status_code == 200 and len(ok.json()["tokens"]) == sent.MAX_TOKENS
    with pytest.raises(sent.TooLarge):  # the Python API: one character limit, a 413 error too
        sent.sentence(client.ex, "wlm", text="a" * (sent.MAX_TEXT + 1))


def test_saliency_limits_tokens_and_steps(client):
    too_large(client.post("/api/models/wlm/saliency", json={"text": "the " * (sent.MAX_SALIENCY_TOKENS + 1)}))
    r = client.post("/api/models/wlm/saliency", json={"text": "the cat", "steps": sent.MAX_STEPS + 1})
    assert r.status_code == 400 and "steps" in r.json()["error"]
    r = client.post("/api/models/wlm/saliency", json={"text": "the cat", "steps": sent.MAX_STEPS})
    assert r.status_code == 200


def test_saliency_runs_integrated_gradients_in_bounded_batches(client, monkeypatch):
    import rnnvis.analysis as analysis

    real, seen = analysis.saliency, []

    def spy(*a, **kw):
        seen.append(kw.get("batch_size"))
        return real(*a, **kw)
    monkeypatch.setattr(analysis, "saliency", spy)
    text = "the cat sat on the mat " * 60  # 360 tokens
    T = len(client.ex.model("wlm").encode(text)[1])
    V = len(client.ex.model("wlm").itos)
    out = sent.saliency(client.ex, "wlm", text, steps=sent.MAX_STEPS)
    assert len(out["tokens"]) == T and seen and seen[0] is not None
    assert 1 <= seen[0] <= sent.IG_ROWS // T and seen[0] * T * V <= max(sent.IG_LOGITS, T * V)
    assert sent.ig_batch(512, 1) == 64 and sent.ig_batch(512, 50_000) == 1 and sent.ig_batch(10, 1) == 3276


def test_match_counts_from_the_index_without_caching_columns(client, monkeypatch):
    from rnnvis.analysis.pattern_index import store_thresholds

    ex = client.ex
    store = ready(ex, "own")
    kinds, real = [], ex.cached
    monkeypatch.setattr(ex, "cached", lambda kind, *a, **kw: kinds.append(kind) or real(kind, *a, **kw))
    units = [0, 1, 2, 3]
    thr = {"kind": "pct", "value": 60}
    m = patterns.match(ex, "own", None, units, thr, min_fraction=0.5, limit=200)
    assert m["matches"] and "pattern_index" in kinds
    assert "unit_columns" not in kinds  # no (tokens, units) copy of the stream kept in memory
    theta = store_thresholds(store, "layer0.fwd.h", patterns.threshold_of(thr))
    docs, starts, _ = ex.doc_index("own")
    for x in m["matches"]:
        a = int(starts[list(docs).index(x["doc"])])
        cs, ce = a + x["start"] - x["context"][0], a + x["stop"] + x["context"][1]
        expect = (store.read("layer0.fwd.h", cs, ce, units) >= theta[units]).sum(1)
        assert x["counts"] == expect.tolist()


def test_thresholds_are_rounded_and_index_files_are_capped(client, tmp_path):
    from rnnvis.analysis import Percentile, open_pattern_index

    ex = client.ex
    store = ready(ex, "own")
    assert patterns.threshold_of({"kind": "abs", "value": 0.50001}) == 0.5
    assert patterns.threshold_of({"kind": "pct", "value": 89.7}).q == 90
    folder = store.path.with_name(store.path.name + ".patterns")
    before = set(folder.glob("*.npz")) if folder.exists() else set()
    for v in (0.4001, 0.4002, 0.39999):
        patterns.match(ex, "own", None, [0], {"kind": "abs", "value": v})
    assert len(set(folder.glob("*.npz")) - before) <= 1  # one index for all three

    for q in range(10):  # the cache of a recording keeps the most recently used files only
        open_pattern_index(store, "layer0.fwd.h", Percentile(10 * q), folder=tmp_path, keep=3)
        if q == 2:
            first = set(tmp_path.glob("*.npz"))
        if q >= 3:
            open_pattern_index(store, "layer0.fwd.h", Percentile(0), folder=tmp_path, keep=3)  # used again
    files = set(tmp_path.glob("*.npz"))
    assert len(files) == 3
    assert len(first & files) == 1  # of the first three only Percentile(0), used all along, was kept
    assert len(set(folder.glob("*.npz"))) <= 8


def test_unknown_threshold_kind_still_400():
    with pytest.raises(RnnvisError):
        patterns.threshold_of({"kind": "nope", "value": 1})
