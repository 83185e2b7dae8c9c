"""Background work with progress and cancel: recordings, training, slow analyses.

`JobManager.submit(kind, title, fn)` queues `fn(ctx)` on a worker thread (one by default, so
heavy jobs do not fight over the CPU) and returns a `Job` at once. Jobs of a kind in `own_worker`
("train" by default: minutes to hours) have a queue and a worker thread of their own, so that a
training run does not hold up recordings and analyses. `fn` reports progress with
`ctx.progress(fraction, message)` and calls `ctx.check()` (or lets a progress callback do it) to
stop early when the job is cancelled. A job with a `key` is shared: submitting the same key while
it is queued or running returns the existing job. At most `max_queued` jobs wait at once (all
queues together): one more raises `QueueFull` (HTTP 503 with Retry-After), so a flood of requests
cannot pile up work without bound.
"""
from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import deque
from typing import Any, Callable

from ..errors import NotFound, RnnvisError

STATUSES = ("queued", "running", "done", "failed", "cancelled")
KEEP_FINISHED = 200  # finished jobs kept for GET /api/jobs
MAX_QUEUED = 64  # jobs waiting to start (all queues together); more are refused with QueueFull
RETRY_AFTER_S = 5  # what a refused client is told to wait before retrying


class QueueFull(RnnvisError):
    """The job queue is full (HTTP 503 with a Retry-After header): nothing was queued."""

    retry_after_s = RETRY_AFTER_S


class JobCancelled(Exception):
    """Raised inside a job's function when its cancel was asked."""


class Job:
    """One unit of background work; `to_json()` is the Job schema of docs/api.md."""

    def __init__(self, kind: str, title: str, fn: Callable[["JobContext"], Any], key: str | None = None):
        self.id = uuid.uuid4().hex[:12]
        self.kind = kind
        self.title = title
        self.key = key
        self.fn = fn
        self.status = "queued"
        self.progress = 0.0
        self.message: str | None = None
        self.eta_s: float | None = None
        self.error: dict | None = None
        self.created_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.result: Any = None
        self.cancel_requested = False
        # what the job is about, for the UI (e.g. a train job's {"model": name, "run_id": id});
        # replaced as a whole (never mutated in place) so `to_json` can read it from another thread
        self.meta: dict = {}
        self._done = threading.Event()

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "title": self.title, "status": self.status,
                "progress": float(self.progress), "message": self.message,
                "eta_s": None if self.eta_s is None else round(float(self.eta_s), 1),
                "error": self.error, "created_at": self.created_at, "result": _result_json(self.result),
                "meta": dict(self.meta)}

    def set_meta(self, **values: Any) -> None:
        """Add to `meta` (JSON-able values)."""
        self.meta = {**self.meta, **values}

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.kind}, {self.status}, {self.progress:.0%})"


def _result_json(result: Any) -> Any:
    """A JSON-able view of a job's result (objects with `to_json` or `job_result`, else None)."""
    if result is None or isinstance(result, (dict, list, str, int, float, bool)):
        return result
    for attr in ("job_result", "to_json"):
        f = getattr(result, attr, None)
        if callable(f):
            try:
                return f()
            except Exception:  # noqa: BLE001 - a view of a result must never fail a listing
                return None
    return None


class JobContext:
    """What a job's function sees: progress reporting and the cancel flag."""

    def __init__(self, job: Job, lock: threading.Lock):
        self._job = job
        self._lock = lock

    @property
    def job(self) -> Job:
        return self._job

    @property
    def cancelled(self) -> bool:
        return self._job.cancel_requested

    def set_meta(self, **values: Any) -> None:
        """Add to the job's `meta` (shown in its JSON), e.g. the run a train job created."""
        self._job.set_meta(**values)

    def check(self) -> None:
        if self._job.cancel_requested:
            raise JobCancelled(f"job {self._job.id} was cancelled")

    def progress(self, fraction: float, message: str | None = None, eta_s: float | None = None) -> None:
        """Report progress in [0, 1]; the ETA is estimated from the elapsed time when not given."""
        f = min(1.0, max(0.0, float(fraction)))
        with self._lock:
            job = self._job
            job.progress = f
            if message is not None:
                job.message = message
            if eta_s is None and job.started_at is not None and f > 0.01:
                elapsed = time.time() - job.started_at
                eta_s = elapsed * (1 - f) / f
            job.eta_s = eta_s
        self.check()


