"""The station API under /api/v1: auth, candidates, attempts, face tries, review, lots, paper, schedule."""
from __future__ import annotations

import base64
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Attempt, Candidate, Review, ReviewStatus, Sitting, SittingKind, Station
from edge_server.services import attempts as attempt_service
from edge_server.services.stations import revoke
from examkiosk_wire import sealed
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station, utcnow


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(app):
    """Centre c1 with a station, a sitting starting in an hour with two candidates; centre c2 with its own."""
    with app.app_context():
        station, token = make_station(db.session, "c1", "st-01", seat="A01")
        sitting = make_sitting(db.session, "c1", "c1-morning", starts_in=3600)
        first = make_candidate(db.session, sitting, ticket_no="20240001", name="Zhang Ming",
                               id_number="510902198909082879", seat="A01")
        second = make_candidate(db.session, sitting, ticket_no="20240002")
        other_station, other_token = make_station(db.session, "c2", "st-99")
        other_sitting = make_sitting(db.session, "c2", "c2-morning", starts_in=3600)
        make_candidate(db.session, other_sitting, ticket_no="20249999")
        db.session.commit()
        return SimpleNamespace(station=station.id, token=token, headers=bearer(token), sitting=sitting.id,
                               tickets=[first.ticket_no, second.ticket_no], other_token=other_token,
                               other_sitting=other_sitting.id)


def open_attempt(client, world, ticket: str | None = None) -> dict:
    resp = client.post("/api/v1/attempts", json={"ticket_no": ticket or world.tickets[0]}, headers=world.headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


# --- auth and bodies ----------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "code"), [
    ({}, "token_missing"),
    ({"Authorization": "Basic c3Q6cHc="}, "token_missing"),
    ({"Authorization": "Bearer not-a-token"}, "token_invalid"),
], ids=["missing", "not-bearer", "unknown"])
def test_bad_or_missing_token_is_401_json(client, world, headers, code):
    for method, path in [("get", "/api/v1/time"), ("get", "/api/v1/schedule"), ("post", "/api/v1/attempts")]:
        resp = getattr(client, method)(path, headers=headers, json={"ticket_no": world.tickets[0]})
        assert resp.status_code == 401, path
        assert resp.is_json
        assert resp.get_json()["code"] == code
        assert resp.get_json()["error"]


def test_revoked_station_is_403(app, client, world):
    with app.app_context():
        station, token = make_station(db.session, "c1", "st-gone", revoked=True)
        db.session.commit()
    resp = client.get("/api/v1/schedule", headers=bearer(token))
    assert resp.status_code == 403
    assert resp.get_json()["code"] == "station_revoked"
    # Revoking a station that was working cuts it off on its next call.
    assert client.get("/api/v1/time", headers=world.headers).status_code == 200
    with app.app_context():
        revoke(db.session, db.session.get(Station, world.station))
        db.session.commit()
    resp = client.get("/api/v1/time", headers=world.headers)
    assert resp.status_code == 403 and resp.get_json()["code"] == "station_revoked"


@pytest.mark.parametrize(("body", "code"), [
    (b'{"ticket_no": ', "bad_json"),
    (b"not json at all", "bad_json"),
    (b'["20240001"]', "bad_json"),
    (b'{"ticket": "20240001"}', "missing_field"),
], ids=["truncated", "garbage", "array", "missing-field"])
def test_malformed_body_is_400_json(client, world, body, code):
    resp = client.post("/api/v1/attempts", data=body, content_type="application/json", headers=world.headers)
    assert resp.status_code == 400
    assert resp.is_json
    assert resp.get_json()["code"] == code


# --- candidates and attempts ----------------------------------------------------------------------

