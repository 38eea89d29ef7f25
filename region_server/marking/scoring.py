"""Scales, assignments and scores: each change saved with its audit row in the same transaction.

A score must lie on the sitting's scale (``min..max`` in ``step``s) and name a question the lot's
manifest has; anything else is refused with a message that says why, and nothing is changed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from region_server import audit
from region_server.marking.models import DEFAULT_MAX, DEFAULT_MIN, DEFAULT_STEP, Assignment, Scale, Score
from region_server.models import Attempt, Role, Sitting, User, utcnow

NOTE_LIMIT = 4000
MAX_STEPS = 10_000


class ScoringError(ValueError):
    """A change that is refused; the message is shown to the person (Chinese first)."""


@dataclass(frozen=True)
class ScaleView:
    min_score: float
    max_score: float
    step: float

    def check(self, value: float) -> float:
        if not math.isfinite(value) or not self.min_score <= value <= self.max_score:
            raise ScoringError(f"分数须在 {fmt(self.min_score)}–{fmt(self.max_score)} 之间 "
                               f"The score must be between {fmt(self.min_score)} and {fmt(self.max_score)}")
        steps = (value - self.min_score) / self.step
        if abs(steps - round(steps)) > 1e-6:
            raise ScoringError(f"分数步长为 {fmt(self.step)} The score goes in steps of {fmt(self.step)}")
        return round(self.min_score + round(steps) * self.step, 6)


def fmt(value: float) -> str:
    return f"{value:g}"


def scale_of(session: Session, sitting_id: int) -> ScaleView:
    row = session.get(Scale, sitting_id)
    if row is None:
        return ScaleView(DEFAULT_MIN, DEFAULT_MAX, DEFAULT_STEP)
    return ScaleView(row.min_score, row.max_score, row.step)


def set_scale(session: Session, sitting: Sitting, min_score: float, max_score: float, step: float, *,
              by: str) -> ScaleView:
    values = (min_score, max_score, step)
    if not all(math.isfinite(v) for v in values) or step <= 0 or max_score <= min_score:
        raise ScoringError("最高分须大于最低分，步长须大于 0 The maximum must be above the minimum and the step above 0")
    if (max_score - min_score) / step > MAX_STEPS:
        raise ScoringError(f"刻度太细 The scale has more than {MAX_STEPS} steps")
    before = scale_of(session, sitting.id)
    row = session.get(Scale, sitting.id)
    if row is None:
        row = Scale(sitting_id=sitting.id, set_by=by)
        session.add(row)
    row.min_score, row.max_score, row.step, row.set_by, row.set_at = min_score, max_score, step, by, utcnow()
    session.flush()
    audit.record(session, actor=by, action="scale.set", subject=f"sitting {sitting.centre_id}/{sitting.sitting}",
                 payload={"sitting": sitting.id, "min": min_score, "max": max_score, "step": step,
                          "before": [before.min_score, before.max_score, before.step]})
    return scale_of(session, sitting.id)


def assign(session: Session, sitting: Sitting, marker: User, *, by: str) -> Assignment:
    if Role(marker.role) != Role.MARKER:
        raise ScoringError(f"{marker.username} 不是评分员 is not a marker")
    row = session.scalar(select(Assignment).where(Assignment.user_id == marker.id,
                                                  Assignment.sitting_id == sitting.id))
    if row is not None:
        return row
    row = Assignment(user_id=marker.id, sitting_id=sitting.id, assigned_by=by)
    session.add(row)
    session.flush()
    audit.record(session, actor=by, action="assignment.added", subject=f"sitting {sitting.centre_id}/{sitting.sitting}",
                 payload={"sitting": sitting.id, "marker": marker.username})
    return row


def unassign(session: Session, sitting: Sitting, marker: User, *, by: str) -> bool:
    row = session.scalar(select(Assignment).where(Assignment.user_id == marker.id,
                                                  Assignment.sitting_id == sitting.id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    audit.record(session, actor=by, action="assignment.removed",
                 subject=f"sitting {sitting.centre_id}/{sitting.sitting}",
                 payload={"sitting": sitting.id, "marker": marker.username})
    return True


def parse_score(text: str) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        raise ScoringError(f"分数不是数字 The score {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ScoringError(f"分数不是数字 The score {text!r} is not a number")
    return value


def question_numbers(attempt: Attempt) -> list[int]:
    return sorted({q["question"] for q in attempt.manifest.get("questions", []) if q.get("question") is not None})


def save_score(session: Session, attempt: Attempt, question: int, marker: User, value: float, note: str) -> Score:
    """``marker``'s score of ``question`` of the lot ``attempt``; audited when it changes."""
    if question not in question_numbers(attempt):
        raise ScoringError(f"这一签没有第{question}题 This lot has no question {question}")
    value = scale_of(session, attempt.sitting_id).check(value)
    note = (note or "").strip()
    if len(note) > NOTE_LIMIT:
        raise ScoringError(f"备注超过 {NOTE_LIMIT} 字 The note is longer than {NOTE_LIMIT} characters")
    row = session.scalar(select(Score).where(Score.attempt_id == attempt.id, Score.question == question,
                                             Score.marker_id == marker.id))
    before = None if row is None else {"value": row.value, "note": row.note}
    if before == {"value": value, "note": note}:
        return row  # type: ignore[return-value]
    if row is None:
        row = Score(attempt_id=attempt.id, question=question, marker_id=marker.id, value=value, note=note)
        session.add(row)
    row.value, row.note, row.updated_at = value, note, utcnow()
    session.flush()
    audit.record(session, actor=marker.username, action="score.saved",
                 subject=f"sitting {attempt.sitting_id} lot {attempt.lot} question {question}",
                 payload={"attempt": attempt.id, "sitting": attempt.sitting_id, "lot": attempt.lot,
                          "question": question, "value": value, "note": note, "before": before})
    return row


def scores_of(session: Session, attempt_ids: list[int], marker: User | None = None) -> list[Score]:
    if not attempt_ids:
        return []
    query = select(Score).where(Score.attempt_id.in_(attempt_ids)).order_by(Score.attempt_id, Score.question,
                                                                            Score.marker_id)
    if marker is not None:
        query = query.where(Score.marker_id == marker.id)
    return list(session.scalars(query))
