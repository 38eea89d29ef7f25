"""The CSV tables of the exports (pure: rows in, UTF-8 text with a BOM out, as the edge's CSVs).

- ``results_csv``: lot -> ticket number with every marker's score per question (regional admin only);
  a lot and question nobody has scored yet is a row with an empty score.
- ``flags_csv``: every flag of every lot, where it is in the question's file, and its decision.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

BOM = "\ufeff"


@dataclass(frozen=True)
class ResultRow:
    centre: str
    sitting: str
    lot: int
    ticket_no: str
    question: int
    marker: str = ""
    score: float | None = None
    note: str = ""
    scored_at: datetime | None = None


@dataclass(frozen=True)
class FlagRow:
    lot: int
    question: int | None
    kind: str
    label: str
    at: float | None  # seconds into the question's file
    end: float | None
    started_at: float | None  # server time
    ended_at: float | None
    decision: str = ""


RESULT_HEADER = ["centre", "sitting", "lot", "ticket_no", "question", "marker", "score", "note", "scored_at"]
FLAG_HEADER = ["lot", "question", "kind", "label", "at_seconds", "end_seconds", "started_at", "ended_at", "decision"]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return BOM + out.getvalue()


def results_csv(rows: Iterable[ResultRow]) -> str:
    return _table(RESULT_HEADER, ([r.centre, r.sitting, str(r.lot), r.ticket_no, str(r.question), r.marker,
                                   _number(r.score), r.note, r.scored_at.isoformat() if r.scored_at else ""]
                                  for r in rows))


def flags_csv(rows: Iterable[FlagRow]) -> str:
    return _table(FLAG_HEADER, ([str(r.lot), "" if r.question is None else str(r.question), r.kind, r.label,
                                 _number(r.at), _number(r.end), _number(r.started_at), _number(r.ended_at),
                                 r.decision] for r in rows))
