"""Attempts: opening one for a candidate, face tries, manual review, lots, upload completion."""
from __future__ import annotations

import logging
import random
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edge_server.config import EdgeSettings
from edge_server.errors import Closed, Conflict, NotFound
from edge_server.models import (
    Attempt,
    Candidate,
    Event,
    FaceTry,
    Review,
    ReviewStatus,
    Segment,
    SegmentStatus,
    Sitting,
    SittingKind,
    Station,
    utcnow,
)
from edge_server.services import audit
from edge_server.services.moves import awaited_handovers, moved_from, seq_restarts
from edge_server.work_queue import enqueue_sync
from examkiosk_wire.chain import link_problems

logger = logging.getLogger(__name__)

MAX_FACE_TRIES = 3


def find_candidate(session: Session, centre_id: str, ticket_no: str) -> Candidate:
    candidate = session.scalar(
        select(Candidate).where(Candidate.centre_id == centre_id, Candidate.ticket_no == ticket_no.strip())
    )
    if candidate is None:
        raise NotFound("no candidate with this admission ticket number", code="candidate_unknown")
    return candidate


def get_attempt(session: Session, station: Station, attempt_id: str, *, handover: bool = False) -> Attempt:
    """The attempt, if ``station`` may act on it: the candidate's station (``at_station``), or (with
    ``handover``: reading it, reporting its events, uploading and declaring its segments) a station
    the seat map moved the candidate away from. Any other station, of this centre or another, is
    told the attempt does not exist."""
    attempt = session.get(Attempt, attempt_id)
    if attempt is None or attempt.sitting.centre_id != station.centre_id:
        raise NotFound("no such attempt", code="attempt_unknown")
    if not at_station(attempt, station) and not (handover and station.id in moved_from(session, attempt)):
        raise NotFound("no such attempt", code="attempt_unknown")
    return attempt


def at_station(attempt: Attempt, station: Station) -> bool:
    """Whether the candidate sits at ``station``: the attempt was opened there last, or the seat map
    put the candidate there (before the candidate has identified at it)."""
    return station.id in (attempt.station_id, attempt.candidate.station_id)


def open_attempt(session: Session, station: Station, ticket_no: str, now: datetime) -> Attempt:
    """The candidate's attempt at their sitting, created on first identification.

    Identification again (after a station restart, or at a spare station) returns the same attempt.
    A candidate the seat map assigned to a station is identified there only (services/seats.py).
    """
    candidate = find_candidate(session, station.centre_id, ticket_no)
    if candidate.station_id is not None and candidate.station_id != station.id:
        seat = session.get(Station, candidate.station_id)
        where = (seat.seat or seat.id) if seat is not None else candidate.station_id
        raise Conflict(f"这不是您的考位，请到考位 {where} · This is not your station: please go to {where}",
                       code="wrong_station")
    sitting = session.get(Sitting, candidate.sitting_id)
    assert sitting is not None
    attempt = session.scalar(
        select(Attempt).where(Attempt.sitting_id == sitting.id, Attempt.candidate_id == candidate.id)
    )
    if attempt is None:
        if now >= sitting.entry_closes_at:
            raise Closed("entry to this sitting has closed", code="entry_closed")
        if sitting.mock_required and sitting.kind == SittingKind.FORMAL and not completed_mock(session, candidate):
            raise Closed("须先完成模拟测试，请联系监考老师 · A completed mock test is required first: "
                         "please ask the proctor", code="mock_required")
        attempt = Attempt(sitting_id=sitting.id, candidate_id=candidate.id, station_id=station.id)
        session.add(attempt)
        try:
            session.flush()
        except IntegrityError:  # two stations raced to open the same attempt
            session.rollback()
            attempt = session.scalar(
                select(Attempt).where(Attempt.sitting_id == sitting.id, Attempt.candidate_id == candidate.id)
            )
            assert attempt is not None
    elif attempt.finished_at is not None:
        raise Closed("this candidate has already finished the sitting", code="attempt_finished")
    attempt.station_id = station.id
    return attempt


# How a mock attempt may have ended and still count as completed (station/flow.py end reasons).
COMPLETED_END_REASONS = ("", "time_up", "ended_by_candidate")


def completed_mock(session: Session, candidate: Candidate) -> bool:
    """Whether the same person (same ID number, same centre) finished a mock sitting."""
    mock = Candidate.__table__.alias("mock_candidate")
    return session.scalar(
        select(func.count()).select_from(Attempt)
        .join(mock, mock.c.id == Attempt.candidate_id)
        .join(Sitting, Sitting.id == Attempt.sitting_id)
        .where(mock.c.centre_id == candidate.centre_id, mock.c.id_number == candidate.id_number,
               Sitting.kind == SittingKind.MOCK, Attempt.finished_at.is_not(None),
               Attempt.end_reason.in_(COMPLETED_END_REASONS))
    ) > 0


