"""Every call of the station's EdgeClient against the real edge on a socket: each answer is read as its
reply model (``examkiosk_wire.api``) and says what the edge's database holds."""
from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Attempt, Event, FaceTry, Review, Sitting, StaffRole
from edge_server.services import messages, staff
from examkiosk_wire import api, sealed
from examkiosk_wire.chain import StationKey
from examkiosk_wire.commands import MessagePush
from station.link import EdgeClient, EdgeRejected
from tests.edge_server import conftest as edge_fixtures
from tests.edge_server.helpers import make_candidate, make_sitting, make_station

# The edge's fixtures, used by the tests below (pytest finds them in this module).
app, live_server = edge_fixtures.app, edge_fixtures.live_server
make_settings, sqlite_template = edge_fixtures.make_settings, edge_fixtures.sqlite_template

CENTRE = "c1"
TICKET = "20249001"


@pytest.fixture
def db_url(sqlite_template, tmp_path):  # noqa: F811  (the station side needs one backend only)
    path = tmp_path / "edge.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(db_url, tmp_path):
    return make_settings(db_url, tmp_path / "edge-data", centre=CENTRE)


@pytest.fixture
def client(app, live_server):
    with app.app_context():
        _, token = make_station(db.session, CENTRE, "st-01", seat="A-01")
        sitting = make_sitting(db.session, CENTRE, "c1-sit", starts_in=-5, entry_closes_after=600,
                               question_seconds=90, name="上午场 Morning")
        make_candidate(db.session, sitting, ticket_no=TICKET, name="李雷", seat="A-01")
        db.session.commit()
    with EdgeClient(live_server, token) as edge:
        yield edge


def test_schedule_candidate_and_attempt_answer_their_models(app, client):
    schedule = client.schedule()
    assert isinstance(schedule, api.ScheduleReply)
    assert (schedule.centre, schedule.station) == (CENTRE, "st-01")
    [sitting] = schedule.sittings
    with app.app_context():
        row = db.session.get(Sitting, "c1-sit")
        assert (sitting.id, sitting.name, sitting.starts_at) == (row.id, "上午场 Morning", row.starts_at.timestamp())
    assert sitting.question_seconds == [90, 90] and sitting.total_seconds == 180

    candidate = client.candidate(TICKET)
    assert (candidate.name, candidate.sitting, candidate.seat) == ("李雷", "c1-sit", "A-01")
    assert "*" in candidate.id_number_masked and len(candidate.descriptor or []) == 128

    attempt = client.open_attempt(TICKET)
    assert isinstance(attempt, api.AttemptInfo)
    assert attempt.candidate == candidate and attempt.sitting == sitting
    assert (attempt.face_verified, attempt.face_tries, attempt.review, attempt.moved_to) == (None, 0, None, None)
    assert attempt.resume == api.ResumeInfo()  # never moved, never entered
    assert client.open_attempt(TICKET).id == attempt.id == client.attempt(attempt.id).id  # the same one again


def test_login_lot_events_paper_and_finish_answer_their_models(app, client, tmp_path):
    attempt = client.open_attempt(TICKET)
    public = StationKey.load_or_create(tmp_path / "station-key.pem").public_b64
    assert client.register_key(public) == api.KeyReply(station="st-01", public_key=public)

    tried = client.face_try(attempt.id, matched=False, distance=0.71, liveness=None)
    assert tried == api.FaceTryReply(tries=1, face_verified=None)
    review = client.request_review(attempt.id, best_distance=0.71)
    assert review.status == "pending" and client.review(attempt.id).id == review.id
    tried = client.face_try(attempt.id, matched=True, distance=0.31, liveness="ok")
    assert tried.face_verified == "face"
    with app.app_context():
        assert [t.distance for t in db.session.scalars(select(FaceTry).order_by(FaceTry.id))] == [0.71, 0.31]
        assert db.session.get(Review, review.id) is not None

    lot = client.draw_lot(attempt.id)
    assert client.draw_lot(attempt.id) == lot and lot.lot >= 1  # the same lot when asked again
    assert client.event("kiosk_started", {"screen": "identify"}, attempt=attempt.id).ok
    with app.app_context():
        event = db.session.scalars(select(Event).where(Event.kind == "kiosk_started")).one()
        assert (event.attempt_id, event.payload) == (attempt.id, {"screen": "identify"})

    blob = client.sealed_paper("c1-sit")
    paper_key = client.paper_key("c1-sit")  # the sitting started: the key is released
    opened = sealed.open_paper(sealed.unb64(paper_key.key, "key"),
                               sealed.SealedBlob(sealed.unb64(blob.ciphertext, "c"), sealed.unb64(blob.nonce, "n")),
                               "c1-sit")
    assert len(opened["questions"]) == 2 and blob.sitting == paper_key.sitting == "c1-sit"

    status = client.finish(attempt.id, ["main_000000.mkv"], reason="completed")
    assert isinstance(status, api.UploadStatus)
    assert (status.attempt, status.finished, status.expected, status.verified) == (attempt.id, True, 1, 0)
    assert status.missing == ["main_000000.mkv"] and not status.complete
    assert client.upload_status(attempt.id) == status
    with app.app_context():
        assert db.session.get(Attempt, attempt.id).finished_at is not None


def test_help_chat_answers_message_models(app, client):
    attempt = client.open_attempt(TICKET)
    asked = client.ask_for_help("device", "摄像头黑屏 camera is black", attempt_id=attempt.id)
    assert isinstance(asked.message, MessagePush)
    assert (asked.message.kind, asked.message.sender, asked.message.attempt) == ("help", "candidate", attempt.id)
    assert asked.thread is not None and asked.thread.status == "open"
    with app.app_context():
        proctor = staff.create_user(db.session, "proctor", "a long proctor password", StaffRole.PROCTOR, CENTRE)
        broadcast = messages.broadcast(db.session, db.session.get(Sitting, "c1-sit"), staff=proctor,
                                       text="还有五分钟 five minutes left")
        db.session.commit()
        broadcast_id = broadcast.id
    page = client.messages(0)
    assert [m.id for m in page.messages] == [asked.message.id, broadcast_id] and not page.more
    assert page.last_id == broadcast_id and page.messages[1].sender == "staff"
    ack = client.acknowledge(broadcast_id, attempt.id)
    assert (ack.message, ack.new) == (broadcast_id, True)
    assert client.acknowledge(broadcast_id, attempt.id).new is False  # audited once
    with pytest.raises(EdgeRejected):
        client.ask_for_help("bored")  # not a reason the edge knows

