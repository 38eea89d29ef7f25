"""The sealed-paper sweep: before the start, no route returns the paper or its key.

Every rule of ``app.url_map`` with every method it has (path parameters filled with real ids) is
called over HTTP as anonymous, a station (bearer token), a proctor, a regional admin and a centre
admin. Forms get a valid CSRF token (but revoke and logout, which would end the sweep early, go
without one and are refused); the import POST gets a real paper file. No response body may hold
a question's text, a page, the instructions, the title, the key (hex or base64) or the image's
bytes (raw or base64). Then every text, JSON and binary column of every table, and every log
record of the run (the edge daemon's scheduler round included), are searched the same way.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import zipfile
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from edge_server.daemon.scheduler import Scheduler
from edge_server.extensions import db
from edge_server.models import (
    Base,
    CandidateImport,
    FaceTry,
    HelpThread,
    ImportStatus,
    Message,
    MessageKind,
    Review,
    Segment,
    Sitting,
    StaffRole,
)
from edge_server.services import papers
from edge_server.services.staff import create_user
from tests.edge_server.conftest import make_settings
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station, utcnow
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session
from tests.services import free_port

CENTRE = "c1"
SITTING = "c1-sealed"
TITLE = "密封卷标题 Sealed title 7QX"
INSTRUCTIONS = "Instructions nobody may read early 4KD"
QUESTIONS = ["Question alpha: describe the river crossing 9ZT", "问题二：谈谈基层治理的经验 8WM"]
PAGE = "Second page material about the harbour 3PL"
IMAGE = b"\x89PNG\r\n\x1a\n" + os.urandom(2048)
ROLES = ("anonymous", "station", "proctor", "regional_admin", "centre_admin")
# Staff POSTs that would end the sweep early (a revoked station, a signed-out session): no CSRF token.
WITHOUT_CSRF = {"staff.revoke_station", "staff.logout"}


def paper_zip(questions: list[str]) -> bytes:
    doc = {"title": TITLE, "instructions": INSTRUCTIONS, "questions": [
        {"text": questions[0], "seconds": 120, "pages": [PAGE], "images": ["fig/map.png"]},
        {"text": questions[1], "seconds": 90}]}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("paper.json", json.dumps(doc, ensure_ascii=False))
        archive.writestr("fig/map.png", IMAGE)
    return out.getvalue()


@pytest.fixture
def settings(db_url, tmp_path):
    nowhere = {"host": "127.0.0.1", "port": free_port(), "username": "edge", "password": "x"}
    return make_settings(db_url, tmp_path / "data", centre=CENTRE, mqtt=nowhere)


@pytest.fixture
def world(app, settings):
    """A sealed paper for a sitting in an hour, and one real row behind every id a route takes."""
    with app.app_context():
        station, token = make_station(db.session, CENTRE, "st-01")
        sitting = make_sitting(db.session, CENTRE, SITTING, starts_in=3600)
        papers.import_paper(db.session, settings.data_dir, sitting, "paper.zip", paper_zip(QUESTIONS), by="admin",
                            now=utcnow())
        candidate = make_candidate(db.session, sitting, ticket_no="20240001")
        attempt = make_attempt(db.session, candidate, station, lot=1)
        review = Review(attempt_id=attempt.id)
        face_try = FaceTry(attempt_id=attempt.id, distance=0.7, frame_sha256="0" * 64)
        thread = HelpThread(centre_id=CENTRE, station_id=station.id, attempt_id=attempt.id)
        db.session.add_all([review, face_try, thread])
        db.session.flush()
        message = Message(centre_id=CENTRE, kind=MessageKind.BROADCAST, sitting_id=SITTING, text="notice",
                          recipients=[station.id])
        segment = Segment(attempt_id=attempt.id, station_id=station.id, name="seg-0001", length=10,
                          sha256_declared="0" * 64)
        upload = CandidateImport(centre_id=CENTRE, sitting_id=SITTING, status=ImportStatus.READY, total=0)
        db.session.add_all([message, segment, upload])
        for role in (StaffRole.PROCTOR, StaffRole.REGIONAL_ADMIN, StaffRole.CENTRE_ADMIN):
            create_user(db.session, str(role), PASSWORD, role, None if role == StaffRole.REGIONAL_ADMIN else CENTRE)
        db.session.commit()
        key = papers.paper_key(settings.data_dir, sitting, sitting.starts_at)  # the test's own look, not a route
        params = {"attempt_id": attempt.id, "sitting_id": SITTING, "ticket_no": candidate.ticket_no,
                  "station_id": station.id, "review_id": str(review.id), "try_id": str(face_try.id),
                  "thread_id": str(thread.id), "message_id": str(message.id), "upload_id": segment.id,
                  "filename": "staff.css", "import_id": upload.id}
    return token, key, params


def needles(key: bytes) -> dict[str, bytes]:
    found = {f"question {i + 1}": q.encode() for i, q in enumerate(QUESTIONS)}
    found |= {"page": PAGE.encode(), "instructions": INSTRUCTIONS.encode(), "title": TITLE.encode(),
              "key (hex)": key.hex().encode(), "key (HEX)": key.hex().upper().encode(),
              "key (base64)": base64.b64encode(key), "key (urlsafe base64)": base64.urlsafe_b64encode(key).rstrip(b"="),
              "key (raw)": key, "image (raw)": IMAGE[16:80], "image (base64)": base64.b64encode(IMAGE)[:120]}
    # JSON escapes non-ASCII text: look for that spelling as well.
    found |= {f"{name} (JSON-escaped)": json.dumps(value.decode()).strip('"').encode()
              for name, value in list(found.items()) if name.startswith(("question", "title")) and not value.isascii()}
    return found


def leaks(data: bytes, key: bytes) -> list[str]:
    return [name for name, needle in needles(key).items() if needle in data]


def urls(app, params: dict[str, str]):
    """Every (endpoint, method, url) of the app, each path parameter filled with a real id."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint in WITHOUT_CSRF, r.rule)):
        values = {}
        for arg in rule.arguments:
            if arg in params:
                values[arg] = params[arg]
            elif arg == "fmt":
                values[arg] = "pdf"
            elif arg == "which":
                values[arg] = "photo"
            else:
                raise AssertionError(f"the sweep cannot fill <{arg}> of {rule.rule}: add a real id for it")
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}) or ["HEAD"]:
            yield rule.endpoint, method, path


