"""Replies and broadcasts pushed over a private Mosquitto (our password/ACL files, MQTT v5) reach the
right stations' StatusPublishers, and only those; the station's MessageBox takes the pushed message."""
from __future__ import annotations

import queue
import re
import uuid

import pytest

from edge_server import create_app
from edge_server.extensions import db
from edge_server.models import StaffRole
from edge_server.services.staff import create_user
from examkiosk_wire.topics import StationCommand, cmd_topic
from station.link import StatusPublisher
from station.messages import MessageBox
from tests.edge_server.conftest import dispose_app, make_settings
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
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
def app(broker, db_url, tmp_path):
    """st-01 holds an attempt of the sitting, st-02 has the seat of its other candidate, st-03 neither."""
    settings = make_settings(db_url, tmp_path / "data", centre=CENTRE,
                             mqtt={"host": "127.0.0.1", "port": broker.port, "username": "edge",
                                   "password": USERS["edge"]})
    app = create_app(settings)
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
        dispose_app(app)


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
    assert resp.status_code == 201 and resp.get_json()["pushed"] is True
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


def test_a_broadcast_reaches_the_sittings_stations_and_not_another(app, stations):
    staff, csrf = sign_in(app)
    resp = staff.post("/staff/broadcasts", data={"sitting": "morning", "text": "第二题更正", "csrf_token": csrf},
                      headers={"Accept": "application/json"})
    assert resp.status_code == 201
    assert resp.get_json()["stations"] == ["st-01", "st-02"] and resp.get_json()["pushed"] is True
    for sid in ("st-01", "st-02"):
        command = stations[sid].get(timeout=10)
        assert (command.kind, command.attempt) == ("message", None)
        assert (command.payload["kind"], command.payload["sitting"], command.payload["text"]) == (
            "broadcast", "morning", "第二题更正")
        box = MessageBox(client=lambda: None)
        box.pushed(command.payload)
        assert [b["text"] for b in box.view(None, "morning")["broadcasts"]] == ["第二题更正"]
    nothing_for(stations["st-03"])
