"""Station users on a real Mosquitto through its dynamic-security plugin: the edge (its admin) adds
and removes them while the broker runs; a removed (revoked) station is disconnected at once and
cannot come back; an edge that is not the admin, or a broker without the plugin, is a clear error."""
from __future__ import annotations

import json
import queue
import shutil
import subprocess
import uuid

import pytest

from edge_server.services import broker as broker_service
from edge_server.services.broker import BrokerError, cut_off_station
from edge_server.services.push import push_to_station
from examkiosk_wire import topics
from examkiosk_wire.broker import conf_text, dynsec_config, station_role
from examkiosk_wire.topics import StationStatus
from station.link import StatusPublisher
from tests.services import START_TIMEOUT, MqttProbe, broker_files_dir, edge_settings, free_port, wait_for, wait_port

CENTRE = "c-users"
USERS = {"edge": "edge-secret", "st-01": "pw-one"}


@pytest.fixture
def broker(mosquitto_factory):
    return mosquitto_factory(CENTRE, USERS)


@pytest.fixture
def settings(broker, tmp_path):
    return edge_settings(tmp_path, centre=CENTRE, mqtt={
        "host": "127.0.0.1", "port": broker.port, "username": "edge", "password": USERS["edge"]})


def connack(broker, user: str, password: str):
    probe = MqttProbe(broker.port, user, password)
    try:
        return probe.connect()
    finally:
        probe.close()


def test_the_plugin_file_holds_hashes_and_one_role_per_station(tmp_path):
    config = dynsec_config("c9", {"edge": "e-pass", "st-01": "p-pass"})
    text = json.dumps(config)
    assert "e-pass" not in text and "p-pass" not in text
    clients = {c["username"]: {r["rolename"] for r in c["roles"]} for c in config["clients"]}
    assert clients == {"edge": {"examkiosk-edge"}, "st-01": {station_role("st-01"), "examkiosk-stations"}}
    own = {r["rolename"]: r["acls"] for r in config["roles"]}[station_role("st-01")]
    assert {(a["acltype"], a["topic"]) for a in own} == {
        ("publishClientSend", "examkiosk/c9/station/st-01/#"),
        ("subscribePattern", "examkiosk/c9/station/st-01/cmd"),
        ("publishClientReceive", "examkiosk/c9/station/st-01/cmd")}
    assert not any(config["defaultACLAccess"][k] for k in ("publishClientSend", "publishClientReceive", "subscribe"))
    with pytest.raises(ValueError):
        dynsec_config("c9", {"st-01": "p"})  # no edge
    with pytest.raises(ValueError):
        dynsec_config("c9", {"edge": "e", "bad/user": "x"})
    assert "persistence" not in conf_text(port=1883, bind="0.0.0.0", dynsec_file=tmp_path / "d.json",
                                          standalone=False)


def test_an_added_user_logs_in_with_its_own_rights_and_a_removed_one_is_dropped(broker, settings):
    assert connack(broker, "st-05", "pw-five").is_failure  # not a user yet
    broker_service.add_user(settings, "st-05", "pw-five")
    assert "st-05" in broker_service.station_users(settings)
    five = MqttProbe(broker.port, "st-05", "pw-five")
    one = MqttProbe(broker.port, "st-01", USERS["st-01"])
    dropped: queue.Queue = queue.Queue()
    try:
        assert not five.connect().is_failure and not one.connect().is_failure
        assert not five.publish(topics.event_topic(CENTRE, "st-05"), b"{}").is_failure
        assert five.publish(topics.event_topic(CENTRE, "st-01"), b"{}").is_failure  # not its own topic
        five.client.on_disconnect = lambda c, u, flags, rc, props: dropped.put(rc)
        assert broker_service.remove_user(settings, "st-05") is True
        wait_for(lambda: not dropped.empty(), START_TIMEOUT, "the broker dropping the deleted user's connection",
                 [broker.log_path])  # deleting the client disconnects it
        assert connack(broker, "st-05", "pw-five").is_failure
        assert broker_service.remove_user(settings, "st-05") is False  # already gone
        # Everyone else stays connected and may publish.
        assert one.client.is_connected()
        assert not one.publish(topics.event_topic(CENTRE, "st-01"), b"{}").is_failure
    finally:
        five.close()
        one.close()
    assert set(broker_service.station_users(settings)) == {"edge", "st-01"}
    # The broker keeps its file up to date: a restart would know the same users.
    wait_for(lambda: set(broker.dynsec_users()) == {"edge", "st-01"}, START_TIMEOUT, "the broker saving its users",
             [broker.log_path, broker.dynsec_file])


