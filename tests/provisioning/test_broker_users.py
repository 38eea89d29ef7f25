"""Station users on a real Mosquitto: added and removed in the password file, the broker reloaded at
the pid it wrote; a removed (revoked) station is disconnected at once and cannot come back."""
from __future__ import annotations

import json
import os
import queue
import stat
import uuid

import pytest

from edge_server.services import broker as broker_service
from edge_server.services.broker import BrokerError, BrokerFiles, cut_off_station
from provisioning.mqtt import conf_text, password_file_users, remove_station_user, write_broker_files
from station import topics
from station.link import StatusPublisher
from station.topics import StationStatus
from tests.services import MqttProbe, edge_settings, wait_for

CENTRE = "c-users"
USERS = {"edge": "edge-secret", "st-01": "pw-one"}


@pytest.fixture
def broker(mosquitto_factory):
    broker = mosquitto_factory(CENTRE, USERS)
    wait_for(broker.pid_file.exists, timeout=5, message="mosquitto wrote its pid file")
    return broker


@pytest.fixture
def files(broker) -> BrokerFiles:
    return BrokerFiles(password_file=broker.password_file, pid_file=broker.pid_file)


def connack(broker, user: str, password: str):
    probe = MqttProbe(broker.port, user, password)
    try:
        return probe.connect()
    finally:
        probe.close()


def test_the_broker_writes_its_pid_where_the_config_says(broker, tmp_path):
    assert int(broker.pid_file.read_text()) == broker.proc.pid
    assert f"pid_file {broker.pid_file}" in broker.conf.read_text()
    assert broker_service.broker_pid(broker.pid_file) == broker.proc.pid
    if os.geteuid() == 0:  # Mosquitto writes it after dropping to its own user
        assert broker.pid_file.parent.stat().st_uid != 0
    assert "pid_file" not in conf_text(port=1883, bind="127.0.0.1", password_file=tmp_path / "p",
                                       acl_file=tmp_path / "a")


def test_password_file_edits(tmp_path):
    write_broker_files(tmp_path / "b", port=18830, centre="c9", users={"edge": "e", "st-01": "p", "st-02": "q"})
    passwd = tmp_path / "b" / "passwd"
    assert password_file_users(passwd) == ["edge", "st-01", "st-02"]
    assert remove_station_user(passwd, "st-01") is True
    assert remove_station_user(passwd, "st-01") is False
    assert password_file_users(passwd) == ["edge", "st-02"]
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    with pytest.raises(ValueError):
        remove_station_user(passwd, "../edge")


def test_an_added_user_logs_in_and_a_removed_one_is_dropped(broker, files):
    assert connack(broker, "st-05", "pw-five").is_failure  # not a user yet
    broker_service.add_user(files, "st-05", "pw-five")
    wait_for(lambda: not connack(broker, "st-05", "pw-five").is_failure, timeout=5, message="st-05 logs in")

    five = MqttProbe(broker.port, "st-05", "pw-five")
    one = MqttProbe(broker.port, "st-01", USERS["st-01"])
    dropped: queue.Queue = queue.Queue()
    try:
        assert not five.connect().is_failure and not one.connect().is_failure
        five.client.on_disconnect = lambda c, u, flags, rc, props: dropped.put(rc)
        assert broker_service.remove_user(files, "st-05") is True
        dropped.get(timeout=5)  # the reload disconnects the connected client whose user is gone
        assert connack(broker, "st-05", "pw-five").is_failure
        # Everyone else stays connected and may publish.
        assert one.client.is_connected()
        assert not one.publish(topics.event_topic(CENTRE, "st-01"), b"{}").is_failure
    finally:
        five.close()
        one.close()
    assert password_file_users(broker.password_file) == ["edge", "st-01"]


def test_a_stale_or_missing_pid_file_is_refused_before_anything_changes(broker, tmp_path):
    before = broker.password_file.read_text()
    stale = tmp_path / "stale.pid"
    stale.write_text(f"{os.getpid()}\n")  # a live process, but not Mosquitto
    with pytest.raises(BrokerError, match="not mosquitto"):
        broker_service.add_user(BrokerFiles(broker.password_file, stale), "st-06", "pw")
    with pytest.raises(BrokerError, match="does not exist"):
        broker_service.add_user(BrokerFiles(broker.password_file, tmp_path / "missing.pid"), "st-06", "pw")
    assert broker.password_file.read_text() == before


def test_revoking_cuts_a_real_station_client_off(broker, tmp_path):
    """What the staff revoke action does on the MQTT side, seen by the station's own StatusPublisher."""
    settings = edge_settings(tmp_path, centre=CENTRE, mqtt={
        "host": "127.0.0.1", "port": broker.port, "username": "edge", "password": USERS["edge"],
        "password_file": str(broker.password_file), "pid_file": str(broker.pid_file)})
    commands: queue.Queue = queue.Queue()
    station = StatusPublisher("127.0.0.1", broker.port, "st-01", USERS["st-01"], CENTRE, "st-01", keepalive=5,
                              version="test", on_command=commands.put)
    edge = MqttProbe(broker.port, "edge", USERS["edge"])
    try:
        assert not edge.connect().is_failure
        edge.subscribe(topics.status_topic(CENTRE, "st-01"))
        station.start()
        assert station.wait_connected(10)
        station.publish_status(StationStatus(station="st-01", online=True, version="test")).wait_for_publish(5)
        edge.expect(lambda m: json.loads(m.payload)["online"] is True)
        # The subscription to the cmd topic is in place once a command sent now arrives.
        nonce = uuid.uuid4().hex
        from edge_server.services.push import push_to_station

        wait_for(lambda: push_to_station(settings, "st-01", "ping", {"n": nonce}) and _got(commands, "ping"),
                 timeout=5, message="the station receives commands")

        cut = cut_off_station(settings, "st-01")
        assert (cut.notified, cut.removed, cut.reloaded, cut.problem) == (True, True, True, "")
        assert _got(commands, "revoked", timeout=5).payload == {"station": "st-01"}
        # Dropped by the broker, and paho's reconnects are refused; its retained status says revoked.
        wait_for(lambda: not station.connected, timeout=5, message="the station is disconnected")
        status = edge.expect(lambda m: json.loads(m.payload)["online"] is False, timeout=5)
        assert json.loads(status.payload)["state"] == "revoked"
        with MqttProbe(broker.port, "edge", USERS["edge"]) as late:  # what a bridge starting now reads
            assert not late.connect().is_failure
            late.subscribe(topics.status_topic(CENTRE, "st-01"))
            retained = late.expect(lambda m: m.retain, timeout=5)
            assert json.loads(retained.payload)["state"] == "revoked"
        assert connack(broker, "st-01", USERS["st-01"]).is_failure
        assert not station.connected and not station.wait_connected(2.5)  # its own reconnects fail too
    finally:
        station.stop(timeout=0.5)
        edge.close()
    assert "st-01" not in password_file_users(broker.password_file)


def _got(commands: queue.Queue, kind: str, timeout: float = 0.5):
    try:
        while True:
            command = commands.get(timeout=timeout)
            if command.kind == kind:
                return command
    except queue.Empty:
        return None