def session_for(role: str, base: str, token: str) -> tuple[requests.Session, str | None]:
    if role == "anonymous":
        return requests.Session(), None
    if role == "station":
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        return session, None
    return csrf_session(base, role)


def call(session: requests.Session, csrf: str | None, endpoint: str, method: str, url: str) -> requests.Response:
    if endpoint == "staff.import_paper":  # a real upload: the response must not echo the paper
        return session.post(url, data={"csrf_token": csrf or "", "sitting": SITTING},
                            files={"file": ("paper.zip", paper_zip(QUESTIONS), "application/zip")})
    if endpoint.startswith("staff.") and method == "POST":
        data = {} if endpoint in WITHOUT_CSRF or csrf is None else {"csrf_token": csrf}
        return session.post(url, data=data, allow_redirects=True)
    if method in ("POST", "PATCH"):
        return session.request(method, url, json={})
    return session.request(method, url, allow_redirects=True)


def test_nothing_reveals_a_sealed_paper_before_the_start(app, settings, live_server, world, caplog):
    caplog.set_level(logging.DEBUG)
    token, key, params = world
    seen: set[str] = set()
    problems: list[str] = []
    answered: dict[str, dict[str, int]] = {}
    for role in ROLES:
        session, csrf = session_for(role, live_server, token)
        for endpoint, method, path in urls(app, params):
            resp = call(session, csrf, endpoint, method, live_server + path)
            seen.add(endpoint)
            answered.setdefault(role, {})[f"{method} {path}"] = resp.status_code
            for name in leaks(resp.content + str(resp.headers).encode(), key):
                problems.append(f"{role} {method} {path} -> {resp.status_code}: {name}")
    assert seen == {rule.endpoint for rule in app.url_map.iter_rules()}
    # The sweep reached the paper routes as a station and imported a paper as the centre admin.
    assert answered["station"][f"GET /api/v1/sittings/{SITTING}/paper/key"] == 403
    assert answered["station"][f"GET /api/v1/sittings/{SITTING}/paper/sealed"] == 200
    assert answered["centre_admin"]["POST /staff/papers"] == 201
    assert answered["proctor"]["POST /staff/papers"] == 403
    assert answered["centre_admin"]["GET /staff/papers"] == 200

    # The daemon's round before the start releases nothing.
    scheduler = Scheduler(settings, app, enqueue=lambda *a: None, job_state=lambda attempt: None)
    assert scheduler.run_once(utcnow())["papers"] == 0

    with app.app_context():
        # The sweep's import replaced the paper: the current key is the one to look for as well.
        sitting = db.session.get(Sitting, SITTING)
        keys = [key, papers.paper_key(settings.data_dir, sitting, sitting.starts_at)]
        for table in Base.metadata.sorted_tables:
            for row in db.session.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is None or isinstance(value, (int, float)) or hasattr(value, "isoformat"):
                        continue
                    data = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
                    for k in keys:
                        problems += [f"database {table.name}.{column}: {name}" for name in leaks(data, k)]
        assert db.session.scalars(select(Sitting)).one().paper.released_at is None
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records).encode()
    assert logged, "nothing was logged: the log check would prove nothing"
    for k in keys:
        problems += [f"log: {name}" for name in leaks(logged, k)]
    assert problems == []


def test_the_needles_would_be_found(world, settings, app):
    """The sweep's search finds the paper once the start has passed (a check that can fail)."""
    token, key, params = world
    with app.app_context():
        sitting = db.session.get(Sitting, SITTING)
        opened = papers.open_sitting_paper(settings.data_dir, sitting, sitting.starts_at + timedelta(seconds=1))
    found = leaks(json.dumps(opened).encode() + base64.b64encode(key), key)
    assert {"question 1", "page", "instructions", "image (base64)", "key (base64)"} <= set(found)
    assert re.search(rb"[\x80-\xff]", IMAGE)  # the raw image needle is binary, as image bytes are
