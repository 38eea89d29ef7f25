"""Replies and broadcasts pushed over a private Mosquitto (our password/ACL files, MQTT v5) reach the
right stations' StatusPublishers, and only those; the station's MessageBox takes the pushed message."""
from __future__ import annotations

import os
import queue
import re
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Attempt, Event, StaffRole
from edge_server.services.staff import create_user
from examkiosk_wire.topics import StationCommand, cmd_topic
from station.link import StatusPublisher
from station.messages import MessageBox
from tests.edge_server.conftest import dispose_app
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.edge_server.jobs.test_sync import forget_job_app
from tests.edge_server.worker_edge import work_queued_jobs, worker_edge_app
from tests.services import MqttProbe, start_mosquitto

CENTRE = f"c-msg{uuid.uuid4().hex[:6]}"
STATIONS = ("st-01", "st-02", "st-03")
USERS = {"edge": "edge-secret", **{sid: f"pw-{sid}" for sid in STATIONS}}
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    proc = start_mosquitto(tmp_path_factory.mktemp("message-broker"), CENTRE, USERS)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def app(broker, db_url, tmp_path, redis_server, monkeypatch):
    """st-01 holds an attempt of the sitting, st-02 has the seat of its other candidate, st-03 neither.

    The staff views queue their pushes; the push job reads the same configuration file, as it does
    under ``examkiosk-edge-worker`` (``work_queued_jobs`` works the queue)."""
    app = worker_edge_app(monkeypatch, tmp_path, db_url=db_url, redis_url=redis_server.url, centre=CENTRE,
                          queue_prefix="test-push", mqtt={"host": "127.0.0.1", "port": broker.port,
                                                          "username": "edge", "password": USERS["edge"]})
    with app.app_context():
        st1, _ = make_station(db.session, CENTRE, "st-01", seat="A01", token="st-01-token")
        make_station(db.session, CENTRE, "st-02", seat="A02")
        make_station(db.session, CENTRE, "st-03", seat="Z09")
        sitting = make_sitting(db.session, CENTRE, "morning")
        make_attempt(db.session, make_candidate(db.session, sitting, seat="A01"), st1)
        make_candidate(db.session, sitting, seat="A02")
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, CENTRE)
        db.session.commit()
    try:
        yield app
    finally:
        forget_job_app()
        dispose_app(app)


def push_shown(staff, message_id: int, deadline_s: float = 30.0) -> str | None:
    """The push outcome the help panel shows for a staff message, once it is no longer "sending"."""
    deadline = time.monotonic() + deadline_s
    shown = None
    while time.monotonic() < deadline:
        data = staff.get("/staff/api/messages").get_json()
        messages = [m for t in data["threads"] for m in t["messages"]] + data["broadcasts"]
        shown = next((m.get("push") for m in messages if m["id"] == message_id), None)
        if shown not in (None, "sending"):
            return shown
        time.sleep(0.2)
    raise AssertionError(f"the help panel still shows {shown!r} for message {message_id} after {deadline_s} s")


@pytest.fixture
def stations(broker):
    """Each station's publisher hands its commands to a queue, as the agent's ``_command`` does."""
    publishers, received = [], {}
    for sid in STATIONS:
        inbox: queue.Queue[StationCommand] = queue.Queue()
        publisher = StatusPublisher("127.0.0.1", broker.port, sid, USERS[sid], CENTRE, sid, on_command=inbox.put)
        publisher.start()
        publishers.append(publisher)
        received[sid] = inbox
    try:
        for publisher in publishers:
            assert publisher.wait_connected(10)
        listening(broker, received)
        yield received
    finally:
        for publisher in publishers:
            publisher.stop()


def listening(broker, received: dict[str, queue.Queue]) -> None:
    """Each station subscribes right after connecting: ping each until a ping comes through, then drain."""
    with MqttProbe(broker.port, "edge", USERS["edge"]) as edge:
        assert not edge.connect().is_failure
        for sid, inbox in received.items():
            for _ in range(50):
                edge.publish(cmd_topic(CENTRE, sid), StationCommand(kind="ping").to_json())
                try:
                    if inbox.get(timeout=0.2).kind == "ping":
                        break
                except queue.Empty:
                    continue
            else:
                raise AssertionError(f"{sid} never received a command")
    for inbox in received.values():
        while True:
            try:
                assert inbox.get(timeout=0.3).kind == "ping"
            except queue.Empty:
                break


