"""Recording beyond one process: Dask workers, a lost worker, a killed recording resumed.

A 2-worker local `dask.distributed` cluster records the same store and statistics as one
process; a worker that dies mid-shard is replaced and the recording completes; a recording
killed with SIGKILL leaves nothing that looks complete, and a rerun keeps the finished shards.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnvis.errors import RnnvisError
from rnnvis.recorder import record_model
from rnnvis.recording import Store, record_corpus

from test_recording_recompute import V, Wrapped, docs_batches, forward, make

pytestmark = pytest.mark.usefixtures("one_thread")
COLUMNS = ("token_ids", "doc_ids", "positions", "loss", "rank", "topk_ids", "topk_probs", "window_lengths")


def assert_same_store(a: Store, b: Store, tol: float = 1e-6) -> None:
    assert a.n_tokens == b.n_tokens and a.streams == b.streams and a.all_streams == b.all_streams
    assert [s["tokens"] for s in a.meta["shards"]] == [s["tokens"] for s in b.meta["shards"]]
    for c in COLUMNS:
        x, y = a.column(c), b.column(c)
        assert (x is None) == (y is None), c
        if x is not None:
            np.testing.assert_allclose(x, y, atol=tol, rtol=tol, equal_nan=True, err_msg=c)
    for n in a.streams:
        np.testing.assert_allclose(a.read(n), b.read(n), atol=tol, err_msg=n)
    for n in a.all_streams:
        sa, sb = a.stats[n], b.stats[n]
        for f in ("mean", "m2", "min", "max"):
            np.testing.assert_allclose(getattr(sa.units, f).numpy(), getattr(sb.units, f).numpy(), atol=tol, rtol=tol)
        np.testing.assert_array_equal(sa.units.hist.numpy(), sb.units.hist.numpy())
        if sa.words is not None:
            for x, y in ((sa.words, sb.words), (sa.deltas, sb.deltas)):
                np.testing.assert_array_equal(x.count.numpy(), y.count.numpy())
                np.testing.assert_allclose(x.mean.numpy(), y.mean.numpy(), atol=tol, rtol=tol)
                np.testing.assert_allclose(x.m2.numpy(), y.m2.numpy(), atol=tol, rtol=tol)


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            Client(lc) as client:
        yield client


def test_two_workers_record_what_one_process_records(ws, catalog, tmp_path):
    """record_model(workers=2): a local cluster whose workers load the checkpoint themselves."""
    from rnnvis.data import load_user_data
    from rnnvis.models import TrainConfig, train

    path = tmp_path / "lines.txt"
    words = "the cat sat on a mat while the dog ran to the park and a bird sang".split()
    rng = np.random.default_rng(0)
    path.write_text("\n".join(" ".join(rng.choice(words, size=int(rng.integers(4, 14)))) for _ in range(120)))
    corpus = load_user_data(path, per_line=True, name="lines")
    train(corpus, TrainConfig(name="tiny", task="lm", level="word", cell="lstm", emb=8, hidden=12, epochs=1,
                              batch_size=8, bptt=8, device="cpu", log_every=50), ws, catalog, progress=False)
    kw = dict(data=str(path), data_options={"per_line": True}, split="all", progress=False, shard_tokens=150,
              window=20)
    one = record_model("tiny", ws, catalog, **kw)
    two = record_model("tiny", ws, catalog, workers=2, max_tokens=10 ** 9, **kw)  # another key, same tokens
    assert two.path != one.path and len(two.meta["shards"]) >= 4
    assert_same_store(one, two)
    # the store reads back as dask arrays for anyone's own analysis
    h = two.dask("layer0.fwd.h")
    assert h.shape == (two.n_tokens, 12)
    np.testing.assert_allclose(h[10:20].compute().astype(np.float32), one.read("layer0.fwd.h", 10, 20))
    import dask.array as da

    assert float(da.nanmean(two.dask("loss")[:50]).compute()) == pytest.approx(float(np.nanmean(one.column("loss", 0, 50))))


class _DieOnce:
    """A forward that kills the worker process it first runs on, mid-shard (runs normally in the
    driver, which looks at the first batch before the shards are handed out)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __call__(self, m, b):
        if _on_worker() and not os.path.exists(self.marker):
            Path(self.marker).write_text("died")
            os._exit(1)  # the worker is lost; its nanny starts a new one and Dask reruns the task
        return m(b["ids"], b["lengths"])


def _on_worker() -> bool:
    from distributed import get_worker

    try:
        get_worker()
        return True
    except ValueError:
        return False


def test_a_lost_worker_is_replaced_and_the_store_completes(cluster, tmp_path):
    torch.manual_seed(0)
    m = Wrapped(make("gru", 2, False, True, 0), "gru", False, False).eval()
    bs = docs_batches(0, n_docs=30)
    kw = dict(vocab_size=V, progress=False, shard_tokens=80)
    ref = record_corpus(m, bs, tmp_path / "ref", forward=forward, **kw)
    marker = tmp_path / "marker"
    done = record_corpus(m, bs, tmp_path / "dask", forward=_DieOnce(str(marker)), client=cluster, **kw)
    assert marker.read_text() == "died"
    assert_same_store(ref, done)


SCRIPT = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from test_recording_recompute import V, Wrapped, docs_batches, forward, make
    from rnnvis.recording import record_corpus
    torch.manual_seed(0)
    m = Wrapped(make("lstm", 1, False, True, 0), "lstm", False, False).eval()

    def slow(done, total):
        if done >= 200:
            open({flag!r}, "w").write(str(done))
            time.sleep(600)  # killed here, mid-way

    record_corpus(m, docs_batches(0, n_docs=40), {out!r}, vocab_size=V, forward=forward, progress=False,
                  shard_tokens=60, on_progress=slow)
""")


def test_killed_recording_leaves_nothing_complete_and_a_rerun_finishes(tmp_path):
    out, flag = tmp_path / "rec", tmp_path / "flag"
    script = SCRIPT.format(tests=str(Path(__file__).parent), flag=str(flag), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 120
        while not flag.exists():
            assert proc.poll() is None and time.time() < deadline, "the recording did not get going"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    with pytest.raises(RnnvisError):
        Store(out)
    done_before = sorted(p.name for p in (Path(f"{out}.part") / "shards").iterdir() if not p.name.startswith("."))
    assert done_before, "complete shards are kept for the rerun"
    inodes = {n: (Path(f"{out}.part") / "shards" / n).stat().st_ino for n in done_before}
    torch.manual_seed(0)
    m = Wrapped(make("lstm", 1, False, True, 0), "lstm", False, False).eval()
    kw = dict(vocab_size=V, forward=forward, progress=False, shard_tokens=60)
    store = record_corpus(m, docs_batches(0, n_docs=40), out, **kw)
    assert not Path(f"{out}.part").exists()
    for n, ino in inodes.items():  # the shards finished before the kill were kept, not redone
        assert (out / "shards" / n).stat().st_ino == ino
    # the shard being written when it was killed is gone: only the manifest's shards remain
    assert sorted(p.name for p in (out / "shards").iterdir()) == [Path(e["path"]).name for e in store.meta["shards"]]
    assert_same_store(record_corpus(m, docs_batches(0, n_docs=40), tmp_path / "clean", **kw), store)
