"""What the regional pages and their CSV exports show, computed from the index (queries + plain rows).

Every function returns plain dicts (one per table row), so a page and its CSV export show the same.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from examkiosk_wire.central import attempt_prefix
from region_server.models import Attempt, Centre, ObjectCheck, Problem, Sitting, StoredObject, Verification

STATUSES = tuple(str(v) for v in Verification)


def _iso(value) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _open_problem_counts(session: Session) -> tuple[Counter, Counter]:
    by_centre: Counter = Counter()
    by_attempt: Counter = Counter()
    for centre, attempt_id, n in session.execute(
            select(Problem.centre_id, Problem.attempt_id, func.count()).where(Problem.resolved_at.is_(None))
            .group_by(Problem.centre_id, Problem.attempt_id)):
        by_centre[centre] += n
        if attempt_id is not None:
            by_attempt[attempt_id] += n
    return by_centre, by_attempt


def _verification_counts(session: Session, column) -> dict[Any, Counter]:
    counts: dict[Any, Counter] = defaultdict(Counter)
    for key, status, n in session.execute(select(column, Attempt.verification, func.count())
                                          .group_by(column, Attempt.verification)):
        counts[key][str(status)] += n
    return counts


def centre_rows(session: Session, centre: str | None = None) -> list[dict[str, Any]]:
    """Per centre: when its newest manifest landed, attempts by verification, open problems."""
    problems, _ = _open_problem_counts(session)
    counts = _verification_counts(session, Attempt.centre_id)
    sittings = dict(session.execute(select(Sitting.centre_id, func.count()).group_by(Sitting.centre_id)).all())
    query = select(Centre).order_by(Centre.id)
    if centre:
        query = query.where(Centre.id == centre)
    rows = []
    for c in session.scalars(query):
        n = counts.get(c.id, Counter())
        rows.append({"centre": c.id, "last_manifest_at": _iso(c.last_manifest_at),
                     "last_indexed_at": _iso(c.last_indexed_at), "sittings": sittings.get(c.id, 0),
                     "attempts": sum(n.values()), "verified": n["verified"], "present": n["present"],
                     "pending": n["pending"], "damaged": n["damaged"], "problems": problems.get(c.id, 0)})
    return rows


def sitting_rows(session: Session, centre: str | None = None, sitting: str | None = None) -> list[dict[str, Any]]:
    """Per sitting: lots expected, started, finished, complete at the edge, and centrally: indexed,
    verified, damaged, and lots the edge says it synced of which central storage has no manifest."""
    counts = _verification_counts(session, Attempt.sitting_id)
    indexed = defaultdict(set)
    for sitting_id, attempt in session.execute(select(Attempt.sitting_id, Attempt.attempt)):
        indexed[sitting_id].add(attempt)
    query = select(Sitting).order_by(Sitting.centre_id, Sitting.sitting)
    if centre:
        query = query.where(Sitting.centre_id == centre)
    if sitting:
        query = query.where(Sitting.sitting == sitting)
    rows = []
    for s in session.scalars(query):
        lots = s.lots or []
        n = counts.get(s.id, Counter())
        not_central = [lot for lot in lots if lot.get("synced") and lot.get("attempt")
                       and lot["attempt"] not in indexed[s.id]]
        rows.append({
            "id": s.id, "centre": s.centre_id, "sitting": s.sitting, "name": s.name, "kind": s.kind,
            "expected": s.expected, "absent": s.absent, "lots": len(lots),
            "started": sum(1 for lot in lots if lot.get("started")),
            "finished": sum(1 for lot in lots if lot.get("finished")),
            "ended_early": sum(1 for lot in lots if lot.get("ended_early")),
            "complete_at_edge": sum(1 for lot in lots if lot.get("complete_at_edge")),
            "synced_by_edge": sum(1 for lot in lots if lot.get("synced")),
            "central": sum(n.values()), "verified": n["verified"], "damaged": n["damaged"],
            "unchecked": n["pending"] + n["present"], "missing_in_central": len(not_central),
            "has_manifest": s.manifest_key is not None,
        })
    return rows


def lot_rows(session: Session, sitting: Sitting) -> list[dict[str, Any]]:
    """Per lot of a sitting (from its sitting.json) and per attempt indexed for it: how far it got
    at the edge, and what central verification found (with what is wrong, and where)."""
    attempts = list(session.scalars(select(Attempt).where(Attempt.sitting_id == sitting.id)))
    by_attempt = {a.attempt: a for a in attempts}
    _, problems = _open_problem_counts(session)
    wrong = _wrong_objects(session, [a.id for a in attempts])
    rows, seen = [], set()
    for lot in sorted(sitting.lots or [], key=lambda lot: lot.get("lot", 0)):
        attempt = by_attempt.get(lot.get("attempt") or "")
        if attempt is not None:
            seen.add(attempt.id)
        rows.append(_lot_row(sitting, lot, attempt, problems, wrong))
    for attempt in sorted(attempts, key=lambda a: (a.lot is None, a.lot or 0, a.attempt)):
        if attempt.id not in seen:
            rows.append(_lot_row(sitting, {"lot": attempt.lot, "attempt": attempt.attempt}, attempt, problems, wrong))
    return rows


def _lot_row(sitting: Sitting, lot: dict, attempt: Attempt | None, problems: Counter,
             wrong: dict[int, list[str]]) -> dict[str, Any]:
    where = attempt.prefix if attempt is not None else (
        attempt_prefix(sitting.centre_id, sitting.sitting, lot.get("lot"), lot["attempt"]) if lot.get("attempt")
        else "")
    if attempt is None:
        central = "missing" if lot.get("synced") else "not_synced"
    else:
        central = str(attempt.verification)
    return {"lot": lot.get("lot"), "attempt": lot.get("attempt") or "", "attempt_row": attempt.id if attempt else None,
            "started": bool(lot.get("started")), "finished": bool(lot.get("finished")),
            "ended_early": bool(lot.get("ended_early")), "end_reason": lot.get("end_reason") or "",
            "complete_at_edge": bool(lot.get("complete_at_edge")), "synced_by_edge": bool(lot.get("synced")),
            "central": central, "chain": str(attempt.chain_verdict) if attempt else "",
            "problems": problems.get(attempt.id, 0) if attempt else 0,
            "wrong": "; ".join(wrong.get(attempt.id, [])) if attempt else "", "where": where}


def _wrong_objects(session: Session, attempt_ids: list[int]) -> dict[int, list[str]]:
    """Per attempt: "<check> <key>" of every object that is not OK."""
    found: dict[int, list[str]] = defaultdict(list)
    if not attempt_ids:
        return found
    for attempt_id, key, check in session.execute(
            select(StoredObject.attempt_id, StoredObject.key, StoredObject.check)
            .where(StoredObject.attempt_id.in_(attempt_ids),
                   StoredObject.check.notin_([str(ObjectCheck.OK), str(ObjectCheck.UNCHECKED)]))
            .order_by(StoredObject.key)):
        found[attempt_id].append(f"{check} {key}")
    return found


def attempt_rows(session: Session, centre: str | None = None, sitting: str | None = None,
                 status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Attempts (newest manifest first), filtered by centre, sitting id and verification status."""
    query = select(Attempt, Sitting.sitting).join(Sitting, Sitting.id == Attempt.sitting_id)
    if centre:
        query = query.where(Attempt.centre_id == centre)
    if sitting:
        query = query.where(Sitting.sitting == sitting)
    if status:
        query = query.where(Attempt.verification == status)
    query = query.order_by(Attempt.manifest_modified_at.desc(), Attempt.id.desc()).limit(limit)
    _, problems = _open_problem_counts(session)
    rows = []
    for attempt, sitting_name in session.execute(query):
        manifest = attempt.manifest or {}
        rows.append({"id": attempt.id, "centre": attempt.centre_id, "sitting": sitting_name, "lot": attempt.lot,
                     "attempt": attempt.attempt, "prefix": attempt.prefix, "end_reason": attempt.end_reason or "",
                     "finished_at": attempt.finished_at or "", "manifest_at": _iso(attempt.manifest_modified_at),
                     "flags": len(manifest.get("flags") or []), "verification": str(attempt.verification),
                     "chain": str(attempt.chain_verdict), "problems": problems.get(attempt.id, 0),
                     "checked_at": _iso(attempt.checked_at), "hashed_at": _iso(attempt.hashed_at)})
    return rows


