"""Sealed papers over the station API: the ciphertext any time, the key only from
``[papers] key_lead_seconds`` before the start, only to the centre's stations; import rules; the
scheduler's release at that moment."""
from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from edge_server.config import MqttSection
from edge_server.daemon.scheduler import Scheduler
from edge_server.errors import Conflict
from edge_server.extensions import db
from edge_server.models import Event, Paper, Sitting, Station
from edge_server.services import papers
from edge_server.services.paper_format import PaperFormatError
from edge_server.services.stations import revoke
from examkiosk_wire import sealed
from tests.edge_server.helpers import QUESTIONS, make_attempt, make_candidate, make_sitting, make_station, utcnow
from tests.services import free_port


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(app):
    """c1: a station, a sitting in an hour and one that started a minute ago; c2: its own sitting."""
    with app.app_context():
        station, token = make_station(db.session, "c1", "st-01")
        make_sitting(db.session, "c1", "c1-later", starts_in=3600)
        started = make_sitting(db.session, "c1", "c1-now", starts_in=-60)
        make_attempt(db.session, make_candidate(db.session, started), station)
        make_sitting(db.session, "c2", "c2-later", starts_in=-60)
        db.session.commit()
    return SimpleNamespace(headers=bearer(token), token=token)


def test_the_ciphertext_comes_any_time_the_key_only_from_the_start(app, client, world):
    blob = client.get("/api/v1/sittings/c1-later/paper/sealed", headers=world.headers)
    assert blob.status_code == 200
    body = blob.get_json()
    ciphertext = base64.b64decode(body["ciphertext"])
    assert hashlib.sha256(ciphertext).hexdigest() == body["sha256"] and len(base64.b64decode(body["nonce"])) == 12
    assert QUESTIONS[0].encode() not in ciphertext

    early = client.get("/api/v1/sittings/c1-later/paper/key", headers=world.headers)
    assert early.status_code == 403
    assert early.get_json() == {"error": "the paper key is released at the start time", "code": "paper_sealed"}

    key = client.get("/api/v1/sittings/c1-now/paper/key", headers=world.headers)
    assert key.status_code == 200 and key.get_json()["sitting"] == "c1-now"
    blob = client.get("/api/v1/sittings/c1-now/paper/sealed", headers=world.headers).get_json()
    opened = sealed.open_paper(base64.b64decode(key.get_json()["key"]),
                               sealed.SealedBlob(base64.b64decode(blob["ciphertext"]), base64.b64decode(blob["nonce"])),
                               "c1-now")
    assert [q["text"] for q in opened["questions"]] == QUESTIONS
    assert opened["title"] == "Structured interview"
    # The plaintext route is gone: a station opens the paper itself, with the key.
    assert client.get("/api/v1/sittings/c1-now/paper", headers=world.headers).status_code in (404, 405)
    with app.app_context():
        fetched = db.session.scalars(select(Event).where(Event.kind == "paper_key_fetched")).one()
        assert fetched.station_id == "st-01" and fetched.payload["sitting"] == "c1-now"
        assert key.get_json()["key"] not in str(fetched.payload)


@pytest.mark.parametrize("route", ["paper/sealed", "paper/key"])
def test_unknown_or_foreign_sittings_and_revoked_stations_get_nothing(app, client, world, route):
    for sitting in ("nope", "c2-later"):
        resp = client.get(f"/api/v1/sittings/{sitting}/{route}", headers=world.headers)
        assert resp.status_code == 404 and resp.get_json()["code"] == "sitting_unknown"
    with app.app_context():
        revoke(db.session, db.session.get(Station, "st-01"))
        db.session.commit()
    resp = client.get(f"/api/v1/sittings/c1-now/{route}", headers=world.headers)
    assert resp.status_code == 403 and resp.get_json()["code"] == "station_revoked" and "key" not in resp.get_json()


def test_the_database_alone_does_not_open_a_paper(app, client, world, settings):
    with app.app_context():
        sitting = db.session.get(Sitting, "c1-now")
        key = papers.paper_key(settings.data_dir, sitting, utcnow())
        wrapped = base64.b64decode(sitting.paper.wrapped_key)
        assert key not in wrapped and len(wrapped) == 12 + 32 + 16
    papers.wrap_key_path(settings.data_dir).unlink()
    resp = client.get("/api/v1/sittings/c1-now/paper/key", headers=world.headers)
    assert resp.status_code == 409 and resp.get_json()["code"] == "paper_unavailable"
    assert "paper_wrap.key is missing" in resp.get_json()["error"]


