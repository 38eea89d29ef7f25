"""Who may call which route: every route of the app, called over HTTP by every kind of caller.

The callers: anonymous; a proctor, a centre admin and a regional admin; the station the candidate
sits at (``own``); another station of the same centre (``other``); a station the seat map moved the
candidate away from (``former``: it may still read the attempt, report its events, upload and
declare its segments); and a station of another centre (``foreign``). Path parameters are real ids
of the candidate's attempt, its sitting, the own station's upload and so on, and bodies name that
attempt where a route takes one, so a refusal is the policy's, not a missing row's.

``ALLOWED`` is written out by hand, route by route: the test compares what happened with it, and
a route the table does not know (a new one) fails the test until someone decides who may call it.
Every route must also declare its policy in code (``edge_server/auth.py``).
"""
from __future__ import annotations

import base64
import re

import pytest
import requests

from edge_server.auth import policy_of
from edge_server.extensions import db
from edge_server.models import Attempt, Event, Review, ReviewStatus, Segment
from tests.edge_server.conftest import make_settings
from tests.edge_server.route_world import CENTRE, build_world, routes
from tests.edge_server.staff.test_staff_pages import csrf_session

STATIONS = ("other", "former", "foreign", "own")  # own last: its DELETE ends its upload
STAFF = ("proctor", "regional_admin", "centre_admin")
CALLERS = ("anonymous", *STATIONS, *STAFF)
ANY_STATION = {"own", "other", "former", "foreign"}
CENTRE_STAFF = {"proctor", "centre_admin"}
ALL_STAFF = {*STAFF}
EVERYONE = {*CALLERS}

# endpoint -> the callers that get past its policy.
ALLOWED: dict[str, set[str]] = {
    "index": EVERYONE, "healthz": EVERYONE, "static": EVERYONE, "staff.static": EVERYONE,
    "staff.login": EVERYONE, "api.enrol": EVERYONE, "api.uploads_options": EVERYONE,
    # Station API: the station itself, its centre's sittings and candidates.
    "api.time_now": ANY_STATION, "api.schedule": ANY_STATION, "api.station_key": ANY_STATION,
    "api.station_messages": ANY_STATION,
    "api.candidate": {"own", "other", "former"},
    "api.open_attempt": {"own", "other", "former"},  # identification (the seat map may send them on)
    "api.sealed_paper": {"own", "other", "former"},
    "api.paper_key": {"own", "other", "former"},
    "api.acknowledge": {"own"},  # the broadcast went to the own station
    # The attempt: the station the candidate sits at ...
    "api.face_try": {"own"}, "api.request_review": {"own"}, "api.review_result": {"own"},
    "api.fallback_code": {"own"}, "api.draw_lot": {"own"}, "api.ask_for_help": {"own"},
    # ... and, for the hand-over, the station the candidate was moved away from.
    "api.get_attempt": {"own", "former"}, "api.finish": {"own", "former"}, "api.uploads_status": {"own", "former"},
    "api.post_event": {"own", "former"}, "api.create_upload": {"own", "former"},
    # An upload: the station that made it.
    "api.upload_head": {"own"}, "api.upload_patch": {"own"}, "api.upload_delete": {"own"},
    # Staff: every role looks; proctors and centre admins act; centre admins configure.
    "staff.logout": ALL_STAFF, "staff.dashboard": ALL_STAFF, "staff.stations_json": ALL_STAFF,
    "staff.reviews_json": ALL_STAFF, "staff.attempts_json": ALL_STAFF, "staff.review_image": ALL_STAFF,
    "staff.attempt_photo": ALL_STAFF, "staff.face_try_frame": ALL_STAFF, "staff.attempt_review": ALL_STAFF,
    "staff.candidates_json": ALL_STAFF, "staff.admission_ticket": ALL_STAFF, "staff.messages_json": ALL_STAFF,
    "staff.sittings_page": ALL_STAFF, "staff.edit_sitting": ALL_STAFF, "staff.seat_map": ALL_STAFF,
    "staff.live_stream": ALL_STAFF, "staff.station_snapshot": ALL_STAFF,
    "staff.decide_review": CENTRE_STAFF, "staff.issue_fallback_code": CENTRE_STAFF, "staff.reply": CENTRE_STAFF,
    "staff.resolve": CENTRE_STAFF, "staff.send_broadcast": CENTRE_STAFF, "staff.move_seat": CENTRE_STAFF,
    "staff.waive_handover": {"centre_admin"}, "staff.centre_settings": {"centre_admin"},
    "staff.revoke_station": {"centre_admin"}, "staff.station_details": {"centre_admin"},
    "staff.stations_page": {"centre_admin"}, "staff.create_enrolment_code": {"centre_admin"},
    "staff.papers_page": {"centre_admin"}, "staff.import_paper": {"centre_admin"},
    "staff.new_sitting": {"centre_admin"}, "staff.save_sitting": {"centre_admin"},
    "staff.new_import": {"centre_admin"}, "staff.upload_import": {"centre_admin"},
    "staff.import_preview": {"centre_admin"}, "staff.import_progress": {"centre_admin"},
    "staff.confirm_import": {"centre_admin"},
}

