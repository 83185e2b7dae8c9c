"""Background jobs: lifecycle, progress, cancel, errors, shared keys."""
import threading
import time

import pytest

from rnnvis.errors import NotFound, RnnvisError
from rnnvis.explore.jobs import JobCancelled, JobManager


@pytest.fixture
def jobs():
    m = JobManager()
    yield m
    m.shutdown()


def test_job_runs_reports_progress_and_returns_its_result(jobs):
    seen = []

    def fn(ctx):
        for i in range(4):
            ctx.progress(i / 4, f"step {i}")
            seen.append(ctx.job.status)
        return {"answer": 42}

    job = jobs.submit("analysis", "count", fn)
    done = jobs.wait(job.id, timeout=10)
    assert done.status == "done" and done.progress == 1.0 and done.result == {"answer": 42}
    assert seen == ["running"] * 4
    js = done.to_json()
    assert set(js) == {"id", "kind", "title", "status", "progress", "message", "eta_s", "error", "created_at",
                       "result", "meta"}
    assert js["result"] == {"answer": 42} and js["error"] is None and js["kind"] == "analysis"
    assert js["meta"] == {}
    assert jobs.list()[0].id == job.id and jobs.get(job.id) is job


def test_cancel_a_running_job_and_a_queued_one(jobs):
    started, release = threading.Event(), threading.Event()

    def slow(ctx):
        started.set()
        while True:
            release.wait(0.01)
            ctx.check()

    a = jobs.submit("record", "slow", slow)
    b = jobs.submit("record", "queued behind", lambda ctx: 1)
    assert started.wait(5)
    assert jobs.get(b.id).status == "queued"
    assert jobs.cancel(b.id).status == "cancelled"
    jobs.cancel(a.id)
    assert jobs.wait(a.id, 5).status == "cancelled"
    assert [j.id for j in jobs.list()] == [b.id, a.id]  # newest first


def test_progress_raises_when_cancelled(jobs):
    started = threading.Event()
    reached = []

    def fn(ctx):
        started.set()
        time.sleep(0.2)
        try:
            ctx.progress(0.5)
        except JobCancelled:
            reached.append("cancelled")
            raise

    job = jobs.submit("record", "x", fn)
    started.wait(5)
    jobs.cancel(job.id)
    assert jobs.wait(job.id, 5).status == "cancelled" and reached == ["cancelled"]


def test_errors_become_error_and_fix(jobs):
    def bad(ctx):
        raise RnnvisError("the data is empty", "give some text")

    def crash(ctx):
        raise ValueError("boom")

    a = jobs.wait(jobs.submit("analysis", "bad", bad).id, 5)
    assert a.status == "failed" and a.error == {"error": "the data is empty", "fix": "give some text"}
    b = jobs.wait(jobs.submit("analysis", "crash", crash).id, 5)
    assert b.status == "failed" and "ValueError: boom" in b.error["error"] and b.error["fix"]


def test_same_key_shares_the_job_while_it_runs(jobs):
    release = threading.Event()
    a = jobs.submit("record", "a", lambda ctx: release.wait(5), key="k")
    assert jobs.submit("record", "a again", lambda ctx: None, key="k") is a
    release.set()
    jobs.wait(a.id, 5)
    c = jobs.submit("record", "after", lambda ctx: None, key="k")
    assert c is not a


def test_meta_is_given_at_submit_and_added_to_by_the_job(jobs):
    def fn(ctx):
        ctx.set_meta(run_id=7)
        return None

    job = jobs.submit("train", "train m", fn, meta={"model": "m"})
    assert job.to_json()["meta"]["model"] == "m"
    jobs.wait(job.id, timeout=10)
    assert job.to_json()["meta"] == {"model": "m", "run_id": 7}


def test_unknown_job_is_not_found(jobs):
    with pytest.raises(NotFound):
        jobs.get("nope")