def face_tries(session: Session, attempt: Attempt) -> int:
    return session.scalar(select(func.count()).select_from(FaceTry).where(FaceTry.attempt_id == attempt.id)) or 0


def record_face_try(session: Session, attempt: Attempt, *, distance: float | None, matched: bool,
                    frame_sha256: str | None = None) -> int:
    """Log one face login try (with the frame's hash, if the station sent one); returns how many tries
    the attempt has had."""
    session.add(FaceTry(attempt_id=attempt.id, distance=distance, matched=matched, frame_sha256=frame_sha256))
    if matched:
        attempt.face_verified = "face"
    session.flush()
    return face_tries(session, attempt)


def list_face_tries(session: Session, attempt: Attempt) -> list[FaceTry]:
    return list(session.scalars(select(FaceTry).where(FaceTry.attempt_id == attempt.id).order_by(FaceTry.id)))


def request_review(session: Session, attempt: Attempt, best_distance: float | None) -> Review:
    """After the failed tries, a manual review for the proctor (one open request per attempt)."""
    review = latest_review(session, attempt)
    if review is not None and review.status == ReviewStatus.PENDING:
        return review
    review = Review(attempt_id=attempt.id, best_distance=best_distance)
    session.add(review)
    session.flush()
    return review


def latest_review(session: Session, attempt: Attempt) -> Review | None:
    return session.scalar(
        select(Review).where(Review.attempt_id == attempt.id).order_by(Review.id.desc()).limit(1)
    )


def decide_review(session: Session, review: Review, *, approve: bool, staff_id: int | None, reason: str = "") -> Review:
    if review.status != ReviewStatus.PENDING:
        raise Conflict("this review has already been decided", code="review_decided")
    review.status = ReviewStatus.APPROVED if approve else ReviewStatus.REJECTED
    review.reason = reason
    review.decided_by = staff_id
    review.decided_at = utcnow()
    if approve:
        review.attempt.face_verified = "review"
    return review


def draw_lot(session: Session, attempt: Attempt, *, auto: bool = False, rng: random.Random | None = None) -> int:
    """Give the attempt a lot number unique within its sitting; idempotent.

    Uniqueness is the database's: a unique constraint on (sitting, lot), and a retry if two
    stations drew the same free number at once.
    """
    if attempt.lot is not None:
        return attempt.lot
    rng = rng or random.SystemRandom()
    attempt_id = attempt.id
    for _ in range(20):
        taken = set(session.scalars(select(Attempt.lot).where(Attempt.sitting_id == attempt.sitting_id,
                                                              Attempt.lot.is_not(None))))
        size = max(_candidate_count(session, attempt.sitting_id), len(taken) + 1)
        free = [n for n in range(1, size + 1) if n not in taken]
        lot = rng.choice(free)
        try:
            with session.begin_nested():
                attempt.lot = lot
                attempt.lot_auto = auto
                session.flush()
            return lot
        except IntegrityError:
            attempt = session.get(Attempt, attempt_id)
            assert attempt is not None
            attempt.lot = None
            continue
    raise Conflict("could not draw a free lot number, try again", code="lot_busy")


def _candidate_count(session: Session, sitting_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Candidate).where(Candidate.sitting_id == sitting_id)) or 0


def assign_missing_lots(session: Session, now: datetime) -> list[Attempt]:
    """After a sitting's lot deadline, every attempt without a lot is given one."""
    attempts = session.scalars(
        select(Attempt).join(Sitting).where(Sitting.lot_deadline_at <= now, Attempt.lot.is_(None))
    ).all()
    for attempt in attempts:
        draw_lot(session, attempt, auto=True)
    return list(attempts)


# The finish reason of a station the candidate was moved away from: it declares its segments, the
# attempt goes on at the new station.
HANDED_OVER = "moved"


def finish_attempt(session: Session, station: Station, attempt: Attempt, segment_names: list[str],
                   reason: str = "") -> None:
    """``station`` declares its segments of the attempt; every station's declared segments are expected.

    With ``reason == HANDED_OVER`` (the candidate was moved to another station) the attempt is not
    finished: the new station finishes it later and the edge expects both stations' segments. Only
    the station the candidate sits at now may finish the attempt.
    """
    if not all(isinstance(n, str) and n for n in segment_names):
        raise Conflict("segments must be a list of names", code="bad_segments")
    if reason != HANDED_OVER and not at_station(attempt, station):
        raise Conflict("the candidate continues at another station; this one can only hand its segments over",
                       code="attempt_elsewhere")
    attempt.expected_segments = sorted(set(segment_names) | set(attempt.expected_segments or []))
    if reason == HANDED_OVER:
        return
    attempt.finished_at = attempt.finished_at or utcnow()
    if reason:
        attempt.end_reason = reason[:64]


