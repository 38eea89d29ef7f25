"""The demo centre: one station, one sitting starting a few minutes from now (its paper sealed), two candidates."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from edge_server.errors import EdgeError
from edge_server.models import Centre, Sitting, SittingKind, Station, TimingMode
from edge_server.services import stations as station_service
from edge_server.services.enrolment import enrol_candidate
from edge_server.services.paper_format import PaperContent, PaperQuestion
from edge_server.services.papers import sealed_paper

DEMO_QUESTIONS = [
    "请结合你的经历，谈谈你对“服务基层”的理解。",
    "如果在工作中与同事意见不一致，你会如何处理？请举例说明。",
]


@dataclass(frozen=True)
class DemoCentre:
    centre: str
    stations: tuple[str, ...]
    sitting: str
    tickets: dict[str, str]


def seed_demo(session: Session, *, now: datetime, centre_id: str, centre_name: str, photos: dict[str, Path],
              photos_dir: Path, data_dir: Path, stations: dict[str, str], start_in: float, question_seconds: int,
              waiting_opens_before: float = 1800, entry_cutoff_after: float = 180,
              timing_mode: TimingMode = TimingMode.PER_QUESTION, extra_candidates: int = 0) -> DemoCentre:
    """Create the demo data in an empty database (the audit log is append-only: nothing is cleared)."""
    sitting_id = f"{centre_id}-interview"
    centre = session.get(Centre, centre_id) or Centre(id=centre_id, name=centre_name)
    session.add(centre)
    if session.get(Sitting, sitting_id) is not None:
        raise EdgeError("the demo data exists already: the demo starts from an empty database",
                        code="demo_exists")
    content = PaperContent(title="结构化面谈（演示）", instructions="你好！欢迎参加今天的面谈。每回答完一题，请说“回答完毕”。",
                           questions=tuple(PaperQuestion(position=i + 1, text=t, seconds=question_seconds)
                                           for i, t in enumerate(DEMO_QUESTIONS)))
    paper = sealed_paper(data_dir, sitting_id, content, source_name="demo", by="demo", now=now)
    session.add(paper)
    session.flush()
    starts = now + timedelta(seconds=start_in)
    sitting = Sitting(
        id=sitting_id, centre_id=centre_id, name="演示面谈 Demo interview", kind=SittingKind.FORMAL,
        timing_mode=timing_mode, paper_id=paper.id,
        waiting_opens_at=starts - timedelta(seconds=max(waiting_opens_before, start_in + 60)),
        starts_at=starts,
        entry_closes_at=starts + timedelta(seconds=entry_cutoff_after),
        lot_deadline_at=starts - timedelta(seconds=min(60.0, start_in / 2)),
    )
    session.add(sitting)
    session.flush()
    tickets = {"20240001": "obama", "20240002": "biden"}
    names = {"20240001": "张明", "20240002": "李华"}
    for n in range(extra_candidates):  # more candidates whose face matches the demo camera
        ticket = f"2024{n + 3:04d}"
        tickets[ticket] = "obama"
        names[ticket] = f"考生{n + 3:02d}"
    for i, (ticket, photo_key) in enumerate(tickets.items()):
        enrol_candidate(session, centre_id=centre_id, sitting_id=sitting_id, ticket_no=ticket, name=names[ticket],
                        id_number=f"11010519900307{i + 1:03d}X"[:18], photo=photos[photo_key],
                        photos_dir=photos_dir, seat=f"A{i + 1:02d}")
    for number, (station_id, token) in enumerate(sorted(stations.items()), start=1):
        station = session.get(Station, station_id)
        if station is None:
            station_service.create_station(session, station_id, centre_id, name=f"考位 {station_id}",
                                           seat=f"A{number:02d}", token=token)
        else:
            station.token_hash = station_service.hash_token(token)
            station.revoked_at = None
    session.flush()
    return DemoCentre(centre=centre_id, stations=tuple(sorted(stations)), sitting=sitting_id, tickets=tickets)