def test_unknown_ticket_is_404(client, world):
    resp = client.get("/api/v1/candidates/99999999", headers=world.headers)
    assert resp.status_code == 404 and resp.get_json()["code"] == "candidate_unknown"
    resp = client.post("/api/v1/attempts", json={"ticket_no": "99999999"}, headers=world.headers)
    assert resp.status_code == 404 and resp.get_json()["code"] == "candidate_unknown"
    # A ticket of another centre is unknown here too.
    resp = client.post("/api/v1/attempts", json={"ticket_no": "20249999"}, headers=world.headers)
    assert resp.status_code == 404 and resp.get_json()["code"] == "candidate_unknown"


def test_candidate_lookup_masks_the_id_number(client, world):
    resp = client.get(f"/api/v1/candidates/{world.tickets[0]}", headers=world.headers)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["name"] == "Zhang Ming"
    assert body["id_number_masked"] == "510*************79"
    assert "510902198909082879" not in resp.get_data(as_text=True)
    assert body["sitting"] == world.sitting
    assert len(body["descriptor"]) == 128


def test_opening_an_attempt_twice_returns_the_same_attempt(app, client, world):
    first = open_attempt(client, world)
    again = open_attempt(client, world)
    assert again["id"] == first["id"]
    assert first["candidate"]["ticket_no"] == world.tickets[0]
    assert first["sitting"]["id"] == world.sitting
    assert first["lot"] is None and first["face_tries"] == 0 and first["finished"] is False
    other = open_attempt(client, world, world.tickets[1])
    assert other["id"] != first["id"]
    with app.app_context():
        assert len(db.session.scalars(select(Attempt)).all()) == 2


def test_a_formal_sitting_that_requires_a_mock_admits_only_who_finished_one(app, client, world):
    with app.app_context():
        db.session.get(Sitting, world.sitting).mock_required = True
        mock = make_sitting(db.session, "c1", "c1-mock", starts_in=-7200, kind=SittingKind.MOCK)
        # The first candidate (same ID number, another ticket) finished the mock; an early end does not count.
        done = make_attempt(db.session, make_candidate(db.session, mock, ticket_no="20230001",
                                                       id_number="510902198909082879"))
        done.finished_at, done.end_reason = utcnow(), "time_up"
        cut = make_attempt(db.session, make_candidate(db.session, mock, ticket_no="20230002",
                                                      id_number="11010519491231002X"))
        cut.finished_at, cut.end_reason = utcnow(), "interruptions_exceeded"
        second = db.session.scalar(select(Candidate).where(Candidate.ticket_no == world.tickets[1]))
        second.id_number = "11010519491231002X"  # the one whose mock ended early
        db.session.commit()
    open_attempt(client, world)  # finished the mock: admitted
    resp = client.post("/api/v1/attempts", json={"ticket_no": world.tickets[1]}, headers=world.headers)
    assert resp.status_code == 403 and resp.get_json()["code"] == "mock_required"
    assert "mock test is required" in resp.get_json()["error"]
    with app.app_context():
        assert len(db.session.scalars(select(Attempt).where(Attempt.sitting_id == world.sitting)).all()) == 1


def test_attempt_of_another_centre_is_unknown(client, world):
    attempt = open_attempt(client, world)
    resp = client.get(f"/api/v1/attempts/{attempt['id']}", headers=bearer(world.other_token))
    assert resp.status_code == 404 and resp.get_json()["code"] == "attempt_unknown"


def test_face_tries_are_counted(client, world):
    attempt = open_attempt(client, world)
    url = f"/api/v1/attempts/{attempt['id']}/face-tries"
    for n, (distance, matched) in enumerate([(0.71, False), (0.66, False), (0.38, True)], start=1):
        resp = client.post(url, json={"distance": distance, "matched": matched}, headers=world.headers)
        assert resp.status_code == 200
        assert resp.get_json() == {"tries": n, "face_verified": "face" if matched else None}
    got = client.get(f"/api/v1/attempts/{attempt['id']}", headers=world.headers).get_json()
    assert got["face_tries"] == 3 and got["face_verified"] == "face"
    resp = client.post(url, json={"distance": "near", "matched": False}, headers=world.headers)
    assert resp.status_code == 400 and resp.get_json()["code"] == "bad_field"


