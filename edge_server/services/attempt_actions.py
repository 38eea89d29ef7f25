"""What a station or a proctor does to an attempt, each action together with its audit row.

The primitives (``services/attempts.py``) change the rows; these functions are the actions the API
and the staff pages perform, so no view writes the audit log itself. The caller commits.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from edge_server.models import Attempt, Review, StaffUser, Station
from edge_server.services import attempts as attempt_service
from edge_server.services import audit, frames


def identify(session: Session, station: Station, ticket_no: str, now: datetime) -> Attempt:
    """The candidate of ``ticket_no`` starts (or resumes) an attempt at ``station``."""
    attempt = attempt_service.open_attempt(session, station, ticket_no, now)
    audit.append(session, kind="identified", source="api", station_id=station.id, attempt_id=attempt.id, payload={})
    return attempt


def face_try(session: Session, data_dir: Path, station: Station, attempt: Attempt, *, distance: float | None,
             matched: bool, liveness: Any, frame: bytes | None) -> int:
    """One face login try (its frame kept for the review); the number of tries so far."""
    frame_sha256 = frames.store_face_try_frame(data_dir, attempt.id, frame) if frame is not None else None
    tries = attempt_service.record_face_try(session, attempt, distance=distance, matched=matched,
                                            frame_sha256=frame_sha256)
    audit.append(session, kind="face_try", source="api", station_id=station.id, attempt_id=attempt.id,
                 payload={"distance": distance, "matched": matched, "try": tries, "liveness": liveness,
                          "frame_sha256": frame_sha256})
    return tries


def request_review(session: Session, data_dir: Path, station: Station, attempt: Attempt, *,
                   best_distance: float | None, frame: bytes | None) -> Review:
    """The station asks a proctor to compare the candidate with the enrolled photo."""
    review = attempt_service.request_review(session, attempt, best_distance)
    if frame is not None:
        path = frames.review_frame_path(data_dir, review.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(frame)
    audit.append(session, kind="review_requested", source="api", station_id=station.id, attempt_id=attempt.id, payload={})
    return review


def decide_review(session: Session, review: Review, *, approve: bool, by: StaffUser, reason: str = "") -> Review:
    """A proctor's decision on a face-login review."""
    attempt_service.decide_review(session, review, approve=approve, staff_id=by.id, reason=reason)
    audit.append(session, kind="review_decided", station_id=review.attempt.station_id, attempt_id=review.attempt_id,
                 source="staff", payload={"review": review.id, "approved": approve, "by": by.username,
                                          "reason": reason})
    return review


def draw_lot(session: Session, station: Station, attempt: Attempt, now: datetime) -> int:
    """The candidate draws the lot number their recordings are filed under (automatic after the deadline)."""
    lot = attempt_service.draw_lot(session, attempt, auto=now >= attempt.sitting.lot_deadline_at)
    audit.append(session, kind="lot_drawn", source="api", station_id=station.id, attempt_id=attempt.id,
                 payload={"lot": lot, "auto": attempt.lot_auto})
    return lot


def report_event(session: Session, station: Station, kind: str, attempt_id: str | None,
                 payload: dict[str, Any] | None) -> None:
    """An event the station reports (of its attempt, or of one it handed over)."""
    if attempt_id is not None:  # a station the candidate left still reports the attempt's events
        attempt_service.get_attempt(session, station, attempt_id, handover=True)
    audit.append(session, kind=kind, source="api", station_id=station.id, attempt_id=attempt_id, payload=payload or {})


def finish(session: Session, station: Station, attempt: Attempt, segments: list[str], reason: str) -> None:
    """The station finished the attempt (or handed its part over) and declared its segments."""
    attempt_service.finish_attempt(session, station, attempt, segments, reason)
    kind = "segments_handed_over" if reason == attempt_service.HANDED_OVER else "attempt_finished"
    audit.append(session, kind=kind, source="api", station_id=station.id, attempt_id=attempt.id,
                 payload={"segments": len(segments), "reason": reason})