@pytest.fixture
def settings(db_url, tmp_path):
    """The edge of centre c1 (a regional admin, of no centre, sees the edge's own)."""
    return make_settings(db_url, tmp_path / "data", centre=CENTRE)


@pytest.fixture
def world(app, settings, tmp_path):
    return build_world(app, settings, tmp_path)


# Refusals by the station API: who the caller is, or an id outside what it may touch.
STATION_REFUSALS = {"token_missing", "token_invalid", "station_revoked", "attempt_unknown", "upload_unknown",
                    "sitting_unknown", "candidate_unknown", "message_unknown"}
def station_call(session: requests.Session, endpoint: str, method: str, url: str, params: dict[str, str]):
    tus = {"Tus-Resumable": "1.0.0"}
    if endpoint == "api.create_upload":
        meta = {"attempt": params["attempt_id"], "name": "seg-matrix", "sha256": "0" * 64}
        header = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())
        return session.post(url, headers={**tus, "Upload-Length": "10", "Upload-Metadata": header})
    if endpoint == "api.upload_patch":
        return session.patch(url, data=b"", headers={**tus, "Upload-Offset": "0",
                                                     "Content-Type": "application/offset+octet-stream"})
    if endpoint in ("api.upload_head", "api.upload_delete"):
        return session.request(method, url, headers=tus)
    bodies = {"api.post_event": {"kind": "matrix_probe", "attempt": params["attempt_id"]},
              "api.ask_for_help": {"reason": "other", "attempt_id": params["attempt_id"]},
              "api.acknowledge": {"attempt_id": params["attempt_id"]},
              "api.fallback_code": {"code": "00000000"},
              "api.face_try": {"matched": False},
              "api.finish": {"segments": ["seg-0001"], "reason": "moved"},
              # Another candidate: identifying this one at a station makes it the attempt's station.
              "api.open_attempt": {"ticket_no": params["other_ticket_no"]}}
    if method == "POST":
        return session.post(url, json=bodies.get(endpoint, {}))
    return session.request(method, url, timeout=30, stream=endpoint == "staff.live_stream")


def staff_call(session: requests.Session, csrf: str, method: str, url: str, endpoint: str):
    if method == "POST":  # with the session's CSRF token, so the policy (not CSRF) decides
        return session.post(url, data={"csrf_token": csrf}, allow_redirects=True)
    return session.request(method, url, allow_redirects=True, timeout=30, stream=endpoint == "staff.live_stream")


def anonymous_csrf(base: str, session: requests.Session) -> str:
    """A CSRF token for a session that is not signed in (the sign-in page hands one out)."""
    page = session.get(f"{base}/staff/login").text
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def refused(resp: requests.Response, base: str) -> bool:
    """Whether the policy turned the caller away (rather than the request failing on its merits)."""
    if resp.history and "/staff/login?next=" in resp.history[0].headers.get("Location", ""):
        return True  # sent to sign in first
    if resp.status_code == 401:
        return True
    if resp.request.url.startswith(f"{base}/api/") and resp.status_code in (403, 404):
        code = resp.json().get("code") if resp.content and resp.headers.get("Content-Type", "").startswith(
            "application/json") else None
        return code in STATION_REFUSALS or code is None
    return resp.status_code in (403, 404)


def test_every_route_declares_a_policy(app):
    undeclared = [endpoint for endpoint, view in app.view_functions.items()
                  if not endpoint.endswith("static") and endpoint != "static" and policy_of(view) is None]
    assert undeclared == []