def test_review_request_is_decided_by_a_proctor(app, client, world):
    attempt = open_attempt(client, world)
    url = f"/api/v1/attempts/{attempt['id']}/review"
    resp = client.get(url, headers=world.headers)
    assert resp.status_code == 404 and resp.get_json()["code"] == "no_review"

    resp = client.post(url, json={"best_distance": 0.61}, headers=world.headers)
    assert resp.status_code == 201
    review = resp.get_json()
    assert review["status"] == "pending"
    # Asking again while pending gives the same request.
    assert client.post(url, json={}, headers=world.headers).get_json()["id"] == review["id"]
    assert client.get(url, headers=world.headers).get_json()["status"] == "pending"

    with app.app_context():
        row = db.session.get(Review, review["id"])
        assert row.best_distance == pytest.approx(0.61)
        attempt_service.decide_review(db.session, row, approve=True, staff_id=None, reason="matches the ID card")
        db.session.commit()

    got = client.get(url, headers=world.headers).get_json()
    assert got == {"id": review["id"], "status": "approved", "reason": "matches the ID card"}
    assert client.get(f"/api/v1/attempts/{attempt['id']}", headers=world.headers).get_json()["face_verified"] == "review"
    with app.app_context():
        row = db.session.get(Review, review["id"])
        assert row.status == ReviewStatus.APPROVED and row.decided_at is not None


# --- lots ---------------------------------------------------------------------------------------

def test_lots_are_unique_within_a_sitting(app, client, world):
    with app.app_context():
        sitting = make_sitting(db.session, "c1", "c1-lots", starts_in=3600)
        tickets = [make_candidate(db.session, sitting).ticket_no for _ in range(6)]
        db.session.commit()
    attempts = [open_attempt(client, world, t)["id"] for t in tickets]
    lots = {}
    for attempt_id in attempts:
        resp = client.post(f"/api/v1/attempts/{attempt_id}/lot", headers=world.headers)
        assert resp.status_code == 200
        assert resp.get_json()["auto"] is False  # the deadline is an hour away
        lots[attempt_id] = resp.get_json()["lot"]
    assert sorted(lots.values()) == list(range(1, len(tickets) + 1))
    # Drawing again is idempotent.
    for attempt_id in attempts:
        assert client.post(f"/api/v1/attempts/{attempt_id}/lot", headers=world.headers).get_json()["lot"] == lots[attempt_id]
        assert client.get(f"/api/v1/attempts/{attempt_id}", headers=world.headers).get_json()["lot"] == lots[attempt_id]


def test_missing_lots_are_assigned_after_the_deadline(app, client, world):
    attempts = [open_attempt(client, world, t)["id"] for t in world.tickets]
    drawn = client.post(f"/api/v1/attempts/{attempts[0]}/lot", headers=world.headers).get_json()["lot"]
    with app.app_context():
        # Two more candidates whose stations never drew a lot.
        sitting = db.session.get(Attempt, attempts[0]).sitting
        station = db.session.get(Station, world.station)
        for _ in range(2):
            ticket = make_candidate(db.session, sitting).ticket_no
            attempts.append(attempt_service.open_attempt(db.session, station, ticket, utcnow()).id)
        db.session.commit()
        deadline = sitting.lot_deadline_at

        assert attempt_service.assign_missing_lots(db.session, deadline - timedelta(seconds=1)) == []
        assigned = attempt_service.assign_missing_lots(db.session, deadline + timedelta(seconds=1))
        db.session.commit()
        assert sorted(a.id for a in assigned) == sorted(attempts[1:])

    with app.app_context():
        rows = {a.id: a for a in db.session.scalars(select(Attempt).where(Attempt.id.in_(attempts)))}
        assert all(rows[a].lot is not None for a in attempts)
        assert sorted(r.lot for r in rows.values()) == [1, 2, 3, 4]
        assert rows[attempts[0]].lot == drawn and rows[attempts[0]].lot_auto is False
        assert all(rows[a].lot_auto for a in attempts[1:])
        # Running the sweep again changes nothing.
        assert attempt_service.assign_missing_lots(db.session, deadline + timedelta(seconds=2)) == []


