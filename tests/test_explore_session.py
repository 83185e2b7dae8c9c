"""Explorer internals: cache peeks never wait for a running job, view recordings are found by their exact
key (same data), modules are copied under their lock, checkpoints load outside the shared lock, and
analysis jobs run again after a failure."""
import copy
import threading

import pytest
import torch

from explore_support import PlantedLSTM, make_explorer, planted_data
from perf_support import ready
from rnnvis.errors import RnnvisError
from rnnvis.explore import compare as cmp
from rnnvis.explore import perf
from rnnvis.explore.jobs import JobManager
from rnnvis.explore.session import Explorer, NotReady


@pytest.fixture(scope="module")
def ex(tmp_path_factory, one_thread):
    ex = make_explorer(tmp_path_factory.mktemp("session") / "home")
    yield ex
    ex.jobs.shutdown()


def _explorer(base: Explorer, data: dict, own_texts=None) -> Explorer:
    """A fresh explorer on the workspace and catalog of `base` (nothing loaded, nothing recorded here)."""
    e = Explorer(base.ws, base.catalog, JobManager(), max_tokens=5000, warm=False)
    for name, c in data.items():
        e.add_data(name, c)
    if own_texts is not None:
        texts, itos, *module = own_texts
        stoi = {w: i for i, w in enumerate(itos)}
        e.add_data("planted", texts)
        e.add_model("own", module[0] if module else PlantedLSTM(itos),
                    encode=lambda t: [stoi.get(w, 0) for w in t.split()], itos=itos, data="planted")
    return e


def test_peek_does_not_wait_for_a_running_analysis_job(ex):
    ready(ex, "own")
    started, release = threading.Event(), threading.Event()

    def slow(ctx):
        started.set()
        release.wait(30)
        return {"v": 1}

    params = {"test": "peek"}
    with pytest.raises(NotReady):
        perf.analysis(ex, "slow_test", "own", params, slow, "slow test", wait_s=0.0)
    assert started.wait(10)
    got = []
    t = threading.Thread(target=lambda: got.append(perf.peek(ex, "slow_test", "own", params)), daemon=True)
    t.start()
    t.join(2.0)
    try:
        assert not t.is_alive() and got == [None]  # answered at once, while the job computes
        with pytest.raises(NotReady):  # a poll answers 409 at once
            perf.analysis(ex, "slow_test", "own", params, slow, "slow test", wait_s=0.0)
    finally:
        release.set()
    assert perf.analysis(ex, "slow_test", "own", params, slow, "slow test", wait_s=10) == {"v": 1}
    assert ex.peek("slow_test", "own", params) == {"v": 1}


def test_a_failing_computation_leaves_no_key_lock(ex):
    def bad():
        raise RnnvisError("it broke", "fix it")

    with pytest.raises(RnnvisError, match="it broke"):
        ex.cached("bad_test", "own", {}, bad)
    assert ex._key_locks == {}


def test_an_analysis_job_runs_again_after_a_failure(ex):
    ready(ex, "own")

    def bad(ctx):
        raise RnnvisError("the analysis broke", "try again")

    # waited for: the failure is the answer
    with pytest.raises(RnnvisError, match="analysis broke") as e:
        ex.cached_job("retry_test", "own", {}, bad, "retry test", wait_s=10)
    assert not isinstance(e.value, NotReady)
    assert ex.cached_job("retry_test", "own", {}, lambda ctx: {"ok": 1}, "retry test", wait_s=10) == {"ok": 1}
    # not waited for: 409 with the job; after it failed, the next call starts a new job
    with pytest.raises(NotReady) as e:
        ex.cached_job("retry_test2", "own", {}, bad, "retry test")
    assert ex.jobs.wait(e.value.job.id, 10).status == "failed"
    with pytest.raises(NotReady) as e2:
        ex.cached_job("retry_test2", "own", {}, lambda ctx: {"ok": 2}, "retry test")
    assert e2.value.job.id != e.value.job.id and ex.jobs.wait(e2.value.job.id, 10).status == "done"
    assert ex.cached_job("retry_test2", "own", {}, bad, "retry test") == {"ok": 2}