class JobManager:
    """Queue of jobs run by `workers` daemon threads; thread-safe."""

    def __init__(self, workers: int = 1, own_worker: tuple[str, ...] = ("train",), max_queued: int = MAX_QUEUED):
        if workers < 1:
            raise RnnvisError(f"workers={workers} must be at least 1", "use 1 (the default)")
        if max_queued < 1:
            raise RnnvisError(f"max_queued={max_queued} must be at least 1", f"use {MAX_QUEUED} (the default)")
        self.max_queued = max_queued
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._order: list[str] = []
        self._queue: deque[Job] = deque()  # jobs of every kind without a worker of its own
        self._queues: dict[str, deque[Job]] = {k: deque() for k in own_worker}  # kind -> its own queue
        self._stopped = False
        self._threads = [threading.Thread(target=self._worker, args=(self._queue,), name=f"rnnvis-job-{i}",
                                          daemon=True) for i in range(workers)]
        self._threads += [threading.Thread(target=self._worker, args=(q,), name=f"rnnvis-job-{k}", daemon=True)
                          for k, q in self._queues.items()]
        for t in self._threads:
            t.start()

    # -- public ---------------------------------------------------------------------
    def submit(self, kind: str, title: str, fn: Callable[[JobContext], Any], key: str | None = None,
               meta: dict | None = None) -> Job:
        with self._cond:
            if self._stopped:
                raise RnnvisError("the job manager was shut down", "restart the server")
            if key is not None:
                for jid in reversed(self._order):
                    j = self._jobs[jid]
                    if j.key == key and not j.finished:
                        return j
            waiting = len(self._queue) + sum(len(q) for q in self._queues.values())
            if waiting >= self.max_queued:
                raise QueueFull(f"the server is busy: {waiting} jobs are waiting to run",
                                f"retry in a few seconds (Retry-After: {RETRY_AFTER_S}), or cancel jobs you no "
                                "longer need (GET /api/jobs)")
            job = Job(kind, title, fn, key)
            if meta:
                job.meta = dict(meta)
            self._jobs[job.id] = job
            self._order.append(job.id)
            self._queue_of(kind).append(job)
            self._trim()
            self._cond.notify_all()
            return job

    def add_done(self, kind: str, title: str, result: Any = None, key: str | None = None) -> Job:
        """Register a job that is already done (e.g. a recording found in the cache)."""
        job = Job(kind, title, lambda ctx: result, key)
        with self._lock:
            job.result = result
            self._finish(job, "done", message="cached")
            self._jobs[job.id] = job
            self._order.append(job.id)
            self._trim()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}", "GET /api/jobs lists the jobs of this server")
        return job

    def find(self, key: str) -> Job | None:
        """The newest job submitted with `key`, whatever its status."""
        with self._lock:
            for jid in reversed(self._order):
                if self._jobs[jid].key == key:
                    return self._jobs[jid]
        return None

    def list(self) -> list[Job]:
        """Every job, newest first."""
        with self._lock:
            return [self._jobs[j] for j in reversed(self._order)]

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self._cond:
            if job.status == "queued":
                self._queue_of(job.kind).remove(job)
                self._finish(job, "cancelled", message="cancelled before it started")
            elif job.status == "running":
                job.cancel_requested = True
                job.message = "cancelling"
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job is finished (or `timeout` seconds passed); return it."""
        job = self.get(job_id)
        job._done.wait(timeout)
        return job

    def shutdown(self) -> None:
        """Cancel queued and running jobs and stop the workers (waits briefly for them)."""
        with self._cond:
            self._stopped = True
            for q in (self._queue, *self._queues.values()):
                while q:
                    self._finish(q.popleft(), "cancelled", message="server shut down")
            for j in self._jobs.values():
                if j.status == "running":
                    j.cancel_requested = True
            self._cond.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)

    # -- workers ----------------------------------------------------------------------
    def _queue_of(self, kind: str) -> deque:
        return self._queues.get(kind, self._queue)

    def _trim(self) -> None:
        finished = [j for j in self._order if self._jobs[j].finished]
        for jid in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            self._order.remove(jid)
            del self._jobs[jid]

    def _finish(self, job: Job, status: str, message: str | None = None) -> None:
        """Set the final status (lock held)."""
        job.status = status
        job.ended_at = time.time()
        job.eta_s = None
        if status == "done":
            job.progress = 1.0
        if message is not None:
            job.message = message
        job.fn = None  # free closures (models, data)
        job._done.set()

    def _worker(self, queue: deque) -> None:
        while True:
            with self._cond:
                while not queue and not self._stopped:
                    self._cond.wait()
                if self._stopped and not queue:
                    return
                job = queue.popleft()
                job.status = "running"
                job.started_at = time.time()
                fn = job.fn
            self._run(job, fn)

    def _run(self, job: Job, fn: Callable[[JobContext], Any]) -> None:
        ctx = JobContext(job, self._lock)
        try:
            ctx.check()
            result = fn(ctx)
        except JobCancelled:
            with self._lock:
                self._finish(job, "cancelled", message="cancelled")
        except RnnvisError as e:
            with self._lock:
                job.error = {"error": e.what, "fix": e.fix}
                self._finish(job, "failed", message=e.what)
        except Exception as e:  # noqa: BLE001 - reported in the job, the worker goes on
            what = f"{type(e).__name__}: {e}"
            tb = traceback.extract_tb(e.__traceback__)
            where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
            with self._lock:
                job.error = {"error": what + where,
                             "fix": "this is probably a bug in rnnvis: retry, and report it with the server log"}
                self._finish(job, "failed", message=what)
        else:
            with self._lock:
                job.result = result
                self._finish(job, "done")

