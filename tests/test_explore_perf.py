"""Performance, errors, training and compare views on tiny seeded models: values agree with the analyses."""
import numpy as np
import pytest

from perf_support import build, explorer, lm_targets, ready, settle
from rnnvis.errors import NotFound, RnnvisError
from rnnvis.explore import compare as cmp
from rnnvis.explore import perf


@pytest.fixture(scope="module")
def ex(tmp_path_factory, one_thread):
    from rnnvis.catalog import Catalog
    from rnnvis.data import Corpus, Document
    from rnnvis.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("perf") / "home")
    catalog = Catalog(ws.catalog_path)
    data = build(ws, catalog)
    ex = explorer(ws, catalog, data)
    # an own classifier on labelled own data with one text under both labels: one error is certain
    clf = ex.model("clf")
    texts = [("a great and lovely film", 1), ("a great and lovely film", 0), ("awful , i hated it", 0),
             ("boring plot and bad acting", 0), ("really fun and very lovely", 1), ("not great , not good", 0)]
    ex.add_data("judged", Corpus("judged", [Document(id=str(i), text=t, label=y) for i, (t, y) in enumerate(texts)],
                                 task="classify", label_names=["neg", "pos"]))
    ex.add_model("clf-own", clf.module, tokenizer=clf.tokenizer, kind="classifier", labels=["neg", "pos"],
                 data="judged")
    yield ex
    ex.jobs.shutdown()


def test_lm_metrics_agree_with_the_analysis(ex):
    from rnnvis.analysis import lm_metrics
    from rnnvis.baselines import compute_baselines

    store = ready(ex, "lm-a")
    h = ex.model("lm-a")
    corpus = ex.corpus("lines")
    s = h.config["split"]
    compute_baselines(corpus, corpus.split(s["seed"], tuple(s["fractions"])), h.tokenizer, "lm", "word", ex.catalog)
    out = perf.metrics(ex, "lm-a")
    loss, rank = store.output("loss"), store.output("rank")
    keep = np.isfinite(loss)
    ref = lm_metrics(loss[keep], rank[keep] + 1, "word")
    m = out["metrics"]
    assert out["kind"] == "lm" and out["split"] == "test" and out["confusion"] is None
    assert m["tokens"] == ref.tokens and m["loss"] == pytest.approx(ref.loss)
    assert m["ppl"] == pytest.approx(ref.perplexity)
    assert m["top1"] == pytest.approx(ref.top1) and m["top5"] == pytest.approx(ref.top5)
    names = {b["name"] for b in out["baselines"]}
    assert names == {"ngram", "unigram"} and all("ppl" in b["metrics"] for b in out["baselines"])


def test_classifier_metrics_agree_with_the_analysis(ex):
    from rnnvis.analysis import classifier_metrics

    ready(ex, "clf-own")
    out = perf.metrics(ex, "clf-own")
    docs, probs = perf.doc_predictions(ex, "clf-own")
    y = np.array([ex.corpus("judged").documents[d].label for d in docs])
    ref = classifier_metrics(probs, y, class_names=["neg", "pos"])
    assert out["metrics"]["accuracy"] == pytest.approx(ref.accuracy) and out["metrics"]["n"] == 6
    assert out["confusion"] == ref.confusion.tolist() and out["labels"] == ["neg", "pos"]
    cal = out["calibration"]
    assert len(cal["bins"]) == 11 and sum(cal["counts"]) == 6 and cal["ece"] == pytest.approx(ref.calibration.ece)
    assert out["metrics"]["accuracy"] < 1  # one text carries both labels


def test_lm_error_taxonomy(ex):
    store = ready(ex, "lm-a")
    out = settle(lambda: perf.errors(ex, "lm-a"), ex)
    rows, _ = lm_targets(store)
    p_true = np.exp(-store.output("loss")[rows])
    assert out["kind"] == "lm" and out["total"] == rows.size
    assert out["errors"] == int((p_true < 0.5).sum())
    assert sum(c["count"] for c in out["categories"]) == out["errors"]
    assert [c["name"] for c in out["categories"]][0] == "ngram" and out["reference"] is None
    assert sum(c["share"] for c in out["categories"]) == pytest.approx(1.0)
    assert not any(k.startswith("_") for k in out)
    for c in out["categories"]:
        for e in c["examples"]:
            assert e["p_true"] < 0.5 and isinstance(e["token"], str)
    # kept in the catalog: a fresh explorer answers from it
    assert perf.peek(ex, "errors_lm", "lm-a", {"order": perf.NGRAM_ORDER}) is not None


