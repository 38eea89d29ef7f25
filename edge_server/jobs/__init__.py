"""RQ jobs of the edge server and how they are queued."""
from __future__ import annotations

from redis import Redis
from rq import Queue, Retry

from edge_server.config import EdgeSettings

SYNC_RETRY = Retry(max=8, interval=[5, 15, 30, 60, 120, 300, 600, 900])


def queue(settings: EdgeSettings) -> Queue:
    return Queue(settings.queue_name, connection=Redis.from_url(settings.redis_url))


def enqueue_sync(settings: EdgeSettings, attempt_id: str):
    """Queue the copy of an attempt to central storage; one job id per attempt."""
    from edge_server.jobs.sync import sync_attempt

    return queue(settings).enqueue(sync_attempt, attempt_id, job_id=f"sync-{attempt_id}", retry=SYNC_RETRY,
                                   job_timeout=3600, failure_ttl=7 * 24 * 3600)