def test_a_lot_drawn_after_the_deadline_is_marked_auto(app, client, world):
    with app.app_context():
        sitting = make_sitting(db.session, "c1", "c1-late", starts_in=-30, entry_closes_after=600,
                               lot_deadline_before=60)
        ticket = make_candidate(db.session, sitting).ticket_no
        db.session.commit()
    attempt = open_attempt(client, world, ticket)
    resp = client.post(f"/api/v1/attempts/{attempt['id']}/lot", headers=world.headers)
    assert resp.get_json() == {"lot": 1, "auto": True}


# --- paper, schedule, time ----------------------------------------------------------------------

def _opened_paper(client, world, sitting_id: str) -> dict:
    """The paper as a station opens it: the sealed blob with the key from the start on."""
    key = client.get(f"/api/v1/sittings/{sitting_id}/paper/key", headers=world.headers)
    assert key.status_code == 200, key.get_json()
    blob = client.get(f"/api/v1/sittings/{sitting_id}/paper/sealed", headers=world.headers).get_json()
    return sealed.open_paper(base64.b64decode(key.get_json()["key"]),
                             sealed.SealedBlob(base64.b64decode(blob["ciphertext"]), base64.b64decode(blob["nonce"])),
                             sitting_id)


def test_paper_is_sealed_until_the_start(client, world):
    resp = client.get(f"/api/v1/sittings/{world.sitting}/paper/key", headers=world.headers)
    assert resp.status_code == 403
    assert resp.get_json()["code"] == "paper_sealed"
    assert "Describe a time" not in resp.get_data(as_text=True)
    blob = client.get(f"/api/v1/sittings/{world.sitting}/paper/sealed", headers=world.headers)
    assert blob.status_code == 200 and "Describe a time" not in blob.get_data(as_text=True)


def test_paper_is_released_at_the_start(app, client, world):
    with app.app_context():
        make_sitting(db.session, "c1", "c1-started", starts_in=-60, question_seconds=90)
        db.session.commit()
    body = _opened_paper(client, world, "c1-started")
    assert [q["position"] for q in body["questions"]] == [1, 2]
    assert all(q["text"] and q["seconds"] == 90 for q in body["questions"])


def test_paper_of_an_unknown_or_foreign_sitting_is_404(client, world):
    for sitting_id in ("nope", world.other_sitting):
        for route in ("paper/sealed", "paper/key"):
            resp = client.get(f"/api/v1/sittings/{sitting_id}/{route}", headers=world.headers)
            assert resp.status_code == 404 and resp.get_json()["code"] == "sitting_unknown"


def test_schedule_lists_the_centres_sittings(app, client, world):
    with app.app_context():
        make_sitting(db.session, "c1", "c1-earlier", starts_in=600, question_seconds=60)
        db.session.commit()
    resp = client.get("/api/v1/schedule", headers=world.headers)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["centre"] == "c1" and body["station"] == "st-01"
    assert abs(body["server_time"] - time.time()) < 5
    assert [s["id"] for s in body["sittings"]] == ["c1-earlier", "c1-morning"]  # by start, no other centre
    earlier = body["sittings"][0]
    assert earlier["question_seconds"] == [60, 60] and earlier["total_seconds"] == 120
    assert earlier["kind"] == "formal" and earlier["timing_mode"] == "per_question"
    assert earlier["waiting_opens_at"] < earlier["lot_deadline_at"] < earlier["starts_at"] < earlier["entry_closes_at"]
    assert abs(earlier["starts_at"] - (time.time() + 600)) < 30


def test_time_is_the_servers_clock(client, world):
    before = time.time()
    resp = client.get("/api/v1/time", headers=world.headers)
    after = time.time()
    assert resp.status_code == 200
    assert before <= resp.get_json()["server_time"] <= after