def test_classifier_errors_slices_and_saliency(ex):
    ready(ex, "clf-own")
    out = perf.errors(ex, "clf-own")
    assert out["kind"] == "classifier"
    fam = {s["family"] for s in out["slices"]}
    assert {"length", "negation", "gold", "confidence"} <= fam
    gold = [s for s in out["slices"] if s["family"] == "gold"]
    assert sum(s["n"] for s in gold) == 6 and sum(s["errors"] for s in gold) == len(out["misclassified"])
    assert out["misclassified"]
    for m in out["misclassified"]:
        assert len(m["saliency"]) == len(m["tokens"]) and m["gold"] != m["predicted"]
        assert all(v is None or v >= 0 for v in m["saliency"])


def test_training_curves_and_checkpoint_dynamics(ex):
    out = settle(lambda: perf.training(ex, "lm-a"), ex)
    h = ex.model("lm-a")
    series = ex.catalog.metric_series(h.run_id)
    assert out["run_id"] == h.run_id
    got = {(c["split"], c["key"]): [p["value"] for p in c["points"]] for c in out["curves"]}
    assert got[("valid", "loss")] == pytest.approx([v for _, _, v in series["valid"]["loss"]])
    dyn = out["dynamics"]
    assert dyn["labels"][0].startswith("epoch 1") and len(dyn["labels"]) == 2
    assert all(v[-1] == pytest.approx(1.0) for v in dyn["cka_to_final"].values())
    assert set(dyn["saturation"]) >= {"layer0.fwd.gate.f"}
    assert perf.training(ex, "lm-b")["dynamics"] is None  # one checkpoint only


def test_compare_a_model_with_itself(ex):
    ready(ex, "lm-a")
    out = cmp.compare(ex, "lm-a", "lm-a")
    assert out["same_tokens"]
    assert np.allclose(out["similarity"]["cka"], 1.0) and np.allclose(out["similarity"]["svcca"], 1.0, atol=1e-6)
    pairs = out["matching"]["pairs"]
    assert all(p["a"] == p["b"] for p in pairs) and out["matching"]["mean_r"] == pytest.approx(1.0, abs=1e-6)
    assert all(p["r"] == pytest.approx(1.0, abs=1e-6) for p in pairs if p["r"] is not None)
    assert out["loss"]["mean_a"] == out["loss"]["mean_b"] and all(g["diff"] == 0 for g in out["loss"]["by_word"])
    assert out["clusters"] is None or out["clusters"]["ari"] == pytest.approx(1.0)


def test_compare_two_models_and_tokens(ex):
    from rnnvis.analysis import loss_difference

    sa, sb = ready(ex, "lm-a"), ready(ex, "lm-b")
    out = settle(lambda: cmp.compare(ex, "lm-a", "lm-b"), ex)
    assert out["a"] == "lm-a" and out["b"] == "lm-b" and out["same_tokens"]
    rows, tgt = lm_targets(sa)
    la, lb = sa.output("loss")[rows].astype(float), sb.output("loss")[rows].astype(float)
    assert out["loss"]["mean_a"] == pytest.approx(la.mean()) and out["loss"]["mean_b"] == pytest.approx(lb.mean())
    words = np.array(ex.model("lm-a").decode(sa.token_ids[tgt]), dtype=object)
    ref = loss_difference(la, lb, words)
    top = out["loss"]["by_word"][0]
    assert top["group"] == ref.groups[0] and top["n"] == ref.count[0] and top["diff"] == pytest.approx(ref.mean_diff[0])
    assert len(out["similarity"]["cka"]) == 1 and 0 <= out["similarity"]["cka"][0][0] <= 1
    assert len(out["matching"]["pairs"]) == 12
    doc = int(ex.doc_index("lm-a")[0][0])
    t = cmp.compare_tokens(ex, "lm-a", "lm-b", doc)
    n = len(t["tokens"])
    assert len(t["loss_a"]) == len(t["loss_b"]) == len(t["diff"]) == n
    ok = [i for i in range(n) if t["diff"][i] is not None]
    assert ok and all(t["diff"][i] == pytest.approx(t["loss_a"][i] - t["loss_b"][i], abs=2e-5) for i in ok)
    with pytest.raises(NotFound):
        cmp.compare_tokens(ex, "lm-a", "lm-b", 10_000)


def test_compare_needs_the_same_data_set(ex):
    with pytest.raises(RnnvisError) as e:
        cmp.compare(ex, "lm-a", "lm-other")
    assert "lines" in e.value.what and "other" in e.value.what and e.value.fix
    with pytest.raises(RnnvisError):
        cmp.compare(ex, "lm-a", "clf")
    with pytest.raises(NotFound):
        cmp.compare(ex, "lm-a", "nope")


