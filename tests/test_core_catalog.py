"""The catalog is a real SQLite file: what one handle writes, a new handle reads."""
import sqlite3
import threading

import pytest

from rnnvis.catalog import Catalog
from rnnvis.errors import NotFound, RnnvisError


def test_runs_and_metric_series_survive_reopen(ws):
    cat = Catalog(ws.catalog_path)
    run = cat.start_run("m", {"lr": 0.1})
    for step in range(3):
        cat.log_metrics(run, step, "train", {"loss": 3.0 - step, "lr": 0.1}, epoch=step / 3)
    cat.log_metrics(run, 2, "valid", {"loss": 2.5}, epoch=1)
    cat.end_run(run, "finished")
    cat.close()

    again = Catalog(ws.catalog_path)
    assert again.get_run(run)["status"] == "finished"
    series = again.metric_series(run)
    assert [v for _, _, v in series["train"]["loss"]] == [3.0, 2.0, 1.0]
    assert series["valid"]["loss"] == [(2, 1.0, 2.5)]
    # it is SQLite on disk, readable by any client
    rows = sqlite3.connect(ws.catalog_path).execute("SELECT COUNT(*) FROM metrics").fetchone()
    assert rows[0] == 7


def test_find_model_prefers_best_and_accepts_id_prefix(catalog):
    catalog.put_model("a" * 64, "brown-lstm", "/x/epoch-1", "lm", {}, tag="epoch", epoch=1)
    catalog.put_model("b" * 64, "brown-lstm", "/x/best", "lm", {}, tag="best", epoch=1)
    assert catalog.find_model("brown-lstm")["id"] == "b" * 64
    assert catalog.find_model("aaaaaaaa")["path"] == "/x/epoch-1"
    with pytest.raises(NotFound, match="known models: brown-lstm"):
        catalog.find_model("nope")


def test_unknown_run_is_a_clear_error(catalog):
    with pytest.raises(NotFound, match="no training run with id 42"):
        catalog.get_run(42)


def test_concurrent_writers_from_threads(catalog):
    run = catalog.start_run("t", {})

    def work(offset):
        for i in range(50):
            catalog.log_metrics(run, offset * 100 + i, "train", {"loss": float(i)})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(catalog.metric_series(run)["train"]["loss"]) == 200


def test_corrupt_catalog_file_gives_a_fix(ws):
    ws.catalog_path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(RnnvisError, match="not a readable SQLite database"):
        Catalog(ws.catalog_path)


def test_caches_are_keyed_by_content(catalog):
    catalog.put_analysis("k1", "coclusters", {"n": 3}, {"labels": [0, 1]})
    assert catalog.get_analysis("k1") == {"labels": [0, 1]}
    assert catalog.get_analysis("k2") is None
    catalog.put_baseline("brown", "test", "kn3", "h", {"ppl": 250.0})
    assert catalog.get_baseline("brown", "test", "kn3", "h") == {"ppl": 250.0}
    assert catalog.get_baseline("brown", "test", "kn3", "other") is None
