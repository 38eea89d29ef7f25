"""POST /api/v1/attempts/<id>/fallback-code: a staff one-time code instead of face login."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Attempt, Event, FallbackCode, StaffRole, StaffUser
from edge_server.services import fallback
from edge_server.services.audit import verify
from edge_server.services.staff import create_user
from tests.edge_server.conftest import SECRET_KEY
from tests.edge_server.helpers import make_candidate, make_sitting, make_station, utcnow


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(app, client):
    """Centre c1 with stations st-01 and st-02, two candidates with attempts opened at st-01 whose
    face login failed three times; a proctor; centre c2 with a station of its own."""
    with app.app_context():
        _, token = make_station(db.session, "c1", "st-01")
        _, token2 = make_station(db.session, "c1", "st-02")
        _, other_centre = make_station(db.session, "c2", "st-99")
        sitting = make_sitting(db.session, "c1", starts_in=3600)
        tickets = [make_candidate(db.session, sitting).ticket_no for _ in range(2)]
        proctor = create_user(db.session, "proctor", "correct horse battery", StaffRole.PROCTOR, "c1")
        db.session.commit()
        proctor_id = proctor.id
    attempts = []
    for ticket in tickets:
        attempt = client.post("/api/v1/attempts", json={"ticket_no": ticket}, headers=bearer(token)).get_json()
        for _ in range(3):
            client.post(f"/api/v1/attempts/{attempt['id']}/face-tries", json={"matched": False, "distance": 0.7},
                        headers=bearer(token))
        attempts.append(attempt["id"])
    client.post(f"/api/v1/attempts/{attempts[0]}/review", json={"best_distance": 0.7}, headers=bearer(token))
    return SimpleNamespace(headers=bearer(token), headers2=bearer(token2), other_centre=bearer(other_centre),
                           attempts=attempts, proctor=proctor_id)


def issue_code(app, world, attempt_id: str) -> str:
    """What the staff page does: issue a code and show it once."""
    with app.app_context():
        _, plain = fallback.issue(db.session, db.session.get(Attempt, attempt_id),
                                  staff=db.session.get(StaffUser, world.proctor), key=SECRET_KEY.encode(),
                                  now=utcnow())
        db.session.commit()
    return plain


def use(client, attempt_id: str, code, headers):
    return client.post(f"/api/v1/attempts/{attempt_id}/fallback-code", json={"code": code}, headers=headers)


def wrong(plain: str) -> str:
    return f"{(int(plain) + 1) % 10 ** 8:08d}"


def test_the_code_lets_the_candidate_in_once(app, client, world):
    attempt = world.attempts[0]
    plain = issue_code(app, world, attempt)
    resp = use(client, attempt, plain, world.headers)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["status"] == "approved"
    got = client.get(f"/api/v1/attempts/{attempt}", headers=world.headers).get_json()
    assert got["face_verified"] == "review"
    assert got["review"]["status"] == "approved" and got["review"]["reason"] == "fallback code"
    assert client.get(f"/api/v1/attempts/{attempt}/review", headers=world.headers).get_json()["status"] == "approved"
    again = use(client, attempt, plain, world.headers)
    assert again.status_code == 403 and again.get_json()["code"] == "code_used"


def test_the_printed_form_with_a_space_is_accepted(app, client, world):
    plain = issue_code(app, world, world.attempts[0])
    assert use(client, world.attempts[0], fallback.display(plain), world.headers).status_code == 200


def test_wrong_code_another_station_and_another_attempt_are_refused(app, client, world):
    first, second = world.attempts
    plain = issue_code(app, world, first)
    for attempt_id, code, headers, refusal in [
            (first, wrong(plain), world.headers, (403, "code_invalid")),  # wrong code
            # Right code, another station: that station may not act on the attempt at all.
            (first, plain, world.headers2, (404, "attempt_unknown")),
            (second, plain, world.headers, (403, "code_invalid"))]:  # another candidate's attempt
        resp = use(client, attempt_id, code, headers)
        assert (resp.status_code, resp.get_json()["code"]) == refusal, (attempt_id, headers)
        assert resp.get_json()["error"]
    for attempt_id in (first, second):
        assert client.get(f"/api/v1/attempts/{attempt_id}", headers=world.headers).get_json()["face_verified"] is None
    assert use(client, first, plain, world.headers).status_code == 200


def test_an_expired_code_is_refused(app, client, world):
    attempt = world.attempts[0]
    plain = issue_code(app, world, attempt)
    with app.app_context():
        code = db.session.scalar(select(FallbackCode).where(FallbackCode.attempt_id == attempt))
        code.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    resp = use(client, attempt, plain, world.headers)
    assert resp.status_code == 403 and resp.get_json()["code"] == "code_expired"


def test_five_wrong_codes_then_429(app, client, world):
    attempt = world.attempts[0]
    plain = issue_code(app, world, attempt)
    for _ in range(fallback.MAX_WRONG_TRIES):
        assert use(client, attempt, wrong(plain), world.headers).get_json()["code"] == "code_invalid"
    resp = use(client, attempt, plain, world.headers)
    assert resp.status_code == 429 and resp.get_json()["code"] == "too_many_tries"
    # A new code from staff works.
    assert use(client, attempt, issue_code(app, world, attempt), world.headers).status_code == 200


def test_no_code_issued_is_invalid_and_bad_bodies_are_400(client, world):
    attempt = world.attempts[0]
    assert use(client, attempt, "12345678", world.headers).get_json()["code"] == "code_invalid"
    resp = client.post(f"/api/v1/attempts/{attempt}/fallback-code", json={}, headers=world.headers)
    assert resp.status_code == 400 and resp.get_json()["code"] == "missing_field"
    assert use(client, attempt, 12345678, world.headers).get_json()["code"] == "bad_field"
    assert use(client, attempt, "1" * 33, world.headers).get_json()["code"] == "bad_field"
    resp = use(client, attempt, "12345678", world.other_centre)
    assert resp.status_code == 404 and resp.get_json()["code"] == "attempt_unknown"
    assert use(client, attempt, "12345678", {}).status_code == 401


def test_issue_and_every_use_are_audited_and_the_chain_verifies(app, client, world):
    attempt = world.attempts[0]
    plain = issue_code(app, world, attempt)
    use(client, attempt, wrong(plain), world.headers)
    # Another station may not act on the attempt at all: refused by the route's policy, before any code is tried.
    assert use(client, attempt, plain, world.headers2).status_code == 404
    use(client, attempt, plain, world.headers)
    with app.app_context():
        events = db.session.scalars(select(Event).where(Event.attempt_id == attempt, Event.kind.like("fallback_%"))
                                    .order_by(Event.id)).all()
        assert [(e.kind, e.station_id, e.source, e.payload.get("reason")) for e in events] == [
            ("fallback_code_issued", "st-01", "staff", None),
            ("fallback_code_refused", "st-01", "api", "code_invalid"),
            ("fallback_code_used", "st-01", "api", None),
        ]
        assert verify(db.session) == []
