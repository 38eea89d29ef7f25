"""Stations on the broker's TLS listener, pinned to the edge's certificate: a real Mosquitto serving the
edge's own key and certificate, the station's StatusPublisher, and a rogue broker with another
certificate at which the station's login never arrives."""
from __future__ import annotations

import json
import queue
import ssl
import uuid

import pytest

from edge_server.daemon.announce import txt_record
from edge_server.identity import edge_fingerprint
from examkiosk_wire import topics
from examkiosk_wire.pinning import UntrustedBroker, pinned_tls_context
from examkiosk_wire.topics import StationStatus
from station.link import StatusPublisher
from tests.services import MqttProbe, edge_settings, start_mosquitto, wait_for

CENTRE = "c-tls"
USERS = {"edge": "edge-secret", "st-01": "pw-one"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """The edge's settings (its certificate) and its broker, TLS for stations, plain for the edge."""
    tmp = tmp_path_factory.mktemp("tls-edge")
    settings = edge_settings(tmp, centre=CENTRE)
    fp = edge_fingerprint(settings)
    broker = start_mosquitto(tmp / "broker", CENTRE, USERS, tls_pem=settings.tls_path)
    try:
        yield {"settings": settings, "fp": fp, "broker": broker}
    finally:
        broker.stop()


@pytest.fixture
def rogue(tmp_path):
    """Another broker that serves TLS with a certificate of its own and takes the station's login."""
    tmp = tmp_path / "rogue"
    settings = edge_settings(tmp, centre=CENTRE)
    edge_fingerprint(settings)  # makes its own, different certificate
    broker = start_mosquitto(tmp / "broker", CENTRE, USERS, tls_pem=settings.tls_path)
    try:
        yield broker
    finally:
        broker.stop()


def publisher(port: int, fp: str | None, commands: queue.Queue | None = None) -> StatusPublisher:
    return StatusPublisher("127.0.0.1", port, "st-01", USERS["st-01"], CENTRE, "st-01", keepalive=5,
                           version="test", on_command=commands.put if commands is not None else None, tls=True,
                           fingerprint=fp)


def test_a_pinned_station_talks_to_its_edge_over_tls(edge):
    broker = edge["broker"]
    commands: queue.Queue = queue.Queue()
    station = publisher(broker.tls_port, edge["fp"], commands)
    watcher = MqttProbe(broker.port, "edge", USERS["edge"])  # the edge's own clients: the plain listener
    try:
        assert not watcher.connect().is_failure
        watcher.subscribe(topics.status_topic(CENTRE, "st-01"))
        station.start()
        assert station.wait_connected(10), broker.log()
        assert isinstance(station._client.socket(), ssl.SSLSocket)
        station.publish_status(StationStatus(station="st-01", online=True, version="test")).wait_for_publish(5)
        seen = watcher.expect(lambda m: json.loads(m.payload).get("online") is True)
        assert json.loads(seen.payload)["station"] == "st-01"
        nonce = uuid.uuid4().hex
        wait_for(lambda: not watcher.publish(topics.cmd_topic(CENTRE, "st-01"),
                                             topics.StationCommand(kind="ping", payload={"n": nonce}).to_json())
                 .is_failure and _got(commands, nonce), timeout=5, message="a command reaches the station")
    finally:
        station.stop(timeout=1)
        watcher.close()


def test_the_tls_listener_takes_no_plain_mqtt(edge):
    with MqttProbe(edge["broker"].tls_port, "st-01", USERS["st-01"]) as plain:
        with pytest.raises(TimeoutError):
            plain.connect(timeout=2)  # no CONNACK: the login is never read in clear


def test_a_station_refuses_a_broker_with_another_certificate(edge, rogue):
    station = publisher(rogue.tls_port, edge["fp"])
    try:
        station.start()
        assert not station.wait_connected(2)
    finally:
        station.stop(timeout=0.5)
    rogue.stop()  # its log is complete once it has stopped
    # The rogue saw connections (TLS handshakes), never the station's CONNECT (user name and password).
    assert "New connection from 127.0.0.1" in rogue.log()
    assert "st-01" not in rogue.log()
    # The same station trusts its own edge.
    honest = publisher(edge["broker"].tls_port, edge["fp"])
    try:
        honest.start()
        assert honest.wait_connected(10)
    finally:
        honest.stop(timeout=0.5)


def test_the_pinned_context_checks_the_fingerprint_in_the_handshake(edge, rogue):
    import socket

    for port, ok in ((edge["broker"].tls_port, True), (rogue.tls_port, False)):
        context = pinned_tls_context(edge["fp"])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            if ok:
                with context.wrap_socket(raw) as tls:
                    assert tls.version() in ("TLSv1.2", "TLSv1.3")
            else:
                with pytest.raises(UntrustedBroker, match="not the pinned one"):
                    context.wrap_socket(raw)
    with pytest.raises(ValueError):
        pinned_tls_context("not-a-fingerprint")


def test_the_announcement_and_the_enrolment_point_stations_at_the_tls_listener(tmp_path):
    settings = edge_settings(tmp_path, mqtt={"host": "127.0.0.1", "port": 1883, "tls_port": 8883, "password": "x"})
    record = txt_record(settings, "ab")
    assert (record["mqtt"], record["mqtt_tls"]) == (":8883", "1")
    plain = edge_settings(tmp_path, mqtt={"host": "10.0.0.2", "port": 1883, "password": "x"})
    assert txt_record(plain, "ab")["mqtt"] == "10.0.0.2:1883" and "mqtt_tls" not in txt_record(plain, "ab")


def _got(commands: queue.Queue, nonce: str) -> bool:
    try:
        while True:
            if commands.get(timeout=0.5).payload.get("n") == nonce:
                return True
    except queue.Empty:
        return False
