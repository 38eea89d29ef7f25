"""What a station needs to continue an attempt after the seat map moved its candidate there.

The seat map (services/seats.py) logs every move of a candidate with an attempt as a
``seat_moved`` event of the attempt. The stations report ``question_started`` (with server time)
and ``entered_waiting_room`` / ``entered_late`` events. From these the edge answers, with the
attempt, where the candidate was: whether recording had begun, the current question and when it
started, the questions already answered, the interruptions used, and the first segment sequence
number the new station may use (``examkiosk_wire.chain.move_seq_base``: names never collide with the old
station's, and each camera's chain starts a new link there).

An attempt that moved is complete only once every station it moved away from and had used
(events or segments of the attempt) has declared its segments (``segments_handed_over``), or a
centre admin stopped waiting for one whose recording is lost (``handover_waived``, with a reason):
the new station's segments alone would make a complete-looking recording with a hole at its start.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge_server.errors import Conflict
from edge_server.models import Attempt, Event, Segment
from edge_server.services import audit, seats
from examkiosk_wire.chain import move_seq_base

MOVED = "seat_moved"
HANDED_OVER = "segments_handed_over"
WAIVED = "handover_waived"
STATION_SOURCES = ("api", "mqtt")  # events a station sent itself (not staff, daemon or job entries)
QUESTION_STARTED = "question_started"
ENTERED = ("entered_waiting_room", "entered_late", QUESTION_STARTED)


def move_count(session: Session, attempt: Attempt) -> int:
    return session.scalar(select(func.count()).select_from(Event)
                          .where(Event.attempt_id == attempt.id, Event.kind == MOVED)) or 0


def seq_restarts(session: Session, attempt: Attempt) -> frozenset[int]:
    """The sequence numbers where a camera's chain may start a new link (one per move)."""
    return frozenset(move_seq_base(k) for k in range(1, move_count(session, attempt) + 1))


def moved_from(session: Session, attempt: Attempt) -> set[str]:
    """The stations the seat map moved the attempt's candidate away from."""
    return {e.payload.get("from") for e in _events(session, attempt, (MOVED,))} - {None}


def awaited_handovers(session: Session, attempt: Attempt) -> list[str]:
    """Stations the attempt moved away from whose segments are still to be declared."""
    moved_from_ = moved_from(session, attempt)
    if not moved_from_:
        return []
    used = set(session.scalars(select(Event.station_id).where(
        Event.attempt_id == attempt.id, Event.source.in_(STATION_SOURCES), Event.station_id.in_(moved_from_))))
    used |= set(session.scalars(select(Segment.station_id).where(
        Segment.attempt_id == attempt.id, Segment.station_id.in_(moved_from_))))
    handed = {e.station_id for e in _events(session, attempt, (HANDED_OVER,))}
    waived = {e.payload.get("station") for e in _events(session, attempt, (WAIVED,))}
    return sorted(used - handed - waived)


def waive_handover(session: Session, attempt: Attempt, station_id: str, *, reason: str, by: str) -> None:
    """Stop waiting for ``station_id``'s segments (its disk is lost, say); audited with the reason."""
    if station_id not in awaited_handovers(session, attempt):
        raise Conflict(f"本次考试不在等待考位 {station_id} 的录像 · The attempt is not waiting for station "
                       f"{station_id}", code="not_awaited")
    reason = reason.strip()
    if not reason:
        raise Conflict("请写明原因 · A reason is required", code="reason_required")
    audit.append(session, kind=WAIVED, station_id=station_id, attempt_id=attempt.id, source="staff",
                 payload={"station": station_id, "reason": reason[:500], "by": by})


def _events(session: Session, attempt: Attempt, kinds: tuple[str, ...]) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.attempt_id == attempt.id, Event.kind.in_(kinds))))


def _latest(session: Session, attempt: Attempt, kinds: tuple[str, ...]) -> Event | None:
    return session.scalar(select(Event).where(Event.attempt_id == attempt.id, Event.kind.in_(kinds))
                          .order_by(Event.id.desc()).limit(1))


def resume_info(session: Session, attempt: Attempt) -> dict[str, Any]:
    """The ``resume`` part of the station API's attempt answer."""
    moves = move_count(session, attempt)
    moved = _latest(session, attempt, (MOVED,))
    started = _latest(session, attempt, (QUESTION_STARTED,))
    question = _int(started.payload.get("question")) if started is not None else None
    return {
        "moved": moves > 0,
        "moves": moves,
        "moved_at": moved.at.timestamp() if moved is not None else None,
        "entered": _latest(session, attempt, ENTERED) is not None,
        "question": question,
        "question_started_at": _float(started.payload.get("at")) if started is not None else None,
        "answered": list(range(1, question)) if question else [],
        "interruptions": seats.interruptions(session, attempt),
        "seq_from": move_seq_base(moves),
    }


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
