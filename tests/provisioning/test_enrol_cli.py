"""``examkiosk-provision enrol`` end to end, on real parts: the edge app on a real HTTPS socket with
its own certificate, its zeroconf announcer and a rogue announcer (another fingerprint, same centre,
its own HTTPS server and certificate) each in a process of its own on 127.0.0.1, a real Mosquitto
whose users the edge manages, and the CLI in a process too.

The tests run in file order: the second last one stops the real announcer, the last one starts a
copycat that announces the real edge's fingerprint for the rogue's server.
"""
from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from edge_server.identity import edge_fingerprint
from provisioning.enrol import clock_skew, render_toml
from station.config import load_settings as load_station_settings
from station.link import EdgeClient, EdgeUntrusted, StatusPublisher
from tests.services import REPO, START_TIMEOUT, edge_settings, migrate_database, start_mosquitto, stop_process

EDGE_PASSWORD = "edge-secret"


def announcer_env(data_dir: Path, centre: str, api: str, mqtt_port: int, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_") and k != "DATABASE_URL"}
    env.update({
        "EXAMKIOSK_EDGE_CONFIG": "/nonexistent/edge.toml",
        "EXAMKIOSK_SECRET_KEY": "announcer",
        "EXAMKIOSK_DATA_DIR": str(data_dir),
        "EXAMKIOSK_CENTRE": centre,
        "EXAMKIOSK_PUBLIC_URL": api,
        "EXAMKIOSK_MQTT__HOST": "127.0.0.1",
        "EXAMKIOSK_MQTT__PORT": str(mqtt_port),
        "EXAMKIOSK_MQTT__PASSWORD": "x",
        "EXAMKIOSK_DISCOVERY__INTERFACES": '["127.0.0.1"]',
        "EXAMKIOSK_DISCOVERY__INSTANCE_NAME": name,
    })
    return env


def serve(app: Flask, tls: Path):
    """``app`` over HTTPS with the certificate in ``tls`` (an edge's TLS file)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls)
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def centre(tmp_path_factory):
    """The edge (app + broker + announcer) and a rogue (HTTP server + announcer), all running."""
    tmp = tmp_path_factory.mktemp("enrol-cli")
    name = f"c-{uuid.uuid4().hex[:6]}"
    (tmp / "edge").mkdir()
    certificate = edge_settings(tmp / "edge", centre=name)
    edge_fingerprint(certificate)  # made first: the broker's TLS listener serves it too
    broker = start_mosquitto(tmp / "broker", name, {"edge": EDGE_PASSWORD}, tls_pem=certificate.tls_path)
    procs: list[subprocess.Popen] = []
    servers = []
    try:
        settings = edge_settings(tmp / "edge", centre=name, mqtt={
            "host": "127.0.0.1", "port": broker.port, "tls_port": broker.tls_port, "username": "edge",
            "password": EDGE_PASSWORD})
        migrate_database(settings)
        from edge_server import create_app
        from edge_server.extensions import db
        from edge_server.models import StaffRole
        from edge_server.services.enrolment_codes import ensure_centre
        from edge_server.services.staff import create_user

        app = create_app(settings)
        with app.app_context():
            ensure_centre(db.session, name, "CLI centre")
            admin = create_user(db.session, "admin", "correct horse battery", StaffRole.CENTRE_ADMIN, name).id
            db.session.commit()
        fp = edge_fingerprint(settings)
        server, thread = serve(app, settings.tls_path)
        servers.append((server, thread))
        api = f"https://127.0.0.1:{server.server_port}"

        # The rogue: the same centre name, its own key (a fingerprint with another first group).
        rogue_dir = tmp / "rogue"
        while True:
            rogue_settings = edge_settings(rogue_dir, data_dir=rogue_dir)
            rogue_fp = edge_fingerprint(rogue_settings)
            if rogue_fp[:4] != fp[:4]:
                break
            shutil.rmtree(rogue_dir)
        rogue_hits: list[str] = []
        rogue_app = Flask("rogue")

        @rogue_app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
        @rogue_app.route("/<path:path>", methods=["GET", "POST"])
        def anything(path):
            rogue_hits.append(f"{request.method} /{path} {request.get_data(as_text=True)}")
            return jsonify(station_id="st-99", token="rogue", centre=name, fingerprint=rogue_fp,
                           mqtt={"host": "127.0.0.1", "port": 1, "username": "st-99", "password": "x"}), 201

        rogue_server, rogue_thread = serve(rogue_app, rogue_settings.tls_path)
        servers.append((rogue_server, rogue_thread))
        rogue_api = f"https://127.0.0.1:{rogue_server.server_port}"

        logs = {}
        for who, data_dir, url in (("edge", settings.data_dir, api), ("rogue", rogue_dir, rogue_api)):
            logs[who] = tmp / f"announce-{who}.log"
            with open(logs[who], "wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "edge_server.daemon.announce"], cwd=str(REPO), stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=announcer_env(data_dir, name, url, broker.port, f"examkiosk-{who}-{name}")))
        yield {"tmp": tmp, "name": name, "app": app, "admin": admin, "api": api, "fp": fp, "broker": broker,
               "rogue_fp": rogue_fp, "rogue_hits": rogue_hits, "announcers": procs, "logs": logs,
               "data_dir": settings.data_dir, "rogue_api": rogue_api}
    finally:
        for proc in procs:
            stop_process(proc)
        for server, thread in servers:
            server.shutdown()
            thread.join(5)
        broker.stop()


def make_code(centre, *, age: timedelta = timedelta(0)) -> str:
    from edge_server.extensions import db
    from edge_server.models import StaffUser
    from edge_server.services.enrolment_codes import create_code

    app = centre["app"]
    with app.app_context():
        settings = app.extensions["examkiosk.settings"]
        _, plain = create_code(db.session, centre_id=centre["name"], staff=db.session.get(StaffUser, centre["admin"]),
                               fingerprint=centre["fp"], key=settings.secret_key.encode(),
                               now=datetime.now(timezone.utc) - age)
        db.session.commit()
    return plain


def provision(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed ``examkiosk-provision`` console script, as an operator runs it (it finds the edge,
    enrols, then runs the station's own check of the settings it wrote: generous for a loaded machine)."""
    script = Path(sys.executable).parent / "examkiosk-provision"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "provisioning.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_")}
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))


