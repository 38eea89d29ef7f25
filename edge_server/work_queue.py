"""How the edge queues its RQ jobs (the jobs themselves live in ``edge_server.jobs``).

Jobs are named by their dotted path, so a view that queues one does not import the job's module
(which builds its own app, ``edge_server.jobs.context``)."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

from edge_server.config import EdgeSettings
from examkiosk_wire.topics import StationCommand

logger = logging.getLogger(__name__)

SYNC_RETRY = Retry(max=8, interval=[5, 15, 30, 60, 120, 300, 600, 900])
IMPORT_RETRY = Retry(max=3, interval=[5, 30, 120])
# A job in one of these states will still run: queueing the same attempt again adds nothing.
# A push's outcome stays readable (the page shows it) for a day; the audit log keeps it for good.
PUSH_TTL = 24 * 3600
PENDING_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def queue(settings: EdgeSettings) -> Queue:
    return Queue(settings.queue_name, connection=Redis.from_url(settings.redis_url))


def push_queue(settings: EdgeSettings) -> Queue:
    """Pushes have a queue of their own, which the worker takes first: they must not wait behind syncs."""
    return Queue(f"{settings.queue_name}-push", connection=Redis.from_url(settings.redis_url))


def queues(settings: EdgeSettings, connection: Redis) -> list[Queue]:
    """What ``examkiosk-edge-worker`` works, in that order."""
    return [Queue(f"{settings.queue_name}-push", connection=connection), Queue(settings.queue_name, connection=connection)]


def _enqueue_once(settings: EdgeSettings, job_id: str, function: str, argument: str, *, timeout: int) -> Job:
    """Queue ``function(argument)`` under ``job_id`` with the sync retries, once.

    A job of that id still queued, running or waiting for a retry is returned as it is;
    a finished or failed one is replaced by a new run.
    """
    q = queue(settings)
    try:
        existing = Job.fetch(job_id, connection=q.connection)
    except NoSuchJobError:
        existing = None
    if existing is not None:
        if existing.get_status(refresh=False) in PENDING_STATES:
            return existing
        existing.delete()
    try:
        return q.enqueue(function, argument, job_id=job_id, retry=SYNC_RETRY, job_timeout=timeout,
                         failure_ttl=7 * 24 * 3600, unique=True)
    except DuplicateJobError:  # queued by someone else in the meantime
        return Job.fetch(job_id, connection=q.connection)


def enqueue_sync(settings: EdgeSettings, attempt_id: str) -> Job:
    """Queue the copy of an attempt to central storage; one job id per attempt (see ``_enqueue_once``)."""
    return _enqueue_once(settings, f"sync-{attempt_id}", "edge_server.jobs.sync.sync_attempt", attempt_id,
                         timeout=3600)


def enqueue_sitting_sync(settings: EdgeSettings, sitting_id: str) -> Job:
    """Queue the sitting's documents in central storage (``edge_server.jobs.sitting_sync``); one job id
    per sitting (the job writes what is current when it runs)."""
    return _enqueue_once(settings, f"sitting-{sitting_id}", "edge_server.jobs.sitting_sync.sync_sitting", sitting_id,
                         timeout=600)


def enqueue_import_analysis(settings: EdgeSettings, import_id: str) -> Job:
    """Queue the descriptors of a candidate import's photos (``edge_server.jobs.candidates``)."""
    return queue(settings).enqueue("edge_server.jobs.candidates.analyse_import", import_id, job_id=f"import-{import_id}",
                                   retry=IMPORT_RETRY, job_timeout=3600, failure_ttl=7 * 24 * 3600)


# --- pushes to stations -------------------------------------------------------------------------
# A staff action's command to stations is sent by the worker (``edge_server.jobs.push``), never in
# the request: the request returns at once and the page shows the outcome once the worker has it.

SENDING, DELIVERED, NOT_DELIVERED = "sending", "delivered", "not_delivered"


def push_job_id(about: str) -> str:
    return f"push-{about}"


def enqueue_push(settings: EdgeSettings, about: str, station_ids: Iterable[str], command: StationCommand) -> str:
    """Queue ``command`` to ``station_ids`` under ``about`` (what it is about, e.g. ``message-12``);
    SENDING, or NOT_DELIVERED when the queue is unavailable (the stations ask the API anyway)."""
    stations = list(station_ids)
    if not stations:
        return DELIVERED
    try:
        push_queue(settings).enqueue("edge_server.jobs.push.deliver", about, stations, command.to_json(),
                                     job_id=push_job_id(about), job_timeout=120, result_ttl=PUSH_TTL,
                                     failure_ttl=PUSH_TTL)
    except RedisError as exc:
        logger.warning("could not queue the %s push %s (%s): the stations will ask the API", command.kind, about, exc)
        return NOT_DELIVERED
    return SENDING


def enqueue_cut_off(settings: EdgeSettings, station_id: str, by: str) -> bool:
    """Queue a revoked station's MQTT cut-off (``edge_server.jobs.stations``); False if the queue is unavailable."""
    try:
        push_queue(settings).enqueue("edge_server.jobs.stations.cut_off", station_id, by,
                                     job_id=f"cut-off-{station_id}", job_timeout=120, result_ttl=PUSH_TTL,
                                     failure_ttl=PUSH_TTL, retry=Retry(max=3, interval=[5, 30, 120]))
    except RedisError as exc:
        logger.warning("could not queue the MQTT cut-off of revoked station %s (%s): doing it now", station_id, exc)
        return False
    return True


def push_outcomes(settings: EdgeSettings, abouts: Iterable[str]) -> dict[str, str]:
    """What became of each push (SENDING, DELIVERED, NOT_DELIVERED); pushes the queue does not know
    (never queued, expired, or Redis away) are left out."""
    abouts = list(dict.fromkeys(abouts))
    if not abouts:
        return {}
    try:
        connection = Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
        jobs = Job.fetch_many([push_job_id(a) for a in abouts], connection=connection)
        found = {}
        for about, job in zip(abouts, jobs, strict=True):
            if job is None:
                continue
            status = job.get_status(refresh=False)
            if status == JobStatus.FINISHED:
                found[about] = DELIVERED if job.return_value() else NOT_DELIVERED
            elif status in PENDING_STATES:
                found[about] = SENDING
            else:
                found[about] = NOT_DELIVERED
        return found
    except RedisError as exc:
        logger.info("push outcomes unavailable (Redis: %s)", exc)
        return {}