def test_every_route_admits_exactly_its_callers(app, live_server, world):
    params, tokens = world
    base = live_server
    answers: dict[tuple[str, str, str], requests.Response] = {}
    for caller in CALLERS:
        if caller in STAFF:
            session, csrf = csrf_session(base, caller)
        else:
            session = requests.Session()
            csrf = anonymous_csrf(base, session)
            if caller in tokens:
                session.headers["Authorization"] = f"Bearer {tokens[caller]}"
        for endpoint, method, path in routes(app, params):
            if endpoint.startswith("api."):
                resp = station_call(session, endpoint, method, base + path, params)
            else:
                resp = staff_call(session, csrf, method, base + path, endpoint)
            answers[(caller, method, endpoint)] = resp
            # The live stream says 503 live_unavailable without Redis (the dashboard polls then).
            unavailable = endpoint == "staff.live_stream" and resp.status_code == 503
            assert resp.status_code < 500 or unavailable, f"{caller} {method} {path} -> {resp.status_code}: " \
                                                          f"{resp.text[:300]}"
            resp.close()
    unknown = {endpoint for (_, _, endpoint) in answers} - set(ALLOWED)
    assert not unknown, f"routes without an entry in ALLOWED (decide who may call them): {sorted(unknown)}"
    wrong = []
    for (caller, method, endpoint), resp in sorted(answers.items()):
        expected = caller in ALLOWED[endpoint]
        if (not refused(resp, base)) != expected:
            wrong.append(f"{caller:>14} {method:6} {endpoint}: {resp.status_code} "
                         f"{'admitted' if expected else 'refused'} expected; {resp.text[:120]!r}")
    assert wrong == [], "\n".join(wrong)


def test_stations_of_the_centre_cannot_touch_each_others_attempts(app, client, world):
    """Finding 1: with another station's token, nothing of the attempt is read, finished, uploaded or logged."""
    params, tokens = world
    other = {"Authorization": f"Bearer {tokens['other']}"}
    attempt_id = params["attempt_id"]
    resp = client.get(f"/api/v1/attempts/{attempt_id}", headers=other)
    assert (resp.status_code, resp.get_json()["code"]) == (404, "attempt_unknown")
    assert "descriptor" not in resp.get_data(as_text=True) and "20240001" not in resp.get_data(as_text=True)
    resp = client.post(f"/api/v1/attempts/{attempt_id}/finish", json={"segments": ["made-up"]}, headers=other)
    assert (resp.status_code, resp.get_json()["code"]) == (404, "attempt_unknown")
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in {"attempt": attempt_id, "name": "seg-x", "sha256": "0" * 64}.items())
    resp = client.post("/api/v1/uploads/", headers={**other, "Tus-Resumable": "1.0.0", "Upload-Length": "10",
                                                   "Upload-Metadata": meta})
    assert (resp.status_code, resp.get_json()["code"]) == (404, "attempt_unknown")
    resp = client.post("/api/v1/events", json={"kind": "forged", "attempt": attempt_id}, headers=other)
    assert (resp.status_code, resp.get_json()["code"]) == (404, "attempt_unknown")
    with app.app_context():
        attempt = db.session.get(Attempt, attempt_id)
        assert attempt.finished_at is None and not attempt.expected_segments
        assert db.session.query(Segment).filter_by(name="seg-x").count() == 0
        assert db.session.query(Event).filter_by(kind="forged").count() == 0


def test_the_station_the_candidate_left_hands_over_but_cannot_finish(app, client, world):
    params, tokens = world
    former = {"Authorization": f"Bearer {tokens['former']}"}
    attempt_id = params["attempt_id"]
    resp = client.post(f"/api/v1/attempts/{attempt_id}/finish", json={"segments": ["seg-f1"]}, headers=former)
    assert (resp.status_code, resp.get_json()["code"]) == (409, "attempt_elsewhere")
    resp = client.post(f"/api/v1/attempts/{attempt_id}/face-tries", json={"matched": True}, headers=former)
    assert (resp.status_code, resp.get_json()["code"]) == (404, "attempt_unknown")
    resp = client.post(f"/api/v1/attempts/{attempt_id}/finish", json={"segments": ["seg-f1"], "reason": "moved"},
                       headers=former)
    assert resp.status_code == 200
    with app.app_context():
        attempt = db.session.get(Attempt, attempt_id)
        assert attempt.finished_at is None and attempt.expected_segments == ["seg-f1"]


def test_a_regional_admin_cannot_decide_a_face_review(app, live_server, world):
    """Finding 2: regional admins are read-only; a proctor's decision still goes through."""
    params, _ = world
    session, csrf = csrf_session(live_server, "regional_admin")
    form = {"csrf_token": csrf, "approve": "y", "reason": "looks fine"}
    resp = session.post(f"{live_server}/staff/reviews/{params['review_id']}", data=form)
    assert resp.status_code == 403
    with app.app_context():
        assert db.session.get(Review, int(params["review_id"])).status == ReviewStatus.PENDING
    session, csrf = csrf_session(live_server, "proctor")
    resp = session.post(f"{live_server}/staff/reviews/{params['review_id']}", data={**form, "csrf_token": csrf})
    assert resp.status_code == 200
    with app.app_context():
        assert db.session.get(Review, int(params["review_id"])).status == ReviewStatus.APPROVED