def sign_in(app):
    client = app.test_client()
    token = _CSRF.search(client.get("/staff/login").get_data(as_text=True)).group(1)
    client.post("/staff/login", data={"username": "proctor", "password": PASSWORD, "csrf_token": token})
    return client, _CSRF.search(client.get("/staff/").get_data(as_text=True)).group(1)


def nothing_for(inbox: queue.Queue, seconds: float = 1.0) -> bool:
    try:
        command = inbox.get(timeout=seconds)
    except queue.Empty:
        return True
    raise AssertionError(f"unexpected command {command}")


def test_a_reply_reaches_its_station_only(app, stations):
    help_request = app.test_client().post("/api/v1/help", json={"reason": "device", "text": "没有画面"},
                            headers={"Authorization": "Bearer st-01-token"}).get_json()
    staff, csrf = sign_in(app)
    resp = staff.post(f"/staff/help/{help_request['thread']['id']}/reply", data={"text": "马上来", "csrf_token": csrf},
                      headers={"Accept": "application/json"})
    assert resp.status_code == 201 and resp.get_json()["push"] == "sending"  # queued: the request did not wait
    nothing_for(stations["st-01"], 0.5)  # nothing is sent before the worker runs
    work_queued_jobs(app)
    command = stations["st-01"].get(timeout=10)
    assert command.kind == "message"
    assert (command.payload["kind"], command.payload["text"], command.payload["thread"]) == (
        "reply", "马上来", help_request["thread"]["id"])
    box = MessageBox(client=lambda: None)  # what the agent's _command does with a "message"
    assert box.pushed(command.payload) is True
    assert [m["text"] for m in box.view(None, None)["thread"]] == ["马上来"]
    assert box.view(None, None)["unread"] == 1
    nothing_for(stations["st-02"])
    nothing_for(stations["st-03"], 0.2)
    assert push_shown(staff, resp.get_json()["id"]) == "delivered"
    with app.app_context():
        pushed = db.session.scalars(select(Event).where(Event.kind == "command_pushed")).one()
        assert pushed.payload["stations"] == ["st-01"] and pushed.payload["delivered"] is True


def test_a_broadcast_reaches_the_sittings_stations_and_not_another(app, stations):
    staff, csrf = sign_in(app)
    resp = staff.post("/staff/broadcasts", data={"sitting": "morning", "text": "第二题更正", "csrf_token": csrf},
                      headers={"Accept": "application/json"})
    assert resp.status_code == 201
    assert resp.get_json()["stations"] == ["st-01", "st-02"] and resp.get_json()["push"] == "sending"
    work_queued_jobs(app)
    for sid in ("st-01", "st-02"):
        command = stations[sid].get(timeout=10)
        assert (command.kind, command.attempt) == ("message", None)
        assert (command.payload["kind"], command.payload["sitting"], command.payload["text"]) == (
            "broadcast", "morning", "第二题更正")
        box = MessageBox(client=lambda: None)
        box.pushed(command.payload)
        assert [b["text"] for b in box.view(None, "morning")["broadcasts"]] == ["第二题更正"]
    nothing_for(stations["st-03"])
    assert push_shown(staff, resp.get_json()["id"]) == "delivered"


def test_a_push_the_broker_refuses_shows_as_not_delivered(app, stations, broker):
    """The worker cannot log in (the broker refuses the edge's login): the panel says so, the station asks."""
    help_request = app.test_client().post("/api/v1/help", json={"reason": "device", "text": "没有声音"},
                                          headers={"Authorization": "Bearer st-01-token"}).get_json()
    staff, csrf = sign_in(app)
    resp = staff.post(f"/staff/help/{help_request['thread']['id']}/reply", data={"text": "稍等", "csrf_token": csrf},
                      headers={"Accept": "application/json"})
    assert resp.status_code == 201 and resp.get_json()["push"] == "sending"
    config = Path(os.environ["EXAMKIOSK_EDGE_CONFIG"])
    config.write_text(config.read_text().replace(USERS["edge"], "a wrong password"))
    forget_job_app()  # the worker reads the configuration again
    work_queued_jobs(app)
    assert push_shown(staff, resp.get_json()["id"]) == "not_delivered"
    nothing_for(stations["st-01"], 0.5)


