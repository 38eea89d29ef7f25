"""How the region queues its RQ jobs (the jobs live in ``region_server.jobs``, named by dotted path)."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from region_server.config import RegionSettings

logger = logging.getLogger(__name__)

VERIFY_RETRY = Retry(max=5, interval=[10, 30, 120, 300, 900])
PENDING_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
# A full re-hash of a 25-minute attempt at the default 50 MB/s takes well under this.
VERIFY_TIMEOUT = 6 * 3600


def queue(settings: RegionSettings, connection: Redis | None = None) -> Queue:
    return Queue(settings.queue_name, connection=connection or Redis.from_url(settings.redis_url))


def enqueue_verification(settings: RegionSettings, attempt_ids: Iterable[int]) -> int:
    """Queue ``region_server.jobs.verify_attempt`` once per attempt (a job still pending is kept);
    returns how many were queued. Redis down: logged, nothing raised (the next pass queues again)."""
    try:
        q = queue(settings)
        queued = 0
        for attempt_id in attempt_ids:
            job_id = f"region-verify-{attempt_id}"
            try:
                existing = Job.fetch(job_id, connection=q.connection)
            except NoSuchJobError:
                existing = None
            if existing is not None:
                if existing.get_status(refresh=False) in PENDING_STATES:
                    continue
                existing.delete()
            q.enqueue("region_server.jobs.verify_attempt", attempt_id, job_id=job_id, retry=VERIFY_RETRY,
                      job_timeout=VERIFY_TIMEOUT, failure_ttl=7 * 24 * 3600)
            queued += 1
        return queued
    except RedisError as exc:
        logger.warning("cannot queue verification (Redis at %s): %s", settings.redis_url, exc)
        return 0
