"""Station API bodies are parsed strictly (findings 5 and 6 of the attack on the demo): each case here
was a 500 or a silently coerced value before, and is now a 4xx ``{"error", "code"}`` that changes nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from edge_server.extensions import db
from edge_server.models import Attempt, Event, FaceTry, Review
from tests.edge_server.helpers import make_candidate, make_sitting, make_station


@pytest.fixture
def opened(app, client):
    with app.app_context():
        _, token = make_station(db.session, "c1", "st-01")
        ticket = make_candidate(db.session, make_sitting(db.session, "c1")).ticket_no
        db.session.commit()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    resp = client.post("/api/v1/attempts", json={"ticket_no": ticket}, headers=headers)
    assert resp.status_code == 201
    return resp.get_json()["id"], headers


def counts(app) -> tuple[int, int, int, int]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model))
                     for model in (Attempt, Event, FaceTry, Review))


@pytest.mark.parametrize(("route", "body", "code"), [
    ("face-tries", b'{"matched": ["x"]}', "bad_field"),  # bool(["x"]) was a match
    ("face-tries", b'{"matched": "false"}', "bad_field"),
    ("face-tries", b'{"matched": 1}', "bad_field"),
    ("face-tries", b"[]", "bad_json"),  # [] became {}
    ("face-tries", b'{"matched": true, "liveness": "\\ud800"}', "bad_field"),  # a lone surrogate
    ("face-tries", b'{"matched": true, "liveness": "ok\\u0000"}', "bad_field"),  # a NUL
    ("face-tries", b'{"matched": true, "frame_jpeg": "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"}', "bad_frame"),  # non-ASCII
    ("face-tries", b'{"matched": true, "distance": NaN}', "bad_json"),
    ("face-tries", b'{"matched": true, "distance": 1e999}', "bad_field"),
    ("face-tries", b"[" * 100_000, "too_deep"),  # a RecursionError before
    ("face-tries", b'{"matched": true, "unknown": 1}', "bad_field"),
    ("review", b'{"best_distance": "abc"}', "bad_field"),
    ("review", b'{"best_distance": 0.4, "frame_jpeg": 7}', "bad_frame"),
    ("lot", b'{"x": 1}', "bad_field"),
], ids=["matched-list", "matched-string", "matched-int", "list-body", "surrogate", "nul", "frame-non-ascii", "nan",
        "overflow", "deep", "unknown-field", "distance-string", "frame-int", "lot-extra"])
def test_bad_attempt_bodies_are_refused_and_change_nothing(app, client, opened, route, body, code):
    attempt_id, headers = opened
    before = counts(app)
    resp = client.post(f"/api/v1/attempts/{attempt_id}/{route}", data=body, headers=headers)
    assert (resp.status_code, resp.get_json()["code"]) == (400, code), resp.get_json()
    assert resp.get_json()["error"]
    assert counts(app) == before
    with app.app_context():
        assert db.session.get(Attempt, attempt_id).face_verified is None


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/attempts", b'{"ticket_no": "\\ud800"}'),
    ("/api/v1/attempts", b'{"ticket_no": 20240001}'),
    ("/api/v1/events", b'{"kind": "\\udfff"}'),
    ("/api/v1/events", b'{"kind": "x", "attempt": "\\ud800"}'),
    ("/api/v1/events", b'{"kind": "x", "payload": {"a": ["\\ud800"]}}'),
    ("/api/v1/events", b'{"kind": "x", "payload": {"seq": 9223372036854775808}}'),
    ("/api/v1/events", b'{"kind": "x", "payload": []}'),
    ("/api/v1/help", b'{"reason": "device", "attempt_id": "\\ud800"}'),
    ("/api/v1/station-key", b'{"public_key": {"k": 1}}'),
], ids=["ticket-surrogate", "ticket-int", "kind-surrogate", "attempt-surrogate", "payload-surrogate",
        "payload-int-overflow", "payload-list", "help-attempt-surrogate", "key-object"])
def test_bad_station_bodies_are_400_and_change_nothing(app, client, opened, path, body):
    _, headers = opened
    before = counts(app)
    resp = client.post(path, data=body, headers=headers)
    assert resp.status_code == 400 and resp.get_json()["code"] == "bad_field", resp.get_json()
    assert counts(app) == before


def test_a_body_too_large_is_413_before_it_is_read(client, opened):
    attempt_id, headers = opened
    resp = client.post(f"/api/v1/attempts/{attempt_id}/face-tries", data=b" " * (4 * 1024 * 1024), headers=headers)
    assert (resp.status_code, resp.get_json()["code"]) == (413, "too_large")


def test_a_nul_in_the_path_or_query_is_refused(client, opened):
    _, headers = opened
    resp = client.get("/api/v1/candidates/2024%000001", headers=headers)
    assert (resp.status_code, resp.get_json()["code"]) == (400, "bad_characters")
    resp = client.get("/api/v1/messages?after=%00", headers=headers)
    assert (resp.status_code, resp.get_json()["code"]) == (400, "bad_characters")


def test_a_good_try_still_counts(app, client, opened):
    attempt_id, headers = opened
    resp = client.post(f"/api/v1/attempts/{attempt_id}/face-tries", data=b'{"matched": true, "distance": 0.31}',
                       headers=headers)
    assert resp.status_code == 200 and resp.get_json()["face_verified"] == "face"
