"""Problems found in central storage, one row per (kind, key): recorded, seen again, resolved."""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from examkiosk_wire.central import ManifestError
from region_server.models import Problem, ProblemKind, utcnow
from region_server.upsert import upsert

MANIFEST_KINDS = (ProblemKind.MALFORMED_MANIFEST, ProblemKind.TRUNCATED_MANIFEST, ProblemKind.FOREIGN_MANIFEST,
                  ProblemKind.KEY_OUTSIDE_PREFIX, ProblemKind.UNREADABLE)
_JSON_AT = re.compile(r"is not JSON .* at (\d+)$")


def manifest_problem_kind(error: ManifestError, size: int) -> ProblemKind:
    """What a refused manifest is: truncated (the JSON stops early), foreign (another format, or
    filed in another folder), naming a key outside its prefix, or otherwise malformed."""
    message = error.message
    found = _JSON_AT.search(message)
    if found:
        # The JSON stops early: a string still open at the end, or the error at the last byte.
        ends_early = "Unterminated string" in message or int(found.group(1)) >= size - 1
        return ProblemKind.TRUNCATED_MANIFEST if ends_early else ProblemKind.MALFORMED_MANIFEST
    if message.startswith("is not an examkiosk-") or "not the folder it was found in" in message:
        return ProblemKind.FOREIGN_MANIFEST
    if message.startswith("names the object key"):
        return ProblemKind.KEY_OUTSIDE_PREFIX
    return ProblemKind.MALFORMED_MANIFEST


def record(session: Session, kind: ProblemKind, key: str, message: str, *, centre: str | None = None,
           attempt_id: int | None = None, now: datetime | None = None) -> None:
    """The problem, recorded or seen again (and open again if it had been resolved)."""
    now = now or utcnow()
    upsert(session, Problem.__table__,
           {"kind": str(kind), "key": key, "message": message, "centre_id": centre, "attempt_id": attempt_id,
            "first_seen_at": now, "last_seen_at": now, "resolved_at": None},
           keys=["kind", "key"], update=["message", "centre_id", "attempt_id", "last_seen_at", "resolved_at"])


def resolve(session: Session, key: str, kinds: tuple[ProblemKind, ...], now: datetime | None = None) -> None:
    """Open problems of these kinds on ``key`` are gone."""
    session.execute(update(Problem).where(Problem.key == key, Problem.kind.in_([str(k) for k in kinds]),
                                          Problem.resolved_at.is_(None)).values(resolved_at=now or utcnow()))


def resolve_attempt(session: Session, attempt_id: int, keep: set[tuple[str, str]], now: datetime | None = None) -> None:
    """An attempt's open problems other than ``keep`` ((kind, key) pairs) are gone."""
    rows = session.execute(select(Problem.id, Problem.kind, Problem.key)
                           .where(Problem.attempt_id == attempt_id, Problem.resolved_at.is_(None))).all()
    gone = [pid for pid, kind, key in rows if (kind, key) not in keep and kind not in MANIFEST_KINDS]
    if gone:
        session.execute(update(Problem).where(Problem.id.in_(gone)).values(resolved_at=now or utcnow()))


def open_problems(session: Session, centre: str | None = None) -> list[Problem]:
    query = select(Problem).where(Problem.resolved_at.is_(None)).order_by(Problem.centre_id, Problem.key)
    if centre is not None:
        query = query.where(Problem.centre_id == centre)
    return list(session.scalars(query))
