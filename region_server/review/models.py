"""A reviewer's decision about one monitoring flag of an attempt."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from region_server.models import Base, utcnow


class Decision(enum.StrEnum):
    NO_ISSUE = "no_issue"
    NEEDS_DECISION = "needs_decision"


DECISION_LABELS = {Decision.NO_ISSUE: "无问题 no issue", Decision.NEEDS_DECISION: "需裁定 needs a decision"}


class FlagDecision(Base):
    """The decision on flag ``flag_key`` (see ``timeline.flag_key``) of an attempt; the latest one counts."""

    __tablename__ = "flag_decision"
    __table_args__ = (UniqueConstraint("attempt_id", "flag_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempt.id", ondelete="CASCADE"), index=True)
    flag_key: Mapped[str] = mapped_column(String(128))
    decision: Mapped[Decision] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(80))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
