"""Sittings: create and edit one, with the order of its times checked and the time lock.

A sitting's settings arrive as a :class:`SittingSpec`. :func:`problems` checks it alone (pure);
:func:`locked_changes` says which changes the time lock refuses: once the waiting room has opened,
nothing that changes a candidate's time may change (the start, the entry cutoff, the lot deadline,
the waiting room's opening, durations, timing mode, interruption policy, early finish, the paper and
the kind); the name may. Both :func:`create` and :func:`update` append a ``sitting_created`` /
``sitting_changed`` event to the audit log.
"""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.errors import Conflict, EdgeError, NotFound
from edge_server.models import Paper, Sitting, SittingKind, TimingMode
from edge_server.services import audit

# Fields that only the name may escape once the waiting room is open.
TIME_FIELDS = ("kind", "paper_id", "timing_mode", "waiting_opens_at", "starts_at", "entry_closes_at",
               "lot_deadline_at", "question_seconds", "total_seconds", "early_finish_allowed",
               "max_interruptions", "max_gap_seconds")
MAX_SECONDS = 6 * 3600


@dataclass(frozen=True)
class SittingSpec:
    name: str
    kind: SittingKind
    paper_id: int
    timing_mode: TimingMode
    waiting_opens_at: datetime
    starts_at: datetime
    entry_closes_at: datetime
    lot_deadline_at: datetime
    question_seconds: int | None
    total_seconds: int | None
    early_finish_allowed: bool
    max_interruptions: int
    max_gap_seconds: int
    mock_required: bool

    @classmethod
    def of(cls, sitting: Sitting) -> "SittingSpec":
        return cls(**{f.name: getattr(sitting, f.name) for f in fields(cls)})


class SittingLocked(Conflict):
    code = "sitting_locked"


def problems(spec: SittingSpec) -> dict[str, str]:
    """``{field: message}`` for every setting that cannot be used (empty: the spec is fine)."""
    found: dict[str, str] = {}
    if not spec.name.strip():
        found["name"] = "请填写名称 · Enter a name"
    if not spec.waiting_opens_at < spec.starts_at:
        found["waiting_opens_at"] = "候考室须在开考前开放 · The waiting room must open before the start"
    if not spec.waiting_opens_at <= spec.lot_deadline_at <= spec.starts_at:
        found["lot_deadline_at"] = ("抽签截止须在候考室开放与开考之间 · "
                                    "The lot deadline must lie between the waiting room opening and the start")
    if not spec.starts_at < spec.entry_closes_at:
        found["entry_closes_at"] = "入场截止须晚于开考 · The entry cutoff must be after the start"
    if spec.timing_mode == TimingMode.WHOLE_SESSION:
        if spec.total_seconds is None or not 0 < spec.total_seconds <= MAX_SECONDS:
            found["total_seconds"] = (f"整场计时须填写 1–{MAX_SECONDS} 秒 · "
                                      f"Whole-session timing needs a total of 1–{MAX_SECONDS} seconds")
    else:
        if spec.question_seconds is not None and not 0 < spec.question_seconds <= MAX_SECONDS:
            found["question_seconds"] = (f"每题时长须为 1–{MAX_SECONDS} 秒 · "
                                         f"Each question must last 1–{MAX_SECONDS} seconds")
    if spec.max_interruptions < 0:
        found["max_interruptions"] = "中断次数不能为负 · Interruptions cannot be negative"
    if not 0 < spec.max_gap_seconds <= 3600:
        found["max_gap_seconds"] = "中断时长须为 1–3600 秒 · An interruption may last 1–3600 seconds"
    if spec.kind == SittingKind.MOCK and spec.mock_required:
        found["mock_required"] = "模拟场次不能要求先完成模拟 · A mock sitting cannot require a mock"
    return found


def changes(sitting: Sitting, spec: SittingSpec) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` of what ``spec`` would change, as JSON-friendly values."""
    before, after = asdict(SittingSpec.of(sitting)), asdict(spec)
    return {k: [_plain(before[k]), _plain(after[k])] for k in after if before[k] != after[k]}


def is_locked(sitting: Sitting, now: datetime) -> bool:
    return now >= sitting.waiting_opens_at


def locked_changes(sitting: Sitting, spec: SittingSpec, now: datetime) -> list[str]:
    """The fields the time lock refuses to change (empty before the waiting room opens)."""
    if not is_locked(sitting, now):
        return []
    return [k for k in changes(sitting, spec) if k in TIME_FIELDS]


def list_sittings(session: Session, centre_id: str) -> list[Sitting]:
    return list(session.scalars(select(Sitting).where(Sitting.centre_id == centre_id).order_by(Sitting.starts_at)))


def get_sitting(session: Session, centre_id: str, sitting_id: str) -> Sitting:
    sitting = session.get(Sitting, sitting_id)
    if sitting is None or sitting.centre_id != centre_id:
        raise NotFound("no such sitting", code="sitting_unknown")
    return sitting


def _check(session: Session, spec: SittingSpec) -> None:
    found = problems(spec)
    if found:
        raise EdgeError("; ".join(found.values()), code="bad_sitting")
    if session.get(Paper, spec.paper_id) is None:
        raise EdgeError("no such paper", code="paper_unknown")


def create(session: Session, centre_id: str, spec: SittingSpec, *, by: str) -> Sitting:
    """A new sitting; with ``spec.paper_id`` 0 it gets an empty paper until its sealed one is imported
    (``services.papers``: a paper is sealed for one sitting, so it cannot be picked from another)."""
    if not spec.paper_id:
        placeholder = Paper(title="", instructions="", question_seconds=[])
        session.add(placeholder)
        session.flush()
        spec = replace(spec, paper_id=placeholder.id)
    _check(session, spec)
    sitting = Sitting(id=f"{centre_id}-{secrets.token_hex(4)}", centre_id=centre_id, **asdict(spec))
    session.add(sitting)
    session.flush()
    audit.append(session, kind="sitting_created", station_id=None, attempt_id=None, source="staff",
                 payload={"sitting": sitting.id, "by": by, "settings": {k: _plain(v) for k, v in asdict(spec).items()}})
    return sitting


def update(session: Session, sitting: Sitting, spec: SittingSpec, *, by: str, now: datetime) -> dict[str, list[Any]]:
    """Apply ``spec``; SittingLocked names what the time lock refuses (nothing is changed then)."""
    refused = locked_changes(sitting, spec, now)
    if refused:
        raise SittingLocked(
            "候考室已开放，影响考生时间的设置已锁定，只能修改名称 · The waiting room is open: settings that change a "
            f"candidate's time are locked, only the name may change (refused: {', '.join(refused)})")
    _check(session, spec)
    changed = changes(sitting, spec)
    for key in changed:
        setattr(sitting, key, getattr(spec, key))
    if changed:
        audit.append(session, kind="sitting_changed", station_id=None, attempt_id=None, source="staff",
                     payload={"sitting": sitting.id, "by": by, "changes": changed})
    return changed


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, (SittingKind, TimingMode)) else value
