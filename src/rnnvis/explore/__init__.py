"""The Python side of every exploration view of the web app (docs/api.md).

- jobs: background work with progress and cancel (`JobManager`, `Job`, `JobContext`).
- session: `Explorer` (models, view recordings, caches) and `ModelHandle` (one loaded model).
- memory, sentence, units, pattern, discovery: one function per exploration endpoint, each
  returning the JSON-ready dict of its schema.
"""
from .jobs import Job, JobCancelled, JobContext, JobManager

__all__ = ["Job", "JobCancelled", "JobContext", "JobManager"]
