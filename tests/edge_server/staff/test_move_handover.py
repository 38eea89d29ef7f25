"""A candidate moved mid-exam: the attempt is complete only once the station they left has handed its
segments over, or a centre admin, in a real browser, stops waiting for a station whose recording
is lost (with a reason, audited). Over the real station API on a real socket."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Attempt, Event, Segment, SegmentStatus, Sitting, StaffRole, Station
from edge_server.services import seats
from edge_server.services.moves import awaited_handovers
from edge_server.services.staff import create_user
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session, sign_in

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "staff"
CENTRE = "c1"
TICKET = "20240009"


@pytest.fixture
def moved(app, live_server):
    """王芳 answered at st-01 (identified there), then the proctor moved her to st-02 mid-exam."""
    with app.app_context():
        tokens = {sid: make_station(db.session, CENTRE, sid, seat=seat)[1]
                  for sid, seat in (("st-01", "A01"), ("st-02", "A02"))}
        sitting = make_sitting(db.session, CENTRE, "sit-live", starts_in=-60, name="上午场")
        candidate = make_candidate(db.session, sitting, ticket_no=TICKET, name="王芳")
        candidate.station_id, candidate.seat = "st-01", "A01"
        attempt_id = make_attempt(db.session, candidate, db.session.get(Station, "st-01")).id
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, CENTRE)
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, CENTRE)
        db.session.commit()
    api = {sid: {"Authorization": f"Bearer {token}"} for sid, token in tokens.items()}
    r = requests.post(f"{live_server}/api/v1/attempts", json={"ticket_no": TICKET}, headers=api["st-01"])
    assert r.status_code == 201 and r.json()["id"] == attempt_id
    with app.app_context():
        seats.assign(db.session, db.session.get(Sitting, "sit-live"), TICKET, "st-02", by="proctor",
                     now=datetime.now(timezone.utc))
        db.session.commit()
    return {"base": live_server, "api": api, "attempt": attempt_id}


def verified_segments(app, attempt_id: str, station_id: str, seqs: range) -> list[str]:
    """Segments the station uploaded and the edge verified (as the tus upload would leave them)."""
    names = []
    with app.app_context():
        for seq in seqs:
            name = f"{attempt_id}_main_{seq:05d}.mkv"
            digest = hashlib.sha256(name.encode()).hexdigest()
            db.session.add(Segment(attempt_id=attempt_id, station_id=station_id, name=name, seq=seq, question=1,
                                   length=10, offset=10, sha256_declared=digest, sha256_actual=digest,
                                   status=SegmentStatus.VERIFIED))
            names.append(name)
        db.session.commit()
    return names


def finish(moved, station: str, segments: list[str], reason: str) -> dict:
    r = requests.post(f"{moved['base']}/api/v1/attempts/{moved['attempt']}/finish",
                      json={"segments": segments, "reason": reason}, headers=moved["api"][station])
    assert r.status_code == 200, r.text
    return r.json()


def test_the_attempt_waits_for_the_station_it_left(app, moved):
    r = requests.post(f"{moved['base']}/api/v1/attempts", json={"ticket_no": TICKET}, headers=moved["api"]["st-02"])
    assert r.status_code == 201 and r.json()["resume"]["moved"] is True
    new = verified_segments(app, moved["attempt"], "st-02", range(10_000, 10_003))
    status = finish(moved, "st-02", new, "time_up")
    # Every segment st-02 declared is verified, but st-01's part of the recording has not arrived.
    assert status["missing"] == [] and status["awaiting_handover"] == ["st-01"] and status["complete"] is False
    with app.app_context():
        assert db.session.get(Attempt, moved["attempt"]).upload_complete_at is None

    old = verified_segments(app, moved["attempt"], "st-01", range(0, 4))
    status = finish(moved, "st-01", old, "moved")  # st-01 back online: the hand-over
    assert status["awaiting_handover"] == [] and status["complete"] is True and status["expected"] == 7
    with app.app_context():
        assert db.session.get(Attempt, moved["attempt"]).upload_complete_at is not None


def test_a_station_that_never_had_the_candidate_is_not_waited_for(app, live_server):
    with app.app_context():
        make_station(db.session, CENTRE, "st-01", seat="A01")
        make_station(db.session, CENTRE, "st-02", seat="A02")
        sitting = make_sitting(db.session, CENTRE, "sit-x", starts_in=-60)
        candidate = make_candidate(db.session, sitting, ticket_no="20240010")
        candidate.station_id = "st-01"
        attempt = make_attempt(db.session, candidate)
        db.session.flush()
        seats.assign(db.session, sitting, "20240010", "st-02", by="proctor", now=datetime.now(timezone.utc))
        db.session.commit()
        assert awaited_handovers(db.session, attempt) == []


def test_a_centre_admin_stops_waiting_for_a_lost_recording(app, moved, chromium):
    new = verified_segments(app, moved["attempt"], "st-02", range(10_000, 10_002))
    assert finish(moved, "st-02", new, "time_up")["complete"] is False
    base, attempt = moved["base"], moved["attempt"]

    # The dashboard's recordings list says what the attempt waits for and links to it.
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, base, "proctor", PASSWORD)
    page.wait_for_selector(f"tr[data-attempt='{attempt}'] [data-field=awaiting]")
    assert "st-01" in page.inner_text(f"tr[data-attempt='{attempt}'] [data-field=awaiting]")
    page.click(f"tr[data-attempt='{attempt}'] [data-field=awaiting]")
    assert "st-01" in page.inner_text("[data-awaited=st-01]")
    assert page.query_selector("[data-form=waive-handover]") is None, "a proctor cannot waive"
    page.close()
    proctor, token = csrf_session(base, "proctor")
    r = proctor.post(f"{base}/staff/attempts/{attempt}/waive-handover",
                     data={"csrf_token": token, "station": "st-01", "reason": "x"}, allow_redirects=False)
    assert r.status_code == 403

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, base, "admin", PASSWORD)
    page.goto(f"{base}/staff/attempts/{attempt}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "attempt_awaiting_handover.png"), full_page=True)
    page.fill("[data-form=waive-handover] input[name=reason]", "   ")
    page.click("[data-action=waive-handover]")
    assert "A reason is required" in page.inner_text("main")
    page.fill("[data-form=waive-handover] input[name=reason]", "考位损坏，存储卡无法读取 · card unreadable")
    page.click("[data-action=waive-handover]")
    assert "No longer waiting for station st-01" in page.inner_text("main")
    assert page.query_selector("[data-awaited]") is None
    page.close()

    with app.app_context():
        assert db.session.get(Attempt, attempt).upload_complete_at is not None
        waived = db.session.scalars(select(Event).where(Event.kind == "handover_waived")).one()
        assert waived.payload == {"station": "st-01", "reason": "考位损坏，存储卡无法读取 · card unreadable",
                                  "by": "admin"}
        assert waived.source == "staff" and waived.attempt_id == attempt
    admin, token = csrf_session(base, "admin")
    again = admin.post(f"{base}/staff/attempts/{attempt}/waive-handover",
                       data={"csrf_token": token, "station": "st-01", "reason": "twice"})
    assert again.status_code == 409 and "not waiting for station st-01" in again.text
    assert admin.post(f"{base}/staff/attempts/{attempt}/waive-handover",
                      data={"station": "st-01", "reason": "no token"}).status_code == 400  # CSRF
