"""examkiosk_wire.broker against a private Mosquitto: passwords, each station's rights and the last will (MQTT v5)."""
from __future__ import annotations

import json
import stat
import uuid

import pytest

from examkiosk_wire import topics
from examkiosk_wire.broker import DYNSEC_NAME, write_broker_files
from tests.services import MqttProbe, start_mosquitto, start_station

USERS = {"edge": "edge-secret", "st-01": "pw-one", "st-02": "pw-two"}
CENTRE = "c-acl"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    proc = start_mosquitto(tmp_path_factory.mktemp("acl-broker"), CENTRE, USERS)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def edge(broker):
    probe = MqttProbe(broker.port, "edge", USERS["edge"])
    try:
        assert not probe.connect().is_failure
        assert not any(rc.is_failure for rc in probe.subscribe(f"examkiosk/{CENTRE}/#"))
        yield probe
    finally:
        probe.close()


@pytest.fixture
def st01(broker):
    probe = MqttProbe(broker.port, "st-01", USERS["st-01"])
    try:
        assert not probe.connect().is_failure
        yield probe
    finally:
        probe.close()


def test_files(tmp_path):
    conf = write_broker_files(tmp_path / "b", port=18830, centre="c9", users={"edge": "e", "st-01": "p"})
    text = conf.read_text()
    assert "listener 18830 127.0.0.1" in text and "allow_anonymous false" in text and "persistence false" in text
    dynsec = tmp_path / "b" / DYNSEC_NAME
    assert f"plugin_opt_config_file {dynsec}" in text and "mosquitto_dynamic_security.so" in text
    users = {c["username"]: c for c in json.loads(dynsec.read_text())["clients"]}
    assert set(users) == {"edge", "st-01"} and '"p"' not in dynsec.read_text()  # hashed
    assert stat.S_IMODE(dynsec.stat().st_mode) == 0o600
    assert stat.S_IMODE(dynsec.parent.stat().st_mode) == 0o700  # the broker's to rewrite
    with pytest.raises(ValueError):
        write_broker_files(tmp_path / "c", port=18830, centre="c9", users={"edge": "e", "bad/user": "x"})


def test_station_publishes_its_own_status(edge, st01):
    topic = topics.status_topic(CENTRE, "st-01")
    rc = st01.publish(topic, b'{"station": "st-01", "online": true}')
    assert not rc.is_failure
    msg = edge.expect(lambda m: m.topic == topic)
    assert json.loads(msg.payload)["online"] is True


def test_station_cannot_write_as_another_station(edge, st01):
    foreign = topics.status_topic(CENTRE, "st-02")
    rc = st01.publish(foreign, b'{"station": "st-02", "online": false}')
    assert rc.is_failure and rc.value >= 0x80  # 0x87 Not authorized
    rc = st01.publish(topics.sitting_control_topic(CENTRE, "s1"), b'{"cmd": "start"}')
    assert rc.value >= 0x80
    # A marker from the same client arrives after anything published before it.
    marker = topics.event_topic(CENTRE, "st-01")
    nonce = uuid.uuid4().hex.encode()
    assert not st01.publish(marker, nonce).is_failure
    seen = []
    edge.expect(lambda m: seen.append(m) or (m.topic == marker and m.payload == nonce))
    assert not [m for m in seen if m.topic in (foreign, topics.sitting_control_topic(CENTRE, "s1"))]


def test_station_reads_its_commands_and_sitting_control_only(broker, edge, st01):
    assert not any(rc.is_failure for rc in st01.subscribe(topics.cmd_topic(CENTRE, "st-01")))
    assert not any(rc.is_failure for rc in st01.subscribe(f"examkiosk/{CENTRE}/sitting/#"))
    st01.subscribe(topics.cmd_topic(CENTRE, "st-02"))  # Mosquitto may grant it; delivery is checked
    assert not edge.publish(topics.cmd_topic(CENTRE, "st-02"), b"secret-for-st-02").is_failure
    assert not edge.publish(topics.cmd_topic(CENTRE, "st-01"), b"for-st-01").is_failure
    assert not edge.publish(topics.sitting_control_topic(CENTRE, "s1"), b"start").is_failure
    got = [st01.expect(lambda m: True).payload for _ in range(2)]
    assert sorted(got) == [b"for-st-01", b"start"]
    assert all(m.payload != b"secret-for-st-02" for m in st01.drain())


def test_wrong_password_and_anonymous_are_refused(broker):
    with MqttProbe(broker.port, "st-01", "not-the-password") as probe:
        assert probe.connect().is_failure
    with MqttProbe(broker.port, "nobody", "x") as probe:
        assert probe.connect().is_failure
    with MqttProbe(broker.port) as probe:
        assert probe.connect().is_failure


def test_last_will_marks_a_dead_station_offline(broker, edge):
    topic = topics.status_topic(CENTRE, "st-02")
    station = start_station(broker.port, "st-02", USERS["st-02"], CENTRE, "st-02", status={"state": "waiting"})
    try:
        online = edge.expect(lambda m: m.topic == topic and json.loads(m.payload)["online"])
        assert json.loads(online.payload)["state"] == "waiting"
        station.kill()  # no DISCONNECT: the socket just dies
        offline = edge.expect(lambda m: m.topic == topic, timeout=30, what="the last will (offline status) of st-02")
        assert json.loads(offline.payload)["online"] is False
    finally:
        station.kill()
    # Retained: a late subscriber sees the station offline.
    with MqttProbe(broker.port, "edge", USERS["edge"]) as late:
        assert not late.connect().is_failure
        late.subscribe(topic)
        msg = late.expect(lambda m: m.topic == topic)
        assert msg.retain and json.loads(msg.payload)["online"] is False