def test_same_weights_on_other_data_make_a_new_recording(ex):
    from rnnvis.data import Corpus

    texts, itos, _ = planted_data(30)
    module = PlantedLSTM(itos)
    a = _explorer(ex, {}, (texts, itos, module))
    assert ready(a, "own") is not None and a.recording_status("own")["documents"] == 30
    a.jobs.shutdown()
    b = _explorer(ex, {}, (texts[:5], itos, module))  # the same weights (same model id) on 5 of the texts
    assert b.model("own").id == a.model("own").id
    ready(b, "own")
    assert b.recording_status("own")["documents"] == 5
    b.jobs.shutdown()
    c = _explorer(ex, {}, (texts, itos, module))  # the first data again: its recording is found, not made again
    assert c.store("own").path == a.store("own").path
    c.jobs.shutdown()

    # a catalog model whose (own) data set changed: a recording of the new data
    lines = ex.corpus("lines")
    whole = ready(ex, "wlm")
    d = _explorer(ex, {"lines": Corpus("lines", lines.documents[:20])})
    store = ready(d, "wlm")
    corpus, idx = d.view_docs(d.model("wlm"))
    assert store.path != whole.path and d.recording_status("wlm")["documents"] == len(idx)
    assert set(store.doc_ids.tolist()) <= set(idx)
    d.jobs.shutdown()


def test_the_module_is_copied_under_its_lock(ex, monkeypatch):
    from rnnvis.data import Corpus

    texts, itos, _ = planted_data(9, seed=3)
    e = _explorer(ex, {"lines": Corpus("lines", ex.corpus("lines").documents[:25])}, (texts, itos))
    handles = {e.model("own").module: e.model("own"), e.model("wlm").module: e.model("wlm")}
    seen = []
    real = copy.deepcopy

    def spy(x, *args, **kw):
        if isinstance(x, torch.nn.Module) and x in handles:
            seen.append(handles[x].lock._is_owned())
        return real(x, *args, **kw)

    monkeypatch.setattr(copy, "deepcopy", spy)
    ready(e, "own")
    ready(e, "wlm")
    e.jobs.shutdown()
    assert seen == [True, True]


def test_loading_a_checkpoint_does_not_block_other_requests(ex, monkeypatch):
    e = _explorer(ex, {"lines": ex.corpus("lines")})
    started, release = threading.Event(), threading.Event()
    real = Explorer._catalog_handle
    calls = []

    def slow(self, ref, row):
        calls.append(ref)
        started.set()
        release.wait(30)
        return real(self, ref, row)

    monkeypatch.setattr(Explorer, "_catalog_handle", slow)
    got = []
    loaders = [threading.Thread(target=lambda: got.append(e.model("wlm")), daemon=True) for _ in range(2)]
    for t in loaders:
        t.start()
    assert started.wait(10)
    other = []
    t = threading.Thread(target=lambda: other.append(e.corpus("lines")), daemon=True)
    t.start()
    t.join(2.0)
    try:
        assert not t.is_alive() and len(other) == 1  # the shared lock is free while the checkpoint loads
    finally:
        release.set()
    for t in loaders:
        t.join(30)
    assert len(calls) == 1 and len(got) == 2 and got[0] is got[1]
    assert e._load_locks == {}
    e.jobs.shutdown()


def test_aligned_is_keyed_by_both_recordings(ex, monkeypatch):
    ready(ex, "wlm")
    h = ex.model("wlm")
    seen = []
    real = ex.cached

    def spy(kind, ref, params, fn, persist=False):
        seen.append((kind, params))
        return real(kind, ref, params, fn, persist)

    monkeypatch.setattr(ex, "cached", spy)
    cmp.aligned(ex, "wlm", "wlm")
    assert ("aligned", {"with": h.id, "with_recording": ex.recording_key(h)}) in seen
    assert ex.info("wlm")["default_stream"] == "layer0.fwd.h"


def test_an_own_model_with_a_catalog_models_weights_keeps_its_own_handle(tmp_path):
    """Same weights, other name (and tokenizer): a separate handle and id, never the catalog model's."""
    from explore_support import make_explorer

    ex = make_explorer(tmp_path / "home", planted_n=5)
    try:
        catalog_h = ex.model("clf")
        ex.add_model("clf-own", catalog_h.module, tokenizer=catalog_h.tokenizer, kind="classifier",
                     data="reviews")
        own_h = ex.model("clf-own")
        assert own_h is not catalog_h and own_h.own and not catalog_h.own
        assert own_h.id != catalog_h.id and ex.model("clf") is catalog_h
    finally:
        ex.jobs.shutdown()