def test_an_existing_user_is_not_overwritten(broker, settings):
    with pytest.raises(BrokerError, match="already exists"):
        broker_service.add_user(settings, "st-01", "another password")
    assert not connack(broker, "st-01", USERS["st-01"]).is_failure


def test_an_edge_that_cannot_manage_users_gets_a_clear_error(broker, settings):
    with pytest.raises(BrokerError, match="refused the edge's login"):
        broker_service.add_user(settings.model_copy(update={"mqtt": settings.mqtt.model_copy(
            update={"password": "wrong"})}), "st-06", "pw")
    as_station = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(
        update={"username": "st-01", "password": USERS["st-01"]})})
    with pytest.raises(BrokerError, match="dynamic-security plugin"):
        broker_service.add_user(as_station, "st-06", "pw")
    with pytest.raises(BrokerError, match="cannot reach"):
        broker_service.station_users(settings.model_copy(update={"mqtt": settings.mqtt.model_copy(
            update={"port": free_port()})}))
    assert connack(broker, "st-06", "pw").is_failure


def test_a_broker_without_the_plugin_is_named(tmp_path):
    port = free_port()
    conf = tmp_path / "plain.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.1", port, proc=proc)
        plain = edge_settings(tmp_path, centre=CENTRE, mqtt={"host": "127.0.0.1", "port": port, "username": ""})
        with pytest.raises(BrokerError, match="did not answer"):
            broker_service.control(plain, [{"command": "listClients"}], timeout=1.5)
    finally:
        proc.terminate()
        proc.wait(10)


def test_broker_config_sets_up_a_system_mosquitto(tmp_path, settings):
    """``flask broker-config`` as an IT person runs it on a new edge: a conf.d file beside Debian's own
    mosquitto.conf and the plugin's file; after the broker starts, ``--check`` works, the edge has a
    loopback listener and stations a TLS one with the edge's certificate."""
    from edge_server import create_app
    from edge_server.identity import edge_fingerprint

    port, tls_port = free_port(), free_port()
    mine = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"port": port, "tls_port": tls_port})})
    app = create_app(mine)
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    state, remove_state = broker_files_dir(tmp_path)  # where the broker's own user can reach it
    dynsec = state / "examkiosk" / "dynamic-security.json"
    main = tmp_path / "mosquitto.conf"  # as Debian's: its own logging and persistence, no include yet
    main.write_text("persistence false\nlog_dest stdout\n")
    runner = app.test_cli_runner()
    args = ["broker-config", "--conf-file", str(conf_d / "examkiosk.conf"), "--dynsec-file", str(dynsec),
            "--bind", "127.0.0.1", "--main-conf", str(main)]
    early = runner.invoke(args=args)  # before the web unit made the edge's certificate
    assert early.exit_code != 0 and "does not exist yet" in early.output
    assert not dynsec.exists() and not (conf_d / "examkiosk.conf").exists()  # nothing half-done
    fp = edge_fingerprint(mine)
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "made with the edge as admin" in result.output and USERS["edge"] not in dynsec.read_text()
    assert f"has no 'include_dir {conf_d}'" in result.output
    assert f"listener {port} 127.0.0.1\nlistener {tls_port} 127.0.0.1\n" in (conf_d / "examkiosk.conf").read_text()
    main.write_text(f"persistence false\nlog_dest stdout\ninclude_dir {conf_d}\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(main)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.1", port, proc=proc)
        wait_port("127.0.0.1", tls_port, proc=proc)
        check = runner.invoke(args=["broker-config", "--check"])
        assert check.exit_code == 0 and "1 user(s)" in check.output, check.output
        broker_service.add_user(mine, "st-01", "pw-one")
        station = StatusPublisher("127.0.0.1", tls_port, "st-01", "pw-one", CENTRE, "st-01", tls=True, fingerprint=fp)
        try:
            station.start()
            assert station.wait_connected(START_TIMEOUT), "st-01 did not connect to the broker's TLS listener"
        finally:
            station.stop(timeout=0.5)
        # Run again (say after an upgrade): the enrolled station stays.
        again = runner.invoke(args=args)
        assert again.exit_code == 0 and "kept" in again.output and "warning" not in again.output
        wait_for(lambda: "st-01" in dynsec.read_text(), START_TIMEOUT, "the broker saving the new user", [dynsec])
    finally:
        proc.terminate()
        proc.wait(10)
        if remove_state:
            shutil.rmtree(state, ignore_errors=True)
    wrong = create_app(mine.model_copy(update={"mqtt": mine.mqtt.model_copy(update={"port": free_port()})}))
    failed = wrong.test_cli_runner().invoke(args=["broker-config", "--check"])
    assert failed.exit_code != 0 and "cannot reach the MQTT broker" in failed.output
    plain = create_app(settings).test_cli_runner().invoke(args=[
        "broker-config", "--conf-file", str(tmp_path / "plain.conf"), "--dynsec-file", str(tmp_path / "p" / "d.json"),
        "--main-conf", str(main)])
    assert plain.exit_code == 0 and "cross the LAN in clear" in plain.output
    assert f"listener {settings.mqtt.port} 0.0.0.0\n" in (tmp_path / "plain.conf").read_text()


