"""Periodic chores of the edge: paper keys at the start, automatic lots after the deadline, and
re-queueing lost sync jobs.

Every ``interval`` seconds:

- ``release_papers``: ``[papers] key_lead_seconds`` before a sitting's start (so every station has
  the paper open in memory and shows it on its own timer at the start), its sealed paper's key is pushed over MQTT (a
  ``paper_key`` StationCommand) to every station with an open attempt in it, audited once; a push
  that did not get through (broker down, login or publish refused) is tried again every round until
  it does (audited once more, ``paper_key_pushed``) or the sitting's entry closes; stations that
  miss it ask ``GET /api/v1/sittings/<id>/paper/key`` meanwhile (services/papers.py). One push
  waits at most ``KEY_PUSH_TIMEOUT`` (5 s), and after one fails no other is tried that round, so a
  broker that is down or hangs delays the other chores by seconds, not by a timeout per sitting;
- ``assign_missing_lots``: after a sitting's lot deadline every attempt without a lot gets one;
- ``queue_sitting_documents``: once after a sitting's lot deadline (every lot drawn), the job that
  writes its ``sitting.json`` and ``lots.json`` to central storage is queued (``jobs/sitting_sync.py``;
  idempotent, so a restarted daemon queueing it again for the last day's sittings changes nothing);
- an attempt whose upload is complete but whose sync is ``none`` (Redis was down when the last
  segment arrived) or ``failed`` is queued again, unless its RQ job is still queued, running or
  scheduled for a retry, and at most once per ``requeue_after`` seconds;
- at most every ``[retention] sweep_seconds``: the retention sweep (``edge_server.retention``)
  deletes recordings whose copy central storage confirms, once they are old enough.

One failing chore is logged and the loop goes on.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from flask import Flask
from sqlalchemy import select

from edge_server import retention
from edge_server.config import EdgeSettings
from edge_server.extensions import db
from edge_server.models import Attempt, Sitting, SyncStatus
from edge_server.services import attempts as attempt_service
from edge_server.services import papers, push
from edge_server.storage import open_storage
from edge_server.work_queue import enqueue_sitting_sync, enqueue_sync
from examkiosk_wire.commands import command

logger = logging.getLogger(__name__)

BUSY_JOB_STATES = {"queued", "started", "scheduled", "deferred"}
KEY_PUSH_TIMEOUT = 5.0  # connect, CONNACK and every PUBACK of one key push (on the edge's own broker)
SITTING_DOCUMENTS_WINDOW = timedelta(days=1)  # sittings whose lot deadline passed this recently


class Scheduler:
    def __init__(self, settings: EdgeSettings, app: Flask, *, interval: float = 5.0, requeue_after: float = 60.0,
                 key_push_timeout: float = KEY_PUSH_TIMEOUT,
                 enqueue: Callable[[EdgeSettings, str], object] | None = None,
                 enqueue_sitting: Callable[[EdgeSettings, str], object] | None = None,
                 job_state: Callable[[str], str | None] | None = None):
        self.settings = settings
        self.app = app
        self.interval = interval
        self.requeue_after = requeue_after
        self.key_push_timeout = key_push_timeout
        self._enqueue = enqueue or enqueue_sync
        self._enqueue_sitting = enqueue_sitting or enqueue_sitting_sync
        self._documented: set[str] = set()  # sittings whose documents were queued after the deadline
        self._job_state = job_state or self._rq_job_state
        self._last_queued: dict[str, float] = {}
        self._redis = None
        self._swept_at = float("-inf")

    def _rq_job_state(self, attempt_id: str) -> str | None:
        from redis import Redis
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        if self._redis is None:
            self._redis = Redis.from_url(self.settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        try:
            job = Job.fetch(f"sync-{attempt_id}", connection=self._redis)
        except NoSuchJobError:
            return None
        status = job.get_status(refresh=False)
        return str(getattr(status, "value", status)) if status is not None else None

    def assign_lots(self, now: datetime) -> int:
        with self.app.app_context():
            try:
                assigned = attempt_service.assign_missing_lots(db.session, now)
                for attempt in assigned:
                    attempt_service.log_event(db.session, kind="lot_assigned", station_id=attempt.station_id,
                                              attempt_id=attempt.id, payload={"lot": attempt.lot, "auto": True},
                                              source="daemon")
                db.session.commit()
                for attempt in assigned:
                    logger.info("attempt %s had no lot at the deadline: assigned lot %s", attempt.id, attempt.lot)
                return len(assigned)
            except Exception:
                db.session.rollback()
                raise
            finally:
                db.session.remove()

    def queue_sitting_documents(self, now: datetime) -> int:
        """Queue, once per sitting, the job writing its documents after its lot deadline; sittings queued."""
        with self.app.app_context():
            try:
                due = db.session.scalars(select(Sitting.id).where(
                    Sitting.lot_deadline_at <= now, Sitting.lot_deadline_at > now - SITTING_DOCUMENTS_WINDOW)).all()
            finally:
                db.session.remove()
        queued = 0
        for sitting_id in due:
            if sitting_id not in self._documented:
                self._enqueue_sitting(self.settings, sitting_id)
                self._documented.add(sitting_id)
                queued += 1
        return queued

    def release_papers(self, now: datetime) -> int:
        """Push the key of every sitting that has started and whose key was not pushed yet."""
        with self.app.app_context():
            try:
                releases = papers.due_releases(db.session, self.settings.data_dir, self.settings.centre, now,
                                                self.settings.papers.key_lead_seconds)
                broker_failed = False
                for release in releases:
                    pushed = not broker_failed and self._push_key(release)
                    broker_failed = not pushed
                    papers.mark_released(db.session, release, pushed=pushed, now=now)
                    db.session.commit()
                    logger.info("sitting %s about to start: paper key %s to %d station(s)", release.sitting,
                                "pushed" if pushed else "not pushed (broker down; stations ask the API; retrying)",
                                len(release.stations))
                if not broker_failed:
                    self._retry_key_pushes(db.session, now, skip={r.sitting for r in releases})
                return len(releases)
            except Exception:
                db.session.rollback()
                raise
            finally:
                db.session.remove()

    def _push_key(self, release: papers.Release) -> bool:
        return push.send(self.settings, list(release.stations),
                         command(papers.key_command(release.sitting, release.key), ts=time.time()),
                         timeout=self.key_push_timeout)

    def _retry_key_pushes(self, session, now: datetime, skip: set[str]) -> int:
        """Push again every released key whose push failed, while its sitting's entry is open; the
        first failure ends the round (the broker is still away)."""
        pushed = 0
        for release in papers.unpushed_releases(session, self.settings.data_dir, self.settings.centre, now,
                                                 self.settings.papers.key_lead_seconds):
            if release.sitting in skip:  # just tried this round
                continue
            if not self._push_key(release):
                break
            papers.mark_pushed(session, release, tried_at=now)
            session.commit()
            pushed += 1
            logger.info("sitting %s: paper key pushed to %d station(s) on a retry", release.sitting,
                        len(release.stations))
        return pushed

    def requeue_syncs(self) -> int:
        queued = 0
        with self.app.app_context():
            try:
                attempts = db.session.scalars(
                    select(Attempt).where(Attempt.upload_complete_at.is_not(None),
                                          Attempt.sync_status.in_([SyncStatus.NONE, SyncStatus.FAILED,
                                                                   SyncStatus.QUEUED]))
                ).all()
                clock = time.monotonic()
                for attempt in attempts:
                    last = self._last_queued.get(attempt.id)
                    if last is not None and clock - last < self.requeue_after:
                        continue
                    if self._job_state(attempt.id) in BUSY_JOB_STATES:
                        continue
                    self._enqueue(self.settings, attempt.id)
                    self._last_queued[attempt.id] = clock
                    attempt.sync_status = SyncStatus.QUEUED
                    db.session.commit()
                    queued += 1
                    logger.info("queued the sync of attempt %s again", attempt.id)
            except Exception:
                db.session.rollback()
                raise
            finally:
                db.session.remove()
        return queued

    def sweep_retention(self, now: datetime) -> int:
        """The retention sweep, at most every ``[retention] sweep_seconds``; files deleted."""
        if time.monotonic() - self._swept_at < self.settings.retention.sweep_seconds:
            return 0
        self._swept_at = time.monotonic()
        with self.app.app_context():
            try:
                result = retention.sweep(db.session, self.settings, open_storage(self.settings.storage), now,
                                         syncing=lambda attempt: self._job_state(attempt) in BUSY_JOB_STATES)
            finally:
                db.session.remove()
        return result["deleted"]

    def run_once(self, now: datetime | None = None) -> dict[str, int]:
        """One round of every chore; a failing chore is logged, the others still run."""
        now = now or datetime.now(timezone.utc)
        done: dict[str, int] = {}
        for name, chore in (("papers", lambda: self.release_papers(now)), ("lots", lambda: self.assign_lots(now)),
                            ("sittings", lambda: self.queue_sitting_documents(now)),
                            ("syncs", self.requeue_syncs),
                            ("retention", lambda: self.sweep_retention(now))):
            try:
                done[name] = chore()
            except Exception as exc:
                done[name] = -1
                logger.warning("scheduler: %s failed: %s: %s", name, exc.__class__.__name__, exc,
                               exc_info=logger.isEnabledFor(logging.DEBUG))
        return done

    def next_wait(self, now: datetime) -> float:
        """Seconds to the next round: ``interval``, or less when a sitting's key is due sooner (it
        is pushed ``[papers] key_lead_seconds`` before the start, not up to ``interval`` later)."""
        try:
            with self.app.app_context():
                try:
                    start = papers.next_start(db.session, self.settings.centre, now,
                                              self.settings.papers.key_lead_seconds)
                finally:
                    db.session.remove()
        except Exception as exc:
            logger.warning("scheduler: could not look up the next start: %s", exc)
            return self.interval
        if start is None:
            return self.interval
        return max(0.0, min(self.interval, (start - now).total_seconds() + 0.01))

    def run(self, stop: threading.Event) -> None:
        logger.info("scheduler running every %g s", self.interval)
        while not stop.is_set():
            self.run_once()
            stop.wait(self.next_wait(datetime.now(timezone.utc)))
