"""A training job has a worker of its own: recordings and analyses do not wait for it."""
import threading

from rnnvis.explore.jobs import JobManager


def test_train_job_does_not_block_other_jobs():
    m = JobManager()
    release = threading.Event()
    started = threading.Event()

    def slow_train(ctx):
        started.set()
        assert release.wait(30)
        return "trained"

    try:
        train = m.submit("train", "slow training", slow_train)
        assert started.wait(10)
        record = m.submit("record", "record", lambda ctx: "recorded")
        analysis = m.submit("analysis", "analyse", lambda ctx: "analysed")
        assert m.wait(record.id, 10).status == "done"  # with one worker for all, this waited for training
        assert m.wait(analysis.id, 10).result == "analysed"
        assert train.status == "running"
        queued = m.submit("train", "second training", lambda ctx: "second")  # trainings queue among themselves
        assert queued.status == "queued"
        assert {j.id for j in m.list()} == {train.id, record.id, analysis.id, queued.id}  # one manager lists all
        release.set()
        assert m.wait(train.id, 10).result == "trained" and m.wait(queued.id, 10).result == "second"
    finally:
        release.set()
        m.shutdown()


def test_cancel_and_shutdown_reach_the_train_queue():
    m = JobManager()
    release = threading.Event()
    try:
        first = m.submit("train", "a", lambda ctx: release.wait(30))
        second = m.submit("train", "b", lambda ctx: "b")
        assert m.cancel(second.id).status == "cancelled"
        third = m.submit("train", "c", lambda ctx: "c")
    finally:
        release.set()
        m.shutdown()
    assert m.wait(first.id, 10).finished and third.finished
