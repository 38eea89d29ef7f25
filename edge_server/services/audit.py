"""The audit log: every staff action and station event, append-only and tamper-evident.

Each event row carries the hash of the row before it and its own hash over its content. A unique
constraint on ``prev_hash`` makes the chain linear even with several writers: two rows that
claim the same predecessor cannot both be stored, so the loser retries on the new tail.
``verify`` walks the table and names the first row that was changed, deleted or inserted.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edge_server.models import Event, utcnow

GENESIS = ""


def _canonical_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def event_hash(event: Event) -> str:
    body = {
        "prev": event.prev_hash, "at": _canonical_time(event.at), "kind": event.kind, "source": event.source,
        "station": event.station_id, "attempt": event.attempt_id, "payload": event.payload,
    }
    data = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def append(session: Session, *, kind: str, station_id: str | None, attempt_id: str | None,
           payload: dict[str, Any], source: str, at: datetime | None = None) -> Event:
    """One row at the chain's tail; if another writer took that place meanwhile, it links to the new tail."""
    return append_many(session, [{"kind": kind, "station_id": station_id, "attempt_id": attempt_id,
                                  "payload": payload, "source": source, "at": at}])[0]


def append_many(session: Session, entries: list[dict[str, Any]]) -> list[Event]:
    """Several rows at once, chained in order from one read of the tail and written in one flush.

    Each entry holds ``append``'s keyword arguments. If another writer took the tail meanwhile,
    the whole batch is chained again on the new tail.
    """
    if not entries:
        return []
    for _ in range(20):
        tail = session.scalar(select(Event.hash).order_by(Event.id.desc()).limit(1)) or GENESIS
        events = []
        for entry in entries:
            event = Event(kind=entry["kind"], station_id=entry.get("station_id"), attempt_id=entry.get("attempt_id"),
                          payload=entry.get("payload") or {}, source=entry["source"], at=entry.get("at") or utcnow(),
                          prev_hash=tail)
            event.hash = tail = event_hash(event)
            events.append(event)
        try:
            with session.begin_nested():
                session.add_all(events)
                session.flush()
            return events
        except IntegrityError:
            continue  # another writer took this place in the chain; link to the new tail
    raise RuntimeError("could not append to the audit log")


def verify(session: Session) -> list[str]:
    """Every problem in the chain, oldest first (an empty list means intact)."""
    problems: list[str] = []
    expected_prev = GENESIS
    for event in session.scalars(select(Event).order_by(Event.id)):
        if event.prev_hash != expected_prev:
            problems.append(f"event {event.id}: does not follow the previous row (a row was deleted or inserted)")
        if event_hash(event) != event.hash:
            problems.append(f"event {event.id}: content changed after it was written")
        expected_prev = event.hash
    return problems
