"""A station agent in the waiting room with its kiosk server on a free port (no edge, no devices
started), for the kiosk's browser tests."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from station.config import StationSettings
from station.flow import Candidate, FlowState, Schedule, Screen, TimingMode
from station.kiosk.app import serve_kiosk
from station.runtime.runner import Runtime
from tests.services import free_port


@contextlib.contextmanager
def waiting_agent(data_dir: Path, sitting: str, *, starts_in: float, entry_open: float,
                  question_seconds: tuple[int, ...]) -> Iterator[tuple[Runtime, str]]:
    """The agent (whole-session sitting starting ``starts_in`` s from now) and its kiosk's base URL."""
    settings = StationSettings(station_id="st-01", centre="c1", data_dir=data_dir,
                               edge={"token": "t", "api": "http://127.0.0.1:9"},
                               mqtt={"username": "st-01", "password": "p"},
                               kiosk={"port": free_port(), "voice": False})
    agent = Runtime(settings)
    now = agent.clock.now()
    agent.state = FlowState(
        screen=Screen.WAITING, attempt_id="a-1", lot=7,
        candidate=Candidate(ticket_no="20240001", name="张三", id_number_masked="1101**********0011", seat="A-01"),
        schedule=Schedule(sitting=sitting, timing_mode=TimingMode.WHOLE_SESSION, waiting_opens_at=now - 600,
                          starts_at=now + starts_in, entry_closes_at=now + entry_open, lot_deadline_at=now - 60,
                          question_seconds=question_seconds, total_seconds=sum(question_seconds)),
        recording=True)
    server = serve_kiosk(agent.kiosk, "127.0.0.1", settings.kiosk.port)
    try:
        yield agent, f"http://127.0.0.1:{settings.kiosk.port}"
    finally:
        server.shutdown()
        agent.stop()