def enrol_args(centre, code: str, config: Path, *extra: str, timeout: float = 60) -> list[str]:
    """``timeout``: how long the CLI looks for the edge; it stops at the first announcement that fits."""
    return ["enrol", "--code", code, "--config", str(config), "--interfaces", "127.0.0.1",
            "--timeout", str(timeout), "--data-dir", str(config.parent / "station-data"), *extra]


def code_used(centre, plain: str) -> bool:
    from edge_server.extensions import db
    from edge_server.models import EnrolmentCode
    from edge_server.services.enrolment_codes import code_digest
    from examkiosk_wire.enrolment_code import parse

    app = centre["app"]
    with app.app_context():
        digest = code_digest(app.extensions["examkiosk.settings"].secret_key.encode(), parse(plain))
        row = db.session.query(EnrolmentCode).filter_by(code_hash=digest).one()
        return row.used_at is not None


def test_enrols_past_a_rogue_announcer_and_writes_a_working_config(centre):
    config = centre["tmp"] / "etc-1" / "station.toml"
    plain = make_code(centre)
    result = provision(*enrol_args(centre, plain, config))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{centre['logs']['edge'].read_text()}"
    assert "Looking for the edge server whose fingerprint starts with " + plain[:4] in result.stdout
    assert f"Enrolled as station st-01 of centre {centre['name']}; wrote {config} (mode 0600)" in result.stdout
    assert result.stderr == ""
    assert centre["rogue_hits"] == []  # the rogue never saw the code (nor any request)

    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert sorted(p.name for p in config.parent.iterdir()) == ["station-data", "station.toml"]  # no temp file left
    settings = load_station_settings(config)
    assert (settings.station_id, settings.centre) == ("st-01", centre["name"])
    assert settings.edge.api == centre["api"] and settings.edge.fingerprint == centre["fp"]
    assert settings.edge.discovery_interfaces == ["127.0.0.1"]
    assert settings.data_dir == config.parent / "station-data"
    assert settings.camera.kind == "opencv" and settings.audio.kind == "pyaudio" and settings.kiosk.port == 8700
    # Its token works on the edge API, with the signing key the CLI made registered at enrolment.
    with EdgeClient(settings.edge.api, settings.edge.token, fingerprint=settings.edge.fingerprint) as client:
        assert client.schedule().station == "st-01"
    from edge_server.extensions import db
    from edge_server.models import Station
    from examkiosk_wire.chain import StationKey

    with centre["app"].app_context():
        key = StationKey.load_or_create(settings.data_dir / "station_key.pem")
        assert db.session.get(Station, "st-01").public_key == key.public_b64
    # Its MQTT login works at once, on the broker's TLS listener pinned to the edge's certificate.
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.tls, settings.mqtt.username) == (
        "127.0.0.1", centre["broker"].tls_port, True, "st-01")
    publisher = StatusPublisher(settings.mqtt.host, settings.mqtt.port, settings.mqtt.username, settings.mqtt.password,
                                settings.centre, settings.station_id, tls=True, fingerprint=settings.edge.fingerprint)
    try:
        publisher.start()
        assert publisher.wait_connected(START_TIMEOUT), centre["broker"].log()
    finally:
        publisher.stop(timeout=0.5)
    assert code_used(centre, plain)


