"""station.link: zeroconf discovery of a real announcer, the API client's errors, the clock."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from edge_server.identity import edge_fingerprint
from examkiosk_wire.discovery import EdgeNotFound, discover_edge
from station.link import Clock, EdgeClient, EdgeRejected, EdgeUnavailable
from tests.services import REPO, edge_settings, free_port, migrate_database, stop_process

SHIFT = 3.75  # seconds the fake edge's clock is ahead
TOKEN = "station-token"


# --- zeroconf -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def announced(tmp_path_factory):
    """``python -m edge_server.daemon.announce`` in its own process, on 127.0.0.1 only."""
    tmp = tmp_path_factory.mktemp("announce")
    centre = f"c-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_")}
    env.update({
        "EXAMKIOSK_EDGE_CONFIG": "/nonexistent/edge.toml",
        "EXAMKIOSK_SECRET_KEY": "test",
        "EXAMKIOSK_DATA_DIR": str(tmp),
        "EXAMKIOSK_CENTRE": centre,
        "EXAMKIOSK_PUBLIC_URL": "http://127.0.0.1:8123",
        "EXAMKIOSK_MQTT__HOST": "127.0.0.1",
        "EXAMKIOSK_MQTT__PORT": "18999",
        "EXAMKIOSK_MQTT__PASSWORD": "x",
        "EXAMKIOSK_DISCOVERY__INTERFACES": '["127.0.0.1"]',
    })
    # The test computes the fingerprint from the same key file the announcer loads.
    fp = edge_fingerprint(edge_settings(tmp, data_dir=tmp))
    log = open(tmp / "announce.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "edge_server.daemon.announce"], env=env, cwd=str(REPO),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield {"centre": centre, "fp": fp, "proc": proc, "log": tmp / "announce.log"}
    finally:
        stop_process(proc)
        log.close()
    # SIGTERM is a clean stop that withdraws the announcement.
    assert proc.returncode == 0, (tmp / "announce.log").read_text()
    assert "announcement withdrawn" in (tmp / "announce.log").read_text()


def discover_in_subprocess(centre: str, fp: str, timeout: float) -> dict:
    """The station side in a process of its own, as on a real station."""
    code = ("import dataclasses, json, sys; from examkiosk_wire.discovery import discover_edge; "
            "s = discover_edge(centre=sys.argv[1], fp=sys.argv[2], timeout=float(sys.argv[3]), "
            "interfaces=['127.0.0.1']); print(json.dumps(dataclasses.asdict(s)))")
    proc = subprocess.run([sys.executable, "-c", code, centre, fp, str(timeout)], capture_output=True, text=True,
                          timeout=timeout + 30)
    if proc.returncode != 0:
        raise EdgeNotFound(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output")
    return json.loads(proc.stdout)


def test_discover_finds_the_announced_edge(announced):
    try:
        found = discover_in_subprocess(announced["centre"], announced["fp"], 20)
    except EdgeNotFound as exc:
        pytest.fail(f"not found ({exc}); announcer exit={announced['proc'].poll()} log:\n"
                    f"{announced['log'].read_text()}")
    assert found["centre"] == announced["centre"]
    assert found["api"] == "http://127.0.0.1:8123"
    assert (found["mqtt_host"], found["mqtt_port"]) == ("127.0.0.1", 18999)
    assert found["fp"] == announced["fp"] and len(found["fp"]) == 64
    assert found["version"]
    assert found["name"].endswith("._examkiosk._tcp.local.")


def test_a_broker_on_loopback_is_announced_at_the_edge_address(tmp_path):
    from edge_server.daemon.announce import txt_record

    def mqtt_of(host: str) -> str:
        return txt_record(edge_settings(tmp_path, mqtt={"host": host, "port": 1883, "password": "x"}), "ab")["mqtt"]

    assert [mqtt_of(h) for h in ("127.0.0.1", "::1", "localhost")] == [":1883"] * 3
    assert mqtt_of("192.168.4.2") == "192.168.4.2:1883"


def test_discover_refuses_an_edge_with_another_fingerprint(announced):
    started = time.monotonic()
    with pytest.raises(EdgeNotFound) as info:
        discover_edge(centre=announced["centre"], fp="0" * 64, timeout=2.5, interfaces=["127.0.0.1"])
    assert time.monotonic() - started < 6
    assert "\n" not in str(info.value)
    assert announced["proc"].poll() is None


def test_fingerprint_is_stable_and_key_private(tmp_path):
    settings = edge_settings(tmp_path)
    fp = edge_fingerprint(settings)
    assert fp == edge_fingerprint(settings)
    assert oct(settings.tls_path.stat().st_mode & 0o777) == "0o600"
    shown = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(settings.tls_path)],
                           capture_output=True, text=True, check=True).stdout
    assert shown.strip().split("=")[1].replace(":", "").lower() == fp  # what a browser shows, too
    assert edge_fingerprint(edge_settings(tmp_path / "other")) != fp


# --- HTTP client and clock against a tiny real server ------------------------------------------

def attempt_reply(attempt_id: str) -> dict:
    """An attempt as the edge answers it (``examkiosk_wire.api.AttemptInfo``)."""
    sitting = {"id": "s1", "name": "Formal", "kind": "formal", "timing_mode": "per_question",
               "waiting_opens_at": 1.0, "starts_at": 2.0, "entry_closes_at": 3.0, "lot_deadline_at": 2.5,
               "question_seconds": [60, 90], "total_seconds": 150}
    candidate = {"ticket_no": attempt_id.removeprefix("a-"), "name": "王小明", "id_number_masked": "1101**********1234",
                 "sitting": "s1"}
    return {"id": attempt_id, "sitting": sitting, "candidate": candidate}


def fake_edge() -> Flask:
    app = Flask("fake_edge")

    @app.get("/api/v1/time")
    def time_now():
        return jsonify(server_time=time.time() + SHIFT)

    @app.get("/api/v1/schedule")
    def schedule():
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return jsonify(error="unknown station token", code="token_invalid"), 401
        return jsonify(server_time=time.time(), centre="c1", station="st-01", sittings=[])

    @app.get("/api/v1/candidates/<ticket>")
    def candidate(ticket):
        return jsonify(error="no candidate with this admission ticket number", code="candidate_unknown"), 404

    @app.post("/api/v1/events")
    def event():
        app.config["calls"]["event_body"] = request.get_json()
        return jsonify(ok=True), 201

    # The first call for a ticket finds the edge failing; the next ones are answered (same attempt).
    calls = app.config["calls"] = {"attempts": 0, "face_tries": 0}

    @app.post("/api/v1/attempts")
    def open_attempt():
        calls["attempts"] += 1
        if calls["attempts"] == 1:
            return "busy", 503
        return jsonify(attempt_reply("a-" + request.get_json()["ticket_no"])), 201

    @app.get("/api/v1/attempts/<attempt_id>")
    def unreadable_attempt(attempt_id):
        return jsonify(id=attempt_id, sitting={"id": "s1"})  # not an attempt: the sitting has no times

    @app.post("/api/v1/attempts/<attempt_id>/face-tries")
    def face_try(attempt_id):
        calls["face_tries"] += 1
        return "busy", 503

    @app.get("/api/v1/broken")
    def broken():
        return "oops", 503

    @app.get("/api/v1/plain-404")
    def plain():
        return "not here", 404

    return app


@pytest.fixture(scope="module")
def fake_app() -> Flask:
    return fake_edge()


@pytest.fixture(scope="module")
def fake_server(fake_app):
    server = make_server("127.0.0.1", 0, fake_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def test_clock_offset_matches_the_server_shift(fake_server):
    clock = Clock()
    assert not clock.synced
    with EdgeClient(fake_server, TOKEN) as client:
        offset = clock.sync(client, samples=5)
    assert abs(offset - SHIFT) < 0.05
    assert clock.synced and clock.rtt is not None and clock.rtt < 1
    assert abs(clock.now() - (time.time() + SHIFT)) < 0.05


def test_client_answers_and_errors(fake_server, fake_app):
    with EdgeClient(fake_server + "/api/v1/", TOKEN) as client:
        schedule = client.schedule()
        assert (schedule.station, schedule.sittings) == ("st-01", [])
        assert client.event("mic_silent", {"seconds": 3}, attempt="a1").ok
        assert fake_app.config["calls"]["event_body"] == {"kind": "mic_silent", "payload": {"seconds": 3},
                                                          "attempt": "a1"}
        with pytest.raises(EdgeRejected) as info:
            client.candidate("A 123-4")
        assert (info.value.status, info.value.code) == (404, "candidate_unknown")
        assert "admission ticket" in info.value.message
        with pytest.raises(EdgeRejected) as info:
            client.get("/plain-404")
        assert (info.value.status, info.value.code) == (404, "http_404")
        with pytest.raises(EdgeUnavailable):
            client.get("/broken")
    with EdgeClient(fake_server, "wrong") as client:
        with pytest.raises(EdgeRejected) as info:
            client.schedule()
        assert (info.value.status, info.value.code) == (401, "token_invalid")


def test_calls_safe_to_repeat_are_tried_again_and_others_are_not(fake_server, fake_app):
    calls = fake_app.config["calls"]
    with EdgeClient(fake_server, TOKEN) as client:
        attempt = client.open_attempt("20240001")  # the edge failed once, then answered
        assert (attempt.id, attempt.candidate.ticket_no, attempt.sitting.question_seconds) == ("a-20240001", "20240001",
                                                                                             [60, 90])
        assert calls["attempts"] == 2
        with pytest.raises(EdgeUnavailable, match="503"):  # a face try counts: never sent twice
            client.face_try("a-20240001", matched=True, distance=0.3)
        assert calls["face_tries"] == 1


def test_an_answer_the_station_cannot_read_is_an_unavailable_edge_naming_the_field(fake_server):
    with EdgeClient(fake_server, TOKEN) as client:
        with pytest.raises(EdgeUnavailable, match=r"GET /attempts/<id>: .*cannot read \(sitting\.name: Field required"):
            client.attempt("a-1")


def test_closed_port_is_unavailable():
    with EdgeClient(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=1) as client:
        with pytest.raises(EdgeUnavailable):
            client.time()
        with pytest.raises(EdgeUnavailable):
            Clock().sync(client, samples=2)
        with pytest.raises(EdgeUnavailable, match="ConnectionError"):  # tried again, then given up
            client.open_attempt("20240001")


# --- against the real edge app ------------------------------------------------------------------

def test_client_against_the_edge_api(tmp_path):
    from edge_server import create_app
    from edge_server.extensions import db
    from edge_server.models import Centre
    from edge_server.services.stations import create_station

    settings = edge_settings(tmp_path, centre="c-real")
    migrate_database(settings)
    app = create_app(settings)
    with app.app_context():
        db.session.add(Centre(id="c-real", name="Real"))
        _, token = create_station(db.session, "st-01", "c-real")
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        with EdgeClient(url, token) as client:
            assert abs(client.time() - time.time()) < 1
            assert client.schedule().station == "st-01"
            with pytest.raises(EdgeRejected) as info:
                client.candidate("nobody")
            assert (info.value.status, info.value.code) == (404, "candidate_unknown")
            assert client.event("kiosk_started", {"ok": 1}).ok
        with EdgeClient(url, "forged") as client:
            with pytest.raises(EdgeRejected) as info:
                client.schedule()
            assert (info.value.status, info.value.code) == (401, "token_invalid")
    finally:
        server.shutdown()
        thread.join(5)
        with app.app_context():
            db.engine.dispose()