def test_revoking_cuts_a_real_station_client_off(broker, settings):
    """What the staff revoke action does on the MQTT side, seen by the station's own StatusPublisher."""
    commands: queue.Queue = queue.Queue()
    station = StatusPublisher("127.0.0.1", broker.port, "st-01", USERS["st-01"], CENTRE, "st-01", keepalive=5,
                              version="test", on_command=commands.put)
    edge = MqttProbe(broker.port, "edge", USERS["edge"])
    try:
        assert not edge.connect().is_failure
        edge.subscribe(topics.status_topic(CENTRE, "st-01"))
        station.start()
        assert station.wait_connected(START_TIMEOUT), broker.log()
        station.publish_status(StationStatus(station="st-01", online=True, version="test")).wait_for_publish(
            START_TIMEOUT)
        edge.expect(lambda m: json.loads(m.payload)["online"] is True, what="st-01's online status")
        # The subscription to the cmd topic is in place once a command sent now arrives.
        nonce = uuid.uuid4().hex
        wait_for(lambda: push_to_station(settings, "st-01", "ping", {"n": nonce}) and _got(commands, "ping"),
                 START_TIMEOUT, "the station receiving commands", [broker.log_path])

        cut = cut_off_station(settings, "st-01")
        assert (cut.notified, cut.removed, cut.problem) == (True, True, "")
        revoked = _got(commands, "revoked", timeout=START_TIMEOUT)
        assert revoked is not None, f"no revoked command reached the station\n{broker.log()[-3000:]}"
        assert revoked.payload == {"station": "st-01"}
        # Dropped by the broker, and paho's reconnects are refused; its retained status says revoked.
        wait_for(lambda: not station.connected, START_TIMEOUT, "the broker disconnecting the station",
                 [broker.log_path])
        status = edge.expect(lambda m: json.loads(m.payload)["online"] is False, what="st-01's offline status")
        assert json.loads(status.payload)["state"] == "revoked"
        with MqttProbe(broker.port, "edge", USERS["edge"]) as late:  # what a bridge starting now reads
            assert not late.connect().is_failure
            late.subscribe(topics.status_topic(CENTRE, "st-01"))
            retained = late.expect(lambda m: m.retain, what="st-01's retained status")
            assert json.loads(retained.payload)["state"] == "revoked"
        assert connack(broker, "st-01", USERS["st-01"]).is_failure
        assert not station.connected and not station.wait_connected(2.5)  # its own reconnects fail too
    finally:
        station.stop(timeout=0.5)
        edge.close()
    assert "st-01" not in broker_service.station_users(settings)


def test_revoking_with_the_broker_down_says_so(settings):
    down = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"port": free_port()})})
    cut = cut_off_station(down, "st-01")
    assert (cut.notified, cut.removed) == (False, False) and "cannot reach" in cut.problem


def _got(commands: queue.Queue, kind: str, timeout: float = 0.5):
    try:
        while True:
            command = commands.get(timeout=timeout)
            if command.kind == kind:
                return command
    except queue.Empty:
        return None
