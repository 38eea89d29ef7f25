"""The regional admin's exports of a sitting: the markers' package (a streamed ZIP) and the results.

The package holds, per lot, the per-question files of every camera as central storage has them
(``lot-007/main_q1.mp4``) and a lot manifest for the markers (questions, checksums, flags: no
name, ticket number, station or message); at the top the sitting manifest, ``flags.csv`` and, last,
``manifest.json`` listing every file of the package with the SHA-256 and size computed while it
was streamed, beside the SHA-256 the edge's manifest promised. A listed file that central storage
does not have is left out and named under ``missing``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from examkiosk_wire.central import AttemptManifest
from region_server.errors import StoreError
from region_server.marking import tables
from region_server.marking.access import lots_of
from region_server.marking.models import Score
from region_server.marking.zipstream import Member, Written, stream_zip
from region_server.models import LotTicket, Sitting, User
from region_server.review import timeline
from region_server.review.models import DECISION_LABELS, FlagDecision
from region_server.store import CentralStore

PACKAGE_FORMAT = "examkiosk-markers-package/1"
LOT_FORMAT = "examkiosk-markers-lot/1"


@dataclass
class PackagePlan:
    """What the package will hold, decided before the first byte is sent (plain values: the stream
    outlives the request's database session)."""

    centre: str
    sitting: str
    members: list[Member] = field(default_factory=list)
    expected: dict[str, str] = field(default_factory=dict)  # path -> SHA-256 from the edge's manifest
    missing: list[dict[str, Any]] = field(default_factory=list)
    lots: list[int] = field(default_factory=list)


def _json_member(path: str, document: dict[str, Any]) -> Member:
    data = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True).encode()
    return Member(path, lambda: [data], compress=True)


def _lot_document(sitting: Sitting, lot: int, manifest: AttemptManifest) -> dict[str, Any]:
    """The lot as the markers get it: the questions' files and the flags, nothing that names anyone."""
    views = timeline.questions(manifest)
    files = []
    for q in manifest.questions:
        if q.question is None:
            continue
        files.append({"file": q.key.rsplit("/", 1)[-1], "camera": q.camera, "question": q.question,
                      "sha256": q.sha256, "size": q.size, "duration": q.duration, "offset": q.offset,
                      "complete": q.complete})
    flags = [{"kind": m.kind, "label": m.label, "question": v.number, "at": m.at, "end": m.end}
             for v in views for m in v.marks]
    return {"format": LOT_FORMAT, "centre": sitting.centre_id, "sitting": sitting.sitting, "lot": lot,
            "files": files, "flags": flags}


def flag_rows(session: Session, sitting: Sitting) -> list[tables.FlagRow]:
    rows = []
    for lot, attempt in lots_of(session, sitting.id).items():
        manifest = AttemptManifest.model_validate(attempt.manifest)
        decided = {d.flag_key: d for d in session.scalars(select(FlagDecision)
                                                          .where(FlagDecision.attempt_id == attempt.id))}
        placed = set()
        for view in timeline.questions(manifest):
            for mark in view.marks:
                placed.add(mark.key)
                rows.append(_flag_row(lot, view.number, mark.key, manifest, decided, mark.at, mark.end))
        for flag in manifest.flags:
            key = timeline.flag_key(flag)
            if key not in placed:
                rows.append(_flag_row(lot, None, key, manifest, decided, None, None))
    return rows


def _flag_row(lot: int, question: int | None, key: str, manifest: AttemptManifest,
              decided: dict[str, FlagDecision], at: float | None, end: float | None) -> tables.FlagRow:
    flag = next(f for f in manifest.flags if timeline.flag_key(f) == key)
    decision = decided.get(key)
    return tables.FlagRow(lot=lot, question=question, kind=flag.kind, label=timeline.flag_label(flag.kind), at=at,
                          end=end, started_at=flag.started_at, ended_at=flag.ended_at,
                          decision=DECISION_LABELS[decision.decision] if decision else "")


