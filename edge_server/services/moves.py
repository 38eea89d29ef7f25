"""What a station needs to continue an attempt after the seat map moved its candidate there.

The seat map (services/seats.py) logs every move of a candidate with an attempt as a
``seat_moved`` event of the attempt. The stations report ``question_started`` (with server time)
and ``entered_waiting_room`` / ``entered_late`` events. From these the edge answers, with the
attempt, where the candidate was: whether recording had begun, the current question and when it
started, the questions already answered, the interruptions used, and the first segment sequence
number the new station may use (``station.chain.move_seq_base``: names never collide with the old
station's, and each camera's chain starts a new link there).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge_server.models import Attempt, Event
from edge_server.services import seats
from station.chain import move_seq_base

MOVED = "seat_moved"
QUESTION_STARTED = "question_started"
ENTERED = ("entered_waiting_room", "entered_late", QUESTION_STARTED)


def move_count(session: Session, attempt: Attempt) -> int:
    return session.scalar(select(func.count()).select_from(Event)
                          .where(Event.attempt_id == attempt.id, Event.kind == MOVED)) or 0


def seq_restarts(session: Session, attempt: Attempt) -> frozenset[int]:
    """The sequence numbers where a camera's chain may start a new link (one per move)."""
    return frozenset(move_seq_base(k) for k in range(1, move_count(session, attempt) + 1))


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