def chain_problems(segments: list[Segment], signed: bool, restarts: frozenset[int] = frozenset()) -> list[str]:
    """Gaps, broken links or unsigned entries in each camera's chain of verified segments.

    ``restarts``: where a move let the chain start a new link (services/moves.py).
    """
    if not signed:
        return []
    problems = []
    for camera in sorted({s.camera for s in segments}):
        chain = sorted((s for s in segments if s.camera == camera), key=lambda s: s.seq)
        problems += [f"{camera}: {p}"
                     for p in link_problems([(s.seq, s.prev_hash, s.entry_hash) for s in chain], restarts)]
        problems += [f"{camera}: segment {s.seq} is unsigned" for s in chain if not s.signature]
    return problems


def upload_status(session: Session, attempt: Attempt) -> dict[str, Any]:
    segments = session.scalars(select(Segment).where(Segment.attempt_id == attempt.id)).all()
    verified = {s.name for s in segments if s.status == SegmentStatus.VERIFIED}
    expected = set(attempt.expected_segments or [])
    station = session.get(Station, attempt.station_id) if attempt.station_id else None

    problems = chain_problems([s for s in segments if s.status == SegmentStatus.VERIFIED],
                              signed=station is not None and station.public_key is not None,
                              restarts=seq_restarts(session, attempt))
    awaited = awaited_handovers(session, attempt)
    return {
        "attempt": attempt.id,
        "finished": attempt.finished_at is not None,
        "expected": len(expected),
        "verified": len(verified & expected) if expected else len(verified),
        "missing": sorted(expected - verified),
        "corrupt": sorted(s.name for s in segments if s.status == SegmentStatus.CORRUPT),
        "bytes_received": sum(s.offset for s in segments),
        "chain_ok": not problems,
        "chain_problems": problems,
        "awaiting_handover": awaited,  # stations moved away from that have not declared their segments
        "complete": (attempt.finished_at is not None and bool(expected) and expected <= verified
                     and not problems and not awaited),
        "sync": str(attempt.sync_status),
    }


def mark_complete_if_done(session: Session, attempt: Attempt) -> bool:
    """True the first time every expected segment is verified."""
    if attempt.upload_complete_at is not None or not attempt.expected_segments:
        return False
    if upload_status(session, attempt)["complete"]:
        attempt.upload_complete_at = utcnow()
        return True
    return False


def recent_attempts(session: Session, centre_id: str, *, limit: int) -> list[Attempt]:
    """The centre's ``limit`` latest attempts, newest first (filtered in the query: other centres'
    attempts never take a place)."""
    return list(session.scalars(
        select(Attempt).join(Sitting, Attempt.sitting_id == Sitting.id).where(Sitting.centre_id == centre_id)
        .order_by(Attempt.created_at.desc(), Attempt.id).limit(limit)))


def pending_reviews(session: Session, centre_id: str) -> list[Review]:
    """The centre's face reviews a proctor has not decided yet, oldest first."""
    return list(session.scalars(
        select(Review).join(Attempt, Review.attempt_id == Attempt.id).join(Sitting, Attempt.sitting_id == Sitting.id)
        .where(Review.status == ReviewStatus.PENDING, Sitting.centre_id == centre_id).order_by(Review.created_at)))


def failing_face_logins(session: Session, centre_id: str) -> list[Attempt]:
    """The centre's open attempts whose face login failed at least once and is not verified yet."""
    return list(session.scalars(
        select(Attempt).join(Sitting, Attempt.sitting_id == Sitting.id)
        .where(Sitting.centre_id == centre_id, Attempt.face_verified.is_(None), Attempt.finished_at.is_(None),
               Attempt.id.in_(select(FaceTry.attempt_id).where(FaceTry.matched.is_(False))))
        .order_by(Attempt.created_at)))


def queue_sync_if_complete(session: Session, settings: EdgeSettings, attempt: Attempt) -> None:
    """When the last expected segment is verified, queue the copy to central storage."""
    if mark_complete_if_done(session, attempt):
        try:
            enqueue_sync(settings, attempt.id)
            attempt.sync_status = "queued"
        except Exception as exc:  # Redis down: the daemon's sweep queues it later
            logger.warning("could not queue sync of attempt %s: %s", attempt.id, exc)


def log_events(session: Session, entries: list[dict[str, Any]]) -> list[Event]:
    """Several ``log_event`` rows (each entry its keyword arguments) chained and written at once."""
    return audit.append_many(session, entries)


def log_event(session: Session, *, kind: str, station_id: str | None, attempt_id: str | None = None,
              payload: dict[str, Any] | None = None, source: str = "api", at: datetime | None = None) -> Event:
    """Station events and staff actions all go to the hash-chained audit log."""
    return audit.append(session, kind=kind, station_id=station_id, attempt_id=attempt_id, payload=payload or {},
                        source=source, at=at)
