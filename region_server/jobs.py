"""RQ jobs of the region: verify an attempt (HEAD, chain) and then re-hash it at the configured rate.

Top-level functions taking row ids, opening their own app context, safe to run twice.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from flask import Flask

from region_server.app import create_app
from region_server.auth import settings as settings_of
from region_server.extensions import db
from region_server.models import Attempt, Verification
from region_server.store import store_for
from region_server.throttle import TokenBucket
from region_server.verify import head_check, rehash_check

logger = logging.getLogger(__name__)
_app: Flask | None = None


@contextmanager
def app_context() -> Iterator[Flask]:
    """The worker's app (built once per process, from the settings file)."""
    global _app
    if _app is None:
        _app = create_app()
    with _app.app_context():
        try:
            yield _app
        finally:
            db.session.remove()


def verify_attempt(attempt_id: int) -> dict:
    """HEAD every object of the attempt, check its chain, then (if all are there and the settings ask
    for it) read every byte again at ``verification.rate_bytes_per_s``."""
    with app_context() as app:
        return verify_in_app(app, attempt_id)


def verify_in_app(app: Flask, attempt_id: int, rehash: bool | None = None) -> dict:
    """``verify_attempt`` in an app context the caller holds (tests and ``examkiosk-region verify``)."""
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None:
        return {"attempt": attempt_id, "verification": None}
    store = store_for(app)
    head_check(db.session, store, attempt)
    config = settings_of(app).verification
    hashed = 0
    if (config.rehash if rehash is None else rehash) and attempt.verification != Verification.PENDING:
        hashed = rehash_check(db.session, store, attempt, TokenBucket(config.rate_bytes_per_s,
                                                                       burst=max(config.rate_bytes_per_s, 1 << 20)))
    logger.info("attempt %s (%s): %s, chain %s, %d bytes re-hashed", attempt.attempt, attempt.prefix,
                attempt.verification, attempt.chain_verdict, hashed)
    return {"attempt": attempt_id, "verification": str(attempt.verification), "chain": str(attempt.chain_verdict),
            "hashed_bytes": hashed}
