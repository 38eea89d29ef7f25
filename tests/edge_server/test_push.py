"""Edge → station commands over a private Mosquitto with our password/ACL files (MQTT v5)."""
from __future__ import annotations

import queue

import pytest

from edge_server.services.push import push_to_station, push_to_stations
from examkiosk_wire.topics import StationCommand, cmd_topic
from station.link import StatusPublisher
from tests.edge_server.conftest import make_settings
from tests.services import MqttProbe, free_port, start_mosquitto

CENTRE = "c-push"
USERS = {"edge": "edge-secret", "st-01": "pw-one", "st-02": "pw-two"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    proc = start_mosquitto(tmp_path_factory.mktemp("push-broker"), CENTRE, USERS)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def settings(broker, tmp_path):
    return make_settings(f"sqlite:///{tmp_path / 'edge.db'}", tmp_path, centre=CENTRE,
                         mqtt={"host": "127.0.0.1", "port": broker.port, "username": "edge",
                               "password": USERS["edge"]})


@pytest.fixture
def station(broker):
    received: queue.Queue[StationCommand] = queue.Queue()
    publisher = StatusPublisher("127.0.0.1", broker.port, "st-01", USERS["st-01"], CENTRE, "st-01",
                                on_command=received.put)
    publisher.start()
    assert publisher.wait_connected(10)
    try:
        yield publisher, received
    finally:
        publisher.stop()


def listening(broker, received: queue.Queue) -> None:
    """The station subscribes right after connecting: ping it until a ping comes through."""
    with MqttProbe(broker.port, "edge", USERS["edge"]) as edge:
        assert not edge.connect().is_failure
        for _ in range(50):
            edge.publish(cmd_topic(CENTRE, "st-01"), StationCommand(kind="ping", attempt="none").to_json())
            try:
                if received.get(timeout=0.2).kind == "ping":
                    break
            except queue.Empty:
                continue
        else:
            raise AssertionError("the station never received a command")
    while True:  # pings still on their way
        try:
            assert received.get(timeout=0.3).kind == "ping"
        except queue.Empty:
            return


def test_a_pushed_review_decision_reaches_its_station(station, settings, broker) -> None:
    publisher, received = station
    listening(broker, received)
    assert push_to_station(settings, "st-01", "review_result", {"status": "approved", "reason": "ok"}, attempt="a-1")
    command = received.get(timeout=10)
    assert (command.kind, command.attempt, command.payload) == ("review_result", "a-1",
                                                                {"status": "approved", "reason": "ok"})
    assert command.ts > 0


def test_a_push_to_another_station_is_not_seen(station, settings, broker) -> None:
    publisher, received = station
    listening(broker, received)
    assert push_to_station(settings, "st-02", "review_result", {"status": "rejected"}, attempt="a-2")
    assert push_to_station(settings, "st-01", "review_result", {"status": "rejected"}, attempt="a-1")
    command = received.get(timeout=10)
    assert command.attempt == "a-1", "st-01 got st-02's command"


def test_a_malformed_command_is_ignored(station, settings, broker) -> None:
    publisher, received = station
    listening(broker, received)
    with MqttProbe(broker.port, "edge", USERS["edge"]) as edge:
        assert not edge.connect().is_failure
        edge.publish(cmd_topic(CENTRE, "st-01"), b"{not json")
        edge.publish(cmd_topic(CENTRE, "st-01"), b'{"kind": 5}')
        edge.publish(cmd_topic(CENTRE, "st-01"), StationCommand(kind="after", attempt="x").to_json())
    assert received.get(timeout=10).kind == "after"
    assert received.empty()


def test_no_broker_is_a_logged_false_not_an_error(tmp_path, caplog) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'edge.db'}", tmp_path, centre=CENTRE,
                             mqtt={"host": "127.0.0.1", "port": free_port(), "username": "edge", "password": "x"})
    assert push_to_station(settings, "st-01", "review_result", {"status": "approved"}, attempt="a-1") is False
    assert "will ask the API" in caplog.text


def test_a_wrong_edge_password_is_a_false(broker, tmp_path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'edge.db'}", tmp_path, centre=CENTRE,
                             mqtt={"host": "127.0.0.1", "port": broker.port, "username": "edge", "password": "nope"})
    assert push_to_station(settings, "st-01", "review_result", {"status": "approved"}, attempt="a-1") is False


def test_a_broadcast_with_a_refused_login_is_not_pushed(station, broker, tmp_path, caplog) -> None:
    publisher, received = station
    listening(broker, received)
    settings = make_settings(f"sqlite:///{tmp_path / 'edge.db'}", tmp_path, centre=CENTRE,
                             mqtt={"host": "127.0.0.1", "port": broker.port, "username": "edge", "password": "nope"})
    assert push_to_stations(settings, ["st-01", "st-02"], "paper_key", {"sitting": "s"}) is False
    assert "refused the login" in caplog.text
    assert received.empty()


def test_a_publish_the_broker_refuses_is_not_pushed(station, broker, tmp_path, caplog) -> None:
    """A login that works but may not write the topic (the ACL refuses it, MQTT v5 says so)."""
    publisher, received = station
    listening(broker, received)
    as_station = make_settings(f"sqlite:///{tmp_path / 'edge.db'}", tmp_path, centre=CENTRE,
                               mqtt={"host": "127.0.0.1", "port": broker.port, "username": "st-02",
                                     "password": USERS["st-02"]})
    assert push_to_stations(as_station, ["st-01"], "paper_key", {"sitting": "s"}) is False
    assert "refused 1 command" in caplog.text
    assert received.empty()


def test_a_broadcast_reaches_every_station(station, settings, broker) -> None:
    publisher, received = station
    listening(broker, received)
    assert push_to_stations(settings, ["st-02", "st-01"], "paper_key", {"sitting": "s"}) is True
    assert received.get(timeout=10).payload == {"sitting": "s"}
