"""The markers' tables: who marks which sitting, the sitting's score scale, and the scores.

Rows point at the indexer's ``sitting`` and ``attempt`` rows (an attempt is a lot of a sitting);
none of them holds a name, a ticket number or an ID number.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from region_server.models import Base, utcnow

DEFAULT_MIN, DEFAULT_MAX, DEFAULT_STEP = 0.0, 10.0, 1.0


class Assignment(Base):
    """A marker may see and score the lots of this sitting."""

    __tablename__ = "marking_assignment"
    __table_args__ = (UniqueConstraint("user_id", "sitting_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("region_user.id", ondelete="CASCADE"), index=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sitting.id", ondelete="CASCADE"), index=True)
    assigned_by: Mapped[str] = mapped_column(String(80))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


class Scale(Base):
    """The score scale of a sitting, set by the regional admin (default 0-10 in steps of 1)."""

    __tablename__ = "marking_scale"
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sitting.id", ondelete="CASCADE"), primary_key=True)
    min_score: Mapped[float] = mapped_column(Float, default=DEFAULT_MIN)
    max_score: Mapped[float] = mapped_column(Float, default=DEFAULT_MAX)
    step: Mapped[float] = mapped_column(Float, default=DEFAULT_STEP)
    set_by: Mapped[str] = mapped_column(String(80))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


class Score(Base):
    """One marker's score of one question of one lot, with an optional note."""

    __tablename__ = "marking_score"
    __table_args__ = (UniqueConstraint("attempt_id", "question", "marker_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempt.id", ondelete="CASCADE"), index=True)
    question: Mapped[int] = mapped_column(Integer)
    marker_id: Mapped[int] = mapped_column(ForeignKey("region_user.id"), index=True)
    value: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