def test_import_replaces_before_the_start_only_and_a_bad_file_stores_nothing(app, settings, world):
    good = b"title: T\nquestions:\n  - text: Q one\n    seconds: 60\n  - text: Q two\n    seconds: 90\n"
    with app.app_context():
        later = db.session.get(Sitting, "c1-later")
        old = later.paper_id
        paper = papers.import_paper(db.session, settings.data_dir, later, "paper.yaml", good, by="admin",
                                    now=utcnow())
        db.session.commit()
        assert later.paper_id == paper.id != old and paper.question_seconds == [60, 90]
        assert (paper.title, paper.instructions, paper.questions) == ("", "", [])
        imported = db.session.scalars(select(Event).where(Event.kind == "paper_imported")).one()
        assert imported.payload["questions"] == 2 and imported.payload["replaced_sha256"]
        count = db.session.scalar(select(func.count()).select_from(Paper))
        with pytest.raises(PaperFormatError):
            papers.import_paper(db.session, settings.data_dir, later, "paper.yaml", b"title: T\n", by="admin",
                                now=utcnow())
        db.session.rollback()
        with pytest.raises(Conflict, match="has started"):
            papers.import_paper(db.session, settings.data_dir, db.session.get(Sitting, "c1-now"), "paper.yaml",
                                good, by="admin", now=utcnow())
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Paper)) == count
        assert db.session.get(Sitting, "c1-later").paper_id == paper.id


def test_the_scheduler_releases_a_started_sitting_once(app, settings, world):
    """No broker here: the push fails, the release is still recorded (stations ask the API)."""
    nowhere = MqttSection(host="127.0.0.1", port=free_port(), username="edge", password="x")
    scheduler = Scheduler(settings.model_copy(update={"centre": "c1", "mqtt": nowhere}), app, enqueue=lambda *a: None,
                          job_state=lambda attempt: None)
    assert scheduler.run_once(utcnow())["papers"] == 1
    assert scheduler.run_once(utcnow())["papers"] == 0
    with app.app_context():
        released = db.session.scalars(select(Event).where(Event.kind == "paper_key_released")).one()
        assert released.payload["sitting"] == "c1-now" and released.payload["stations"] == ["st-01"]
        assert released.payload["pushed"] is False
        assert db.session.get(Sitting, "c1-now").paper.released_at is not None
        assert db.session.get(Sitting, "c1-later").paper.released_at is None
    # It wakes for the next key release (the lead before the next start), not a whole interval later.
    lead = settings.papers.key_lead_seconds
    assert 0 < scheduler.next_wait(utcnow() + timedelta(seconds=3600 - lead - 2)) <= 2.1


def test_the_key_goes_out_the_lead_before_the_start_and_not_before(app, client, settings, world):
    """``[papers] key_lead_seconds`` (5 s by default) before the start, the scheduler releases the key
    and the key route answers; a hair before that moment neither does; staff still open the paper
    only from the start."""
    lead = settings.papers.key_lead_seconds
    assert lead == 5.0
    with app.app_context():
        make_sitting(db.session, "c1", "c1-within", starts_in=lead - 2)  # its key is out already
        soon = make_sitting(db.session, "c1", "c1-soon", starts_in=lead + 600)
        starts_at = soon.starts_at
        make_attempt(db.session, make_candidate(db.session, soon), db.session.get(Station, "st-01"))
        db.session.commit()
    nowhere = MqttSection(host="127.0.0.1", port=free_port(), username="edge", password="x")
    scheduler = Scheduler(settings.model_copy(update={"centre": "c1", "mqtt": nowhere}), app, enqueue=lambda *a: None,
                          job_state=lambda attempt: None)
    assert scheduler.run_once(utcnow())["papers"] == 2  # c1-now (started) and c1-within (in its lead)
    release = starts_at - timedelta(seconds=lead)
    assert scheduler.run_once(release - timedelta(milliseconds=500))["papers"] == 0
    assert 0 < scheduler.next_wait(release - timedelta(milliseconds=500)) <= 0.52
    assert scheduler.run_once(release)["papers"] == 1
    with app.app_context():
        assert db.session.get(Sitting, "c1-soon").paper.released_at is not None
        assert db.session.get(Sitting, "c1-later").paper.released_at is None
        released = db.session.scalars(select(Event).where(Event.kind == "paper_key_released")
                                      .order_by(Event.id.desc())).first()
        assert released.payload["sitting"] == "c1-soon" and released.payload["stations"] == ["st-01"]
        # Staff pages open a paper from its start only, whatever the stations' lead.
        with pytest.raises(papers.PaperSealed):
            papers.open_sitting_paper(settings.data_dir, db.session.get(Sitting, "c1-soon"), release)
    # The key route honours the same lead: c1-within starts within it, c1-soon (in ten minutes) does not.
    assert client.get("/api/v1/sittings/c1-within/paper/key", headers=world.headers).status_code == 200
    later = client.get("/api/v1/sittings/c1-soon/paper/key", headers=world.headers)
    assert later.status_code == 403 and later.get_json()["code"] == "paper_sealed"
