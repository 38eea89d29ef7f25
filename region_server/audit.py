"""The region's own audit log: every export, score change, flag decision and assignment, hash-chained.

Each row stores the hash of the row before it (``prev_hash``, "" for the first) and its own hash,
``sha256(prev_hash + canonical JSON of the row's content)``. A unique constraint on ``prev_hash``
keeps the chain linear with several writers (web workers): two rows that claim the same
predecessor cannot both be stored, so the loser links to the new tail and tries again.
:func:`verify_chain` walks the rows in order and names the first one that was changed, deleted
or inserted after it was written.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from region_server.models import Base, utcnow

GENESIS = ""


class AuditRow(Base):
    """One audited action: who (``actor``, a username), what (``action``), on what (``subject``)."""

    __tablename__ = "region_audit"
    __table_args__ = (UniqueConstraint("prev_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    hash: Mapped[str] = mapped_column(String(64), default="")


@dataclass(frozen=True)
class BrokenRow:
    """The first row where the chain does not hold, and why."""

    row_id: int
    reason: str

    def __str__(self) -> str:
        return f"audit row {self.row_id}: {self.reason}"


def canonical(row: AuditRow) -> str:
    """The row's content as hashed: sorted compact JSON, the time as UTC ISO with microseconds."""
    body = {"at": row.at.astimezone(timezone.utc).isoformat(timespec="microseconds"), "actor": row.actor,
            "action": row.action, "subject": row.subject, "payload": row.payload}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def row_hash(row: AuditRow) -> str:
    return hashlib.sha256((row.prev_hash + canonical(row)).encode()).hexdigest()


def record(session: Session, *, actor: str, action: str, subject: str = "",
           payload: dict[str, Any] | None = None, at: datetime | None = None) -> AuditRow:
    """Append a row to the chain in the session's transaction (the caller commits with its change)."""
    at = (at or utcnow()).astimezone(timezone.utc)
    for _ in range(20):
        tail = session.scalar(select(AuditRow.hash).order_by(AuditRow.id.desc()).limit(1))
        row = AuditRow(at=at, actor=actor, action=action, subject=subject, payload=dict(payload or {}),
                       prev_hash=tail or GENESIS)
        row.hash = row_hash(row)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except IntegrityError:
            continue  # another writer took this place in the chain; link to the new tail
    raise RuntimeError("could not append to the region's audit log")


def verify_chain(session: Session) -> BrokenRow | None:
    """The first row that was changed, deleted before, or inserted; None when the whole chain holds."""
    expected_prev = GENESIS
    for row in session.scalars(select(AuditRow).order_by(AuditRow.id)):
        if row.prev_hash != expected_prev:
            return BrokenRow(row.id, "does not follow the row before it (a row was deleted or inserted)")
        if row_hash(row) != row.hash:
            return BrokenRow(row.id, "its content changed after it was written")
        expected_prev = row.hash
    return None


def rows(session: Session, limit: int = 200) -> list[AuditRow]:
    """The newest rows first."""
    return list(session.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)))
