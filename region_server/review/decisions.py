"""Reviewers' decisions on flags: each one saved with its audit row in the same transaction."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from region_server import audit
from region_server.models import Attempt, utcnow
from region_server.review.models import Decision, FlagDecision

NOTE_LIMIT = 2000


class DecisionError(ValueError):
    """A decision that cannot be saved (unknown flag or decision, note too long)."""


def decisions_of(session: Session, attempt_id: int) -> dict[str, FlagDecision]:
    rows = session.scalars(select(FlagDecision).where(FlagDecision.attempt_id == attempt_id))
    return {row.flag_key: row for row in rows}


def decide(session: Session, attempt: Attempt, flag_key: str, decision: str, note: str, *, by: str,
           known_keys: set[str]) -> FlagDecision:
    """Set the decision on one flag of ``attempt`` (one of ``known_keys``); audited when it changes."""
    if flag_key not in known_keys:
        raise DecisionError(f"attempt has no flag {flag_key!r}")
    try:
        value = Decision(decision)
    except ValueError:
        raise DecisionError(f"unknown decision {decision!r}") from None
    note = (note or "").strip()
    if len(note) > NOTE_LIMIT:
        raise DecisionError(f"the note is longer than {NOTE_LIMIT} characters")
    row = session.scalar(select(FlagDecision).where(FlagDecision.attempt_id == attempt.id,
                                                    FlagDecision.flag_key == flag_key))
    before = None if row is None else {"decision": str(row.decision), "note": row.note}
    if row is None:
        row = FlagDecision(attempt_id=attempt.id, flag_key=flag_key, decision=value, note=note, decided_by=by)
        session.add(row)
    elif before == {"decision": str(value), "note": note}:
        return row
    row.decision, row.note, row.decided_by, row.decided_at = value, note, by, utcnow()
    session.flush()
    audit.record(session, actor=by, action="flag.decided", subject=f"attempt {attempt.id} flag {flag_key}",
                 payload={"attempt": attempt.id, "prefix": attempt.prefix, "flag": flag_key,
                          "decision": str(value), "note": note, "before": before})
    return row
