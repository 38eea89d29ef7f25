"""RQ jobs of the edge server and how they are queued."""
from __future__ import annotations

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

from edge_server.config import EdgeSettings

SYNC_RETRY = Retry(max=8, interval=[5, 15, 30, 60, 120, 300, 600, 900])
# A job in one of these states will still run: queueing the same attempt again adds nothing.
PENDING_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def queue(settings: EdgeSettings) -> Queue:
    return Queue(settings.queue_name, connection=Redis.from_url(settings.redis_url))


def enqueue_sync(settings: EdgeSettings, attempt_id: str) -> Job:
    """Queue the copy of an attempt to central storage; one job id per attempt.

    A job of that attempt still queued, running or waiting for a retry is returned as it is;
    a finished or failed one is replaced by a new run.
    """
    from edge_server.jobs.sync import sync_attempt

    q = queue(settings)
    job_id = f"sync-{attempt_id}"
    try:
        existing = Job.fetch(job_id, connection=q.connection)
    except NoSuchJobError:
        existing = None
    if existing is not None:
        if existing.get_status(refresh=False) in PENDING_STATES:
            return existing
        existing.delete()
    try:
        return q.enqueue(sync_attempt, attempt_id, job_id=job_id, retry=SYNC_RETRY, job_timeout=3600,
                         failure_ttl=7 * 24 * 3600, unique=True)
    except DuplicateJobError:  # queued by someone else in the meantime
        return Job.fetch(job_id, connection=q.connection)