def object_rows(attempt: Attempt) -> list[dict[str, Any]]:
    return [{"key": o.key, "kind": str(o.kind), "camera": o.camera or "", "question": o.question,
             "seq": o.seq, "expected_size": o.expected_size, "found_size": o.found_size,
             "expected_sha256": o.expected_sha256 or "", "found_sha256": o.found_sha256 or "",
             "check": str(o.check), "checked_at": _iso(o.checked_at), "hashed_at": _iso(o.hashed_at),
             "detail": o.detail, "id": o.id} for o in attempt.objects]


def problem_rows(session: Session, centre: str | None = None, kind: str | None = None,
                 include_resolved: bool = False) -> list[dict[str, Any]]:
    query = select(Problem).order_by(Problem.centre_id, Problem.key, Problem.kind)
    if not include_resolved:
        query = query.where(Problem.resolved_at.is_(None))
    if centre:
        query = query.where(Problem.centre_id == centre)
    if kind:
        query = query.where(Problem.kind == kind)
    return [{"id": p.id, "centre": p.centre_id or "", "kind": str(p.kind), "key": p.key, "message": p.message,
             "attempt_row": p.attempt_id, "first_seen_at": _iso(p.first_seen_at), "last_seen_at": _iso(p.last_seen_at),
             "resolved_at": _iso(p.resolved_at)} for p in session.scalars(query)]


def timeline(attempt: Attempt) -> list[dict[str, Any]]:
    """Messages, flags and face-login tries of an attempt, in time order (server time where known)."""
    manifest = attempt.manifest or {}
    start = manifest.get("started_at")
    events = []
    for flag in manifest.get("flags") or []:
        at = flag.get("started_at")
        events.append({"at": at, "when": _offset(at, start), "what": "flag", "text": flag.get("kind", ""),
                       "detail": flag.get("reason") or ""})
    for message in manifest.get("messages") or []:
        events.append({"at": message.get("at"), "when": str(message.get("at") or ""), "what": "message",
                       "text": str(message.get("text") or message.get("body") or ""),
                       "detail": str(message.get("from") or message.get("sender") or "")})
    for face_try in (manifest.get("face_login") or {}).get("tries") or []:
        outcome = "matched" if face_try.get("matched") else "not matched"
        events.append({"at": face_try.get("at"), "when": str(face_try.get("at") or ""), "what": "face_try",
                       "text": f"try {face_try.get('try')}: {outcome}",
                       "detail": f"distance {face_try.get('distance')}"})
    return sorted(events, key=lambda e: _sort_key(e["at"]))


def _offset(at, start) -> str:
    if isinstance(at, (int, float)) and isinstance(start, (int, float)):
        seconds = max(0, int(at - start))
        return f"+{seconds // 60:02d}:{seconds % 60:02d}"
    return str(at or "")


def _sort_key(at) -> float:
    """Seconds since the epoch of a server time (float) or an ISO time; unknown times last."""
    if isinstance(at, (int, float)):
        return float(at)
    try:
        return datetime.fromisoformat(str(at)).timestamp()
    except ValueError:
        return float("inf")