def plan_package(session: Session, store: CentralStore, sitting: Sitting) -> PackagePlan:
    """Every member of the package; each question file is HEADed first so a missing one is left out."""
    plan = PackagePlan(sitting.centre_id, sitting.sitting)
    if sitting.manifest_key:
        try:
            data = store.get(sitting.manifest_key)
            plan.members.append(Member("sitting.json", lambda data=data: [data], compress=True))
        except StoreError as exc:
            plan.missing.append({"path": "sitting.json", "key": sitting.manifest_key, "reason": str(exc)})
    for lot, attempt in lots_of(session, sitting.id).items():
        manifest = AttemptManifest.model_validate(attempt.manifest)
        folder = f"lot-{lot:03d}"
        plan.lots.append(lot)
        for q in sorted((q for q in manifest.questions if q.question is not None), key=lambda q: (q.question,
                                                                                                      q.camera)):
            path = f"{folder}/{q.key.rsplit('/', 1)[-1]}"
            try:
                present = store.head(q.key) is not None
            except StoreError:
                present = False
            if not present:
                plan.missing.append({"path": path, "key": q.key, "reason": "not in central storage"})
                continue
            plan.expected[path] = q.sha256
            plan.members.append(Member(path, lambda key=q.key: store.iter_chunks(key)))
        plan.members.append(_json_member(f"{folder}/manifest.json", _lot_document(sitting, lot, manifest)))
    flags = tables.flags_csv(flag_rows(session, sitting)).encode()
    plan.members.append(Member("flags.csv", lambda: [flags], compress=True))
    return plan


def stream_package(plan: PackagePlan, now: datetime | None = None) -> Iterator[bytes]:
    """The ZIP of ``plan``, ending with ``manifest.json`` of what was written."""
    now = now or datetime.now(timezone.utc)
    written: list[Written] = []

    def members() -> Iterator[Member]:
        yield from plan.members
        document = {
            "format": PACKAGE_FORMAT, "centre": plan.centre, "sitting": plan.sitting,
            "generated_at": now.isoformat(timespec="seconds"), "lots": plan.lots, "missing": plan.missing,
            "files": [{"path": w.path, "size": w.size, "sha256": w.sha256,
                       "expected_sha256": plan.expected.get(w.path),
                       "matches": None if w.path not in plan.expected else plan.expected[w.path] == w.sha256}
                      for w in written],
        }
        yield _json_member("manifest.json", document)

    yield from stream_zip(members(), written, now=now)


def result_rows(session: Session, sitting: Sitting) -> list[tables.ResultRow]:
    """Every lot and question of the sitting with the ticket number and every marker's score."""
    tickets = {t.lot: t.ticket_no for t in session.scalars(select(LotTicket).where(LotTicket.sitting_id == sitting.id))}
    lots = lots_of(session, sitting.id)
    ids = [a.id for a in lots.values()]
    scores: dict[tuple[int, int], list[Score]] = {}
    if ids:
        for score in session.scalars(select(Score).where(Score.attempt_id.in_(ids)).order_by(Score.marker_id)):
            scores.setdefault((score.attempt_id, score.question), []).append(score)
    names = {u.id: u.username for u in session.scalars(select(User))}
    rows = []
    for lot, attempt in lots.items():
        numbers = sorted({q["question"] for q in attempt.manifest.get("questions", []) if q.get("question") is not None})
        numbers = sorted(set(numbers) | {q for (aid, q) in scores if aid == attempt.id})
        for number in numbers:
            base = {"centre": sitting.centre_id, "sitting": sitting.sitting, "lot": lot,
                    "ticket_no": tickets.get(lot, ""), "question": number}
            found = scores.get((attempt.id, number), [])
            if not found:
                rows.append(tables.ResultRow(**base))
            rows += [tables.ResultRow(**base, marker=names.get(s.marker_id, ""), score=s.value, note=s.note,
                                      scored_at=s.updated_at) for s in found]
    return rows
