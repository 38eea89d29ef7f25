"""The seat map in a real browser: assign, move before the start, move mid-exam as an interruption under
the sitting's policy (refused once it is used up); a station other than the assigned one is refused."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Candidate, Event, StaffRole, Station
from edge_server.services.staff import create_user
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session, sign_in

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "staff"
CENTRE = "c1"


@pytest.fixture
def centre(app, live_server):
    with app.app_context():
        tokens = {sid: make_station(db.session, CENTRE, sid, seat=seat)[1]
                  for sid, seat in (("st-01", "A01"), ("st-02", "A02"), ("st-03", "A03"))}
        later = make_sitting(db.session, CENTRE, "sit-later", starts_in=3600, name="下午场")
        make_candidate(db.session, later, ticket_no="20240001", name="张明")
        make_candidate(db.session, later, ticket_no="20240002", name="李华")
        live = make_sitting(db.session, CENTRE, "sit-live", starts_in=-60, name="上午场")
        answering = make_candidate(db.session, live, ticket_no="20240009", name="王芳")
        answering.station_id, answering.seat = "st-01", "A01"
        make_attempt(db.session, answering, db.session.get(Station, "st-01"))  # answering at st-01
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, CENTRE)
        db.session.commit()
    return live_server, tokens


def seat_of(app, ticket_no: str) -> tuple[str | None, str]:
    with app.app_context():
        c = db.session.scalars(select(Candidate).where(Candidate.ticket_no == ticket_no)).one()
        return c.station_id, c.seat


def test_assign_and_move_before_and_during_the_exam(app, centre, chromium):
    base, tokens = centre
    page = chromium.new_page()
    sign_in(page, base, "proctor", PASSWORD)
    page.click("[data-action=sittings]")
    page.click("[data-sitting=sit-later] [data-action=seat-map]")
    assert "李华" in page.inner_text("[data-list=unseated]") and "张明" in page.inner_text("[data-list=unseated]")
    page.select_option("[data-list=unseated] tr[data-ticket='20240001'] select", "st-01")
    page.click("[data-list=unseated] tr[data-ticket='20240001'] [data-action=assign]")
    assert "张明（20240001）→ A01" in page.inner_text("main")
    page.select_option("[data-list=unseated] tr[data-ticket='20240002'] select", "st-02")
    page.click("[data-list=unseated] tr[data-ticket='20240002'] [data-action=assign]")
    assert "Every candidate has a seat" in page.inner_text("main")
    # Before the start a move to the spare station is free.
    page.select_option("[data-station=st-01] select", "st-03")
    page.click("[data-station=st-01] [data-action=move]")
    assert "张明（20240001）→ A03" in page.inner_text("main") and "interruption" not in page.inner_text(".flash")
    assert "spare" in page.inner_text("[data-station=st-01]") and "张明" in page.inner_text("[data-station=st-03]")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "seat_map.png"), full_page=True)
    assert seat_of(app, "20240001") == ("st-03", "A03") and seat_of(app, "20240002") == ("st-02", "A02")

    # The assignment is what the station sees: any other station sends the candidate to theirs.
    r = requests.post(f"{base}/api/v1/attempts", json={"ticket_no": "20240001"},
                      headers={"Authorization": f"Bearer {tokens['st-02']}"})
    assert (r.status_code, r.json()["code"]) == (409, "wrong_station") and "A03" in r.json()["error"]
    r = requests.post(f"{base}/api/v1/attempts", json={"ticket_no": "20240001"},
                      headers={"Authorization": f"Bearer {tokens['st-03']}"})
    assert r.status_code == 201 and r.json()["candidate"]["seat"] == "A03"

    # Mid-exam: a move is an interruption; the policy allows one.
    page.goto(f"{base}/staff/sittings/sit-live/seats")
    assert "moves are interruptions" in page.inner_text("[data-notice=started]")
    page.select_option("[data-station=st-01] select", "st-02")
    page.click("[data-station=st-01] [data-action=move]")
    assert "counted as interruption 1 of 1" in page.inner_text("main")
    page.select_option("[data-station=st-02] select", "st-03")
    page.click("[data-station=st-02] [data-action=move]")
    assert "The interruption policy is exhausted (1 of 1 used)" in page.inner_text("[data-error=seat]")
    page.screenshot(path=str(ARTIFACTS / "seat_map_interruption_refused.png"), full_page=True)
    page.close()
    assert seat_of(app, "20240009") == ("st-02", "A02")
    with app.app_context():
        interruptions = db.session.scalars(select(Event).where(Event.kind == "interruption")).all()
        assert len(interruptions) == 1 and interruptions[0].attempt_id is not None
        assert interruptions[0].payload == {"cause": "moved", "from": "st-01", "to": "st-02", "count": 1,
                                            "by": "proctor"}
        moves = [(e.kind, e.payload["ticket_no"], e.payload["from"], e.payload["to"], e.payload["during_exam"])
                 for e in db.session.scalars(select(Event).where(Event.kind.in_(["seat_assigned", "seat_moved"]))
                                             .order_by(Event.id))]
        assert moves == [("seat_assigned", "20240001", None, "st-01", False),
                         ("seat_assigned", "20240002", None, "st-02", False),
                         ("seat_moved", "20240001", "st-01", "st-03", False),
                         ("seat_moved", "20240009", "st-01", "st-02", True)]


def test_a_taken_station_is_refused(app, centre):
    base, _ = centre
    proctor, token = csrf_session(base, "proctor")
    url = f"{base}/staff/sittings/sit-later/seats"
    assert proctor.post(url, data={"csrf_token": token, "ticket_no": "20240001", "station": "st-01"}).status_code == 200
    r = proctor.post(url, data={"csrf_token": token, "ticket_no": "20240002", "station": "st-01"})
    assert r.status_code == 409 and "is taken by 20240001" in r.text
    r = proctor.post(url, data={"csrf_token": token, "ticket_no": "20240002", "station": "st-99"})
    assert r.status_code == 404 and "No such station" in r.text
    assert proctor.post(url, data={"ticket_no": "20240002", "station": "st-02"}).status_code == 400  # no CSRF
    assert seat_of(app, "20240002") == (None, "")