def test_an_existing_config_is_kept_unless_forced(centre):
    config = centre["tmp"] / "etc-1" / "station.toml"
    before = config.read_bytes()
    plain = make_code(centre)
    result = provision(*enrol_args(centre, plain, config))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "already exists" in result.stderr and "--force" in result.stderr
    assert config.read_bytes() == before and not code_used(centre, plain)  # refused before using the code

    result = provision(*enrol_args(centre, plain, config, "--force"))
    assert result.returncode == 0, result.stderr
    settings = load_station_settings(config)
    assert settings.station_id == "st-02" and config.read_bytes() != before
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert {"st-01", "st-02"} <= set(centre["broker"].dynsec_users())


def test_failures_are_one_line(centre, tmp_path):
    config = tmp_path / "station.toml"
    expired = make_code(centre, age=timedelta(minutes=16))
    result = provision(*enrol_args(centre, expired, config))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("examkiosk-provision: code expired")
    result = provision("enrol", "--code", "not-a-code", "--config", str(config))
    assert result.returncode == 2 and "malformed code" in result.stderr and result.stderr.count("\n") == 1
    assert not config.exists() and centre["rogue_hits"] == []


def test_the_rogue_alone_is_refused(centre, tmp_path):
    """The real edge goes off the air; the rogue still announces the same centre: the code stays home."""
    real = centre["announcers"][0]
    stop_process(real)
    assert real.returncode == 0
    config = tmp_path / "station.toml"
    plain = make_code(centre)
    result = provision(*enrol_args(centre, plain, config, timeout=5))  # a refusal: it looks the whole 5 s
    assert result.returncode == 1, result.stdout
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("examkiosk-provision: fingerprint mismatch: no edge server whose "
                                                f"fingerprint starts with {plain[:4]}")
    assert f"examkiosk-rogue-{centre['name']}" in line and centre["rogue_fp"][:16] in line
    assert centre["rogue_hits"] == [] and not config.exists() and not code_used(centre, plain)


def test_a_copycat_of_the_announcement_is_refused_by_the_pin(centre, tmp_path):
    """A rogue copies the real edge's TXT record (its fingerprint) but points it at its own server:
    the announcement passes, the TLS handshake does not, and no request reaches the rogue."""
    assert centre["announcers"][0].poll() is not None  # the real edge is off the air (previous test)
    log = tmp_path / "announce-copycat.log"
    with open(log, "wb") as out:
        copycat = subprocess.Popen(
            [sys.executable, "-m", "edge_server.daemon.announce"], cwd=str(REPO), stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            # The real edge's data dir: its certificate, so its fingerprint, goes into the TXT record.
            env=announcer_env(centre["data_dir"], centre["name"], centre["rogue_api"], centre["broker"].port,
                              f"examkiosk-copycat-{centre['name']}"))
    centre["announcers"].append(copycat)
    config = tmp_path / "station.toml"
    plain = make_code(centre)
    result = provision(*enrol_args(centre, plain, config, timeout=60))  # the copycat is found, then refused
    assert result.returncode == 1, result.stdout + log.read_text()
    assert f"(fingerprint {centre['fp'][:16]}…)" in result.stdout  # the announcement itself looked right
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(
        f"examkiosk-provision: fingerprint mismatch: the server at {centre['rogue_api']} announced "
        f"{centre['fp'][:16]}… but presented another certificate")
    assert centre["rogue_hits"] == [] and not config.exists() and not code_used(centre, plain)

    # A station enrolled with the real fingerprint refuses the copycat the same way.
    with EdgeClient(centre["rogue_api"], "a-station-token", fingerprint=centre["fp"]) as client:
        with pytest.raises(EdgeUntrusted, match="not the pinned one"):
            client.schedule()
    assert centre["rogue_hits"] == []  # not even the token was sent


def test_clock_skew_and_toml():
    import tomllib

    assert clock_skew("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 - 400) == 400
    assert clock_skew("garbage", 0) is None and clock_skew(None, 0) is None
    text = render_toml({"a": 1, "b": "x\"y", "n": None, "t": {"l": ["p", "q"], "f": 2.5, "yes": True}}, "hi\nthere")
    assert text.startswith("# hi\n# there\n")
    assert tomllib.loads(text) == {"a": 1, "b": "x\"y", "t": {"l": ["p", "q"], "f": 2.5, "yes": True}}
