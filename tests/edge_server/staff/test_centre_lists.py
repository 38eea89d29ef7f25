"""The dashboard's lists are filtered by centre in the query: another centre's rows never take the
places of this centre's (``/staff/api/attempts`` keeps the 200 latest of the centre's own)."""
from __future__ import annotations

import re
from datetime import timedelta

from edge_server.extensions import db
from edge_server.models import FaceTry, StaffRole
from edge_server.services import attempts as attempt_service
from edge_server.services.staff import create_user
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station, utcnow

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
OTHERS = 230  # more than the list's 200


def _signed_in(app):
    client = app.test_client()
    token = _CSRF.search(client.get("/staff/login").get_data(as_text=True)).group(1)
    resp = client.post("/staff/login", data={"username": "proctor", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    return client


def test_a_centre_sees_its_own_attempts_past_200_newer_ones_of_another_centre(app):
    with app.app_context():
        station, _ = make_station(db.session, "c1", "st-01")
        other_station, _ = make_station(db.session, "c2", "st-91")
        mine = make_sitting(db.session, "c1", "c1-morning")
        theirs = make_sitting(db.session, "c2", "c2-morning")
        own = []
        for _ in range(4):
            attempt = make_attempt(db.session, make_candidate(db.session, mine), station)
            attempt.created_at = utcnow() - timedelta(days=1)  # older than every other centre's
            own.append(attempt)
        reviewed, failing = own[0], own[1]  # a pending review; a failed face login without one
        for attempt in (reviewed, failing):
            db.session.add(FaceTry(attempt_id=attempt.id, distance=0.8, matched=False))
        attempt_service.request_review(db.session, reviewed, 0.8)
        for _ in range(OTHERS):
            attempt = make_attempt(db.session, make_candidate(db.session, theirs), other_station)
            db.session.add(FaceTry(attempt_id=attempt.id, distance=0.8, matched=False))
            attempt_service.request_review(db.session, attempt, 0.8)
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, "c1")
        db.session.commit()
        own_ids, reviewed_id, failing_id = [a.id for a in own], reviewed.id, failing.id

    client = _signed_in(app)
    listed = client.get("/staff/api/attempts").get_json()["attempts"]
    assert sorted(a["id"] for a in listed) == sorted(own_ids)
    assert {a["station"] for a in listed} == {"st-01"}

    reviews = client.get("/staff/api/reviews").get_json()
    assert [r["attempt"] for r in reviews["reviews"]] == [reviewed_id]
    assert [f["attempt"] for f in reviews["face_failures"]] == [failing_id]