def test_a_review_decision_reaches_its_station_and_the_attempt_page_says_so(app, stations):
    with app.app_context():
        attempt_id = db.session.scalars(select(Attempt.id).where(Attempt.station_id == "st-01")).one()
    station = app.test_client()
    review = station.post(f"/api/v1/attempts/{attempt_id}/review", json={"best_distance": 0.61},
                          headers={"Authorization": "Bearer st-01-token"}).get_json()
    staff, csrf = sign_in(app)
    resp = staff.post(f"/staff/reviews/{review['id']}", data={"approve": "y", "reason": "matches", "csrf_token": csrf},
                      headers={"Accept": "application/json"})
    assert resp.status_code == 200 and resp.get_json() == {"id": review["id"], "status": "approved", "push": "sending"}
    nothing_for(stations["st-01"], 0.5)
    work_queued_jobs(app)
    command = stations["st-01"].get(timeout=10)
    assert (command.kind, command.attempt, command.payload) == ("review_result", attempt_id,
                                                                {"status": "approved", "reason": "matches"})
    deadline = time.monotonic() + 30
    while "delivered to the station" not in (page := staff.get(f"/staff/attempts/{attempt_id}").get_data(as_text=True)):
        assert time.monotonic() < deadline, "the attempt page never said the decision reached the station"
        time.sleep(0.2)
    assert "not delivered" not in page
    nothing_for(stations["st-02"], 0.2)


def seat_map_push(staff, ticket_no: str) -> tuple[str, str]:
    """What the seat map says of telling the moved candidate's old station: (data-push, the text)."""
    html = staff.get("/staff/sittings/morning/seats").get_data(as_text=True)
    tile = re.search(rf'data-ticket="{ticket_no}">(.*?)</div>\s*(?:<form|</div>)', html, re.S)
    assert tile is not None, f"no seat tile of {ticket_no} on the seat map"
    shown = re.search(r'data-field="move-push" data-push="([a-z_]+)">(.*?)</div>', html[tile.start():], re.S)
    assert shown is not None, f"the seat map says nothing of the move of {ticket_no}"
    return shown.group(1), " ".join(shown.group(2).split())


def test_a_move_tells_the_old_station_and_the_seat_map_shows_whether_it_arrived(app, stations):
    with app.app_context():
        attempt = db.session.scalars(select(Attempt)).one()
        attempt.candidate.station_id = "st-01"  # seated and recording at st-01
        attempt_id, ticket = attempt.id, attempt.candidate.ticket_no
        db.session.commit()
    staff, csrf = sign_in(app)
    resp = staff.post("/staff/sittings/morning/seats", data={"ticket_no": ticket, "station": "st-03", "csrf_token": csrf})
    assert resp.status_code == 302  # queued: the request did not wait for the broker
    assert seat_map_push(staff, ticket) == ("sending", "从 A01 换来： 正在通知旧考位… · telling the old station…")
    nothing_for(stations["st-01"], 0.5)
    work_queued_jobs(app)
    command = stations["st-01"].get(timeout=10)
    assert (command.kind, command.attempt, command.payload) == ("moved", attempt_id, {"to": "Z09", "station": "st-03"})
    state, text = seat_map_push(staff, ticket)
    assert state == "delivered" and "the old station was told to stop" in text
    nothing_for(stations["st-02"], 0.2)

    # The next move cannot be pushed (the broker refuses the worker's login): the seat map says the old
    # station learns it from the API.
    config = Path(os.environ["EXAMKIOSK_EDGE_CONFIG"])
    config.write_text(config.read_text().replace(USERS["edge"], "a wrong password"))
    forget_job_app()
    resp = staff.post("/staff/sittings/morning/seats", data={"ticket_no": ticket, "station": "st-02", "csrf_token": csrf})
    assert resp.status_code == 302
    work_queued_jobs(app)
    state, text = seat_map_push(staff, ticket)
    assert state == "not_delivered" and text.startswith("从 Z09 换来") and "learns it from the API" in text
    nothing_for(stations["st-03"], 0.5)
    with app.app_context():
        pushed = [(e.payload["about"].startswith("move-"), e.payload["stations"], e.payload["delivered"])
                  for e in db.session.scalars(select(Event).where(Event.kind == "command_pushed").order_by(Event.id))]
        assert pushed == [(True, ["st-01"], True), (True, ["st-03"], False)]
