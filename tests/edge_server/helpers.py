"""Test data for the edge server, in the spirit of CTFd's ``tests/helpers.py`` ``gen_*`` functions.

Every helper takes a SQLAlchemy session, adds and flushes; the caller commits. Times are
relative to ``now`` (default: the real clock), so a test chooses "started a minute ago" or
"starts in an hour" without sleeping.
"""
from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from edge_server.models import Attempt, Candidate, Centre, Paper, Sitting, SittingKind, Station, TimingMode
from edge_server.services.paper_format import PaperContent, PaperQuestion
from edge_server.services.papers import sealed_paper
from edge_server.services.stations import create_station

_counter = itertools.count(1)

QUESTIONS = ["Describe a time you solved a hard problem.", "Why do you want this position?"]


def _seconds(value: float | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def fake_descriptor(seed: int = 0) -> list[float]:
    """A 128-float face descriptor, as the edge stores it after enrolment."""
    rng = random.Random(seed)
    return [round(rng.uniform(-0.25, 0.25), 6) for _ in range(128)]


def make_centre(session: Session, centre_id: str = "c1", name: str | None = None) -> Centre:
    centre = session.get(Centre, centre_id)
    if centre is None:
        centre = Centre(id=centre_id, name=name or f"Centre {centre_id}")
        session.add(centre)
        session.flush()
    return centre


def make_station(session: Session, centre_id: str = "c1", station_id: str | None = None, *, seat: str = "",
                 token: str | None = None, revoked: bool = False) -> tuple[Station, str]:
    """A station and its plain bearer token."""
    make_centre(session, centre_id)
    station, token = create_station(session, station_id or f"st-{next(_counter):02d}", centre_id, seat=seat,
                                    token=token)
    if revoked:
        station.revoked_at = utcnow()
        session.flush()
    return station, token


def make_paper(session: Session, sitting_id: str, *, questions: list[str] | None = None, seconds: int = 120,
               title: str = "Structured interview") -> Paper:
    """A paper sealed for ``sitting_id`` with the wrapping key of the current app's data directory."""
    from flask import current_app

    from edge_server.auth import settings

    content = PaperContent(title=title, instructions="Answer each question, then say you are done.",
                           questions=tuple(PaperQuestion(position=i + 1, text=text, seconds=seconds)
                                           for i, text in enumerate(questions or QUESTIONS)))
    paper = sealed_paper(settings(current_app).data_dir, sitting_id, content, source_name="paper.yaml",
                         by="test", now=utcnow())
    session.add(paper)
    session.flush()
    return paper


def make_sitting(session: Session, centre_id: str = "c1", sitting_id: str | None = None, *,
                 now: datetime | None = None, starts_in: float | timedelta = 3600,
                 waiting_opens_before: float | timedelta = 1800, entry_closes_after: float | timedelta = 180,
                 lot_deadline_before: float | timedelta = 60, kind: SittingKind = SittingKind.FORMAL,
                 timing_mode: TimingMode = TimingMode.PER_QUESTION, question_seconds: int = 120,
                 total_seconds: int | None = None, name: str | None = None) -> Sitting:
    """A sitting with a sealed two-question paper; ``starts_in`` may be negative (it already started)."""
    make_centre(session, centre_id)
    starts = (now or utcnow()) + _seconds(starts_in)
    sitting_id = sitting_id or f"sit-{next(_counter)}"
    paper = make_paper(session, sitting_id, seconds=question_seconds)
    sitting = Sitting(
        id=sitting_id, centre_id=centre_id, name=name or f"Sitting {sitting_id}", kind=kind,
        timing_mode=timing_mode, paper_id=paper.id,
        waiting_opens_at=starts - _seconds(waiting_opens_before),
        starts_at=starts,
        entry_closes_at=starts + _seconds(entry_closes_after),
        lot_deadline_at=starts - _seconds(lot_deadline_before),
        total_seconds=total_seconds,
    )
    session.add(sitting)
    session.flush()
    return sitting


def make_candidate(session: Session, sitting: Sitting, *, ticket_no: str | None = None, name: str | None = None,
                   id_number: str = "510902198909082879", seat: str = "") -> Candidate:
    """A candidate enrolled in ``sitting`` with a fake descriptor (no photo)."""
    n = next(_counter)
    candidate = Candidate(centre_id=sitting.centre_id, sitting_id=sitting.id,
                          ticket_no=ticket_no or f"2024{n:04d}", name=name or f"Candidate {n}",
                          id_number=id_number, seat=seat, descriptor=fake_descriptor(n))
    session.add(candidate)
    session.flush()
    return candidate


def make_attempt(session: Session, candidate: Candidate, station: Station | None = None, *,
                 lot: int | None = None) -> Attempt:
    attempt = Attempt(sitting_id=candidate.sitting_id, candidate_id=candidate.id,
                      station_id=station.id if station is not None else None, lot=lot)
    session.add(attempt)
    session.flush()
    return attempt
