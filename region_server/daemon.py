"""The region daemon's loop: an index pass every interval, verification queued for what it found and,
a batch per pass, for attempts whose last check is ``[verification] reverify_hours`` old."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

from flask import Flask
from sqlalchemy import select

from region_server.auth import settings as settings_of
from region_server.extensions import db
from region_server.indexer import PassReport, index_once, new_owner
from region_server.models import Attempt, Verification
from region_server.store import store_for
from region_server.work_queue import enqueue_verification

logger = logging.getLogger(__name__)


def index_pass(app: Flask, owner: str | None = None) -> PassReport:
    """One index pass in ``app``'s context (the session removed afterwards)."""
    with app.app_context():
        try:
            return index_once(db.session, store_for(app), settings_of(app).index, owner=owner)
        finally:
            db.session.remove()


def pending_attempts(app: Flask) -> list[int]:
    with app.app_context():
        try:
            return list(db.session.scalars(select(Attempt.id).where(Attempt.verification == Verification.PENDING)))
        finally:
            db.session.remove()


def stale_attempts(app: Flask, now: datetime | None = None) -> list[int]:
    """Checked attempts whose last check is older than ``reverify_hours``, oldest first, one batch."""
    verification = settings_of(app).verification
    if not verification.reverify_hours:
        return []
    before = (now or datetime.now(timezone.utc)) - timedelta(hours=verification.reverify_hours)
    with app.app_context():
        try:
            return list(db.session.scalars(
                select(Attempt.id).where(Attempt.verification != Verification.PENDING, Attempt.checked_at < before)
                .order_by(Attempt.checked_at).limit(verification.reverify_batch)))
        finally:
            db.session.remove()


def run_daemon(app: Flask, stop: threading.Event) -> None:
    """Index every ``index.interval_seconds`` until ``stop``; queue verification of new and changed
    attempts (and, at start, of every attempt still pending)."""
    settings = settings_of(app)
    owner = new_owner()
    enqueue_verification(settings, pending_attempts(app))
    while not stop.is_set():
        try:
            report = index_pass(app, owner)
            queued = enqueue_verification(settings, report.attempts)
            stale = stale_attempts(app)
            if stale:
                logger.info("checking %d attempts again (last checked over %g h ago): %d queued", len(stale),
                            settings.verification.reverify_hours, enqueue_verification(settings, stale))
            if report.attempts or report.problems:
                logger.info("index pass: %d keys listed, %d documents read, %d attempts new or changed "
                            "(%d queued for verification), %d problems", report.listed, report.fetched,
                            len(report.attempts), queued, report.problems)
        except Exception:  # one bad pass must not end the daemon: logged, and the next one tries again
            logger.exception("index pass failed")
        stop.wait(settings.index.interval_seconds)