def test_train_job_runs_and_cancels(ex):
    import time

    job = perf.start_training(ex, {"dataset": "lines", "name": "lm-new", "cell": "gru", "hidden": 8, "emb": 8,
                                   "epochs": 1, "batch_size": 4, "bptt": 8})
    assert job.to_json()["meta"]["model"] == "lm-new"
    job = ex.jobs.wait(job.id, 60)
    assert job.status == "done", job.error
    assert job.kind == "train" and job.result["name"] == "lm-new" and job.progress == 1.0
    assert job.to_json()["meta"] == {"model": "lm-new", "dataset": "lines", "run_id": job.result["run_id"]}
    assert any(m["name"] == "lm-new" for m in ex.models())
    with pytest.raises(RnnvisError, match="exists already"):
        perf.start_training(ex, {"dataset": "lines", "name": "lm-new"})
    long = perf.start_training(ex, {"dataset": "lines", "name": "lm-long", "hidden": 8, "emb": 8, "epochs": 100,
                                    "batch_size": 2, "bptt": 4, "patience": None})
    deadline = time.time() + 30
    while long.status != "running" or long.progress == 0:
        assert time.time() < deadline
        time.sleep(0.02)
    ex.jobs.cancel(long.id)
    long = ex.jobs.wait(long.id, 30)
    assert long.status == "cancelled"
    run = [r for r in ex.catalog.runs() if r["name"] == "lm-long"][-1]
    assert run["status"] == "stopped"


@pytest.mark.parametrize("body, error", [
    ({"dataset": "nope"}, NotFound),
    ({"dataset": "/etc/passwd"}, NotFound),
    ({"dataset": "../../etc/passwd"}, NotFound),
    ({"dataset": "lines", "name": "../../evil"}, RnnvisError),
    ({"dataset": "lines", "name": "a\x00b"}, RnnvisError),
    ({"dataset": "lines", "hidden": -3}, RnnvisError),
    ({"dataset": "lines", "hidden": "big"}, RnnvisError),
    ({"dataset": "lines", "epochs": 10 ** 9}, RnnvisError),
    ({"dataset": "lines", "cell": "transformer"}, RnnvisError),
    ({"dataset": "lines", "bogus": 1}, RnnvisError),
    ({"dataset": "lines", "task": "classify"}, RnnvisError),
    (["not", "an", "object"], RnnvisError),
])
def test_bad_training_requests(ex, body, error):
    with pytest.raises(error):
        perf.start_training(ex, body)


def test_compare_loss_by_category_and_similarity_equal_whole_array_computations(ex):
    from rnnvis.analysis import layer_similarity, loss_difference, match_units

    sa, sb = ready(ex, "lm-a"), ready(ex, "lm-b")
    settle(lambda: perf.errors(ex, "lm-a"), ex)  # the taxonomy of a is cached: by_category is filled
    out = settle(lambda: cmp.compare(ex, "lm-a", "lm-b"), ex)
    rows, _ = lm_targets(sa)
    la, lb = sa.output("loss")[rows].astype(float), sb.output("loss")[rows].astype(float)
    codes, names = perf.token_categories(ex, "lm-a")
    labels = np.array(list(names) + ["correct"], dtype=object)[np.where(codes[rows] == 1, len(names),
                                                                        codes[rows].astype(int) - 2)]
    assert (codes[rows] >= 1).all() and (np.delete(codes, rows) == 0).all()
    ref = loss_difference(la, lb, labels)
    got = {g["group"]: g for g in out["loss"]["by_category"]}
    assert set(got) == set(ref.groups) and sum(g["n"] for g in got.values()) == rows.size
    for g, n, d in zip(ref.groups, ref.count, ref.mean_diff):
        assert got[g]["n"] == n and got[g]["diff"] == pytest.approx(d)
    h = "layer0.fwd.h"
    xa, xb = sa.read(h).astype(float), sb.read(h).astype(float)
    assert out["similarity"]["tokens"] == sa.n_tokens == out["shared_tokens"]
    assert out["similarity"]["cka"][0][0] == pytest.approx(layer_similarity({h: xa}, {h: xb}).matrix[0, 0], abs=1e-5)
    m = match_units(xa, xb, absolute=True)
    assert [p["b"] for p in out["matching"]["pairs"]] == m.cols.tolist()


def test_aligned_segments_of_recordings_holding_different_tokens():
    # a holds documents 5 (positions 0..9) and 7 (0..3); b holds 7 (2..5) and 5 (4..11)
    ta = {"doc": np.array([5, 7]), "start": np.array([0, 10]), "stop": np.array([10, 14]),
          "first": np.array([0, 0]), "last": np.array([9, 3])}
    tb = {"doc": np.array([7, 5]), "start": np.array([0, 4]), "stop": np.array([4, 12]),
          "first": np.array([2, 4]), "last": np.array([5, 11])}
    a, b, n = cmp._segments(ta, tb)
    assert a.tolist() == [4, 12] and b.tolist() == [4, 0] and n.tolist() == [6, 2]
    same = {k: v.copy() for k, v in ta.items()}
    a, b, n = cmp._segments(ta, same)
    assert (a.tolist(), b.tolist(), n.tolist()) == ([0], [0], [14])  # the same tokens: one segment
