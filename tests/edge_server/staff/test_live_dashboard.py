"""The live room in Chromium, fed for real: station processes publish over a private Mosquitto, the edge
daemon's MQTT bridge stores and publishes on a private Redis, the SSE stream carries it to the page.

Covers tiles updating live, camera snapshots, alerts with sound and mute, filters, offline stations,
the stream ending and the browser reconnecting, and the candidate's name never reaching a tile.
Screenshot: tests/artifacts/staff/dashboard_live.png.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
import requests

from edge_server.daemon.bridge import MqttBridge
from edge_server.extensions import db
from edge_server.models import FaceTry, StaffRole
from edge_server.services.live import LivePublisher
from edge_server.services.staff import create_user
from examkiosk_wire.topics import StationStatus, snapshot_topic, status_topic
from station.vision.snapshot import snapshot_jpeg
from tests.edge_server.conftest import make_settings
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.edge_server.staff.test_staff_pages import ARTIFACTS, PASSWORD, csrf_session, sign_in
from tests.services import MqttProbe, start_station, wait_for

CENTRE = "c1"
USERS = {"edge": "edge-secret", "st-01": "pw-one", "st-02": "pw-two"}
CANDIDATE = "张三丰"


@pytest.fixture
def broker(mosquitto_factory):
    return mosquitto_factory(CENTRE, USERS)


@pytest.fixture
def settings(db_url, tmp_path, broker, redis_server):
    return make_settings(db_url, tmp_path / "data", centre=CENTRE, redis_url=redis_server.url,
                         mqtt={"host": "127.0.0.1", "port": broker.port, "username": "edge",
                               "password": USERS["edge"]},
                         dashboard={"stream_seconds": 3, "heartbeat_seconds": 1})


@pytest.fixture
def room(app, settings, live_server):
    """Two stations (st-02's candidate failed a face login), an admin, and the bridge running."""
    with app.app_context():
        make_station(db.session, CENTRE, "st-01", seat="A01")
        st02, _ = make_station(db.session, CENTRE, "st-02", seat="A02")
        sitting = make_sitting(db.session, CENTRE, starts_in=600)
        attempt = make_attempt(db.session, make_candidate(db.session, sitting, name=CANDIDATE), st02, lot=3)
        db.session.add(FaceTry(attempt_id=attempt.id, distance=0.9, matched=False))
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, CENTRE)
        db.session.commit()
    bridge = MqttBridge(settings, app)
    bridge.start()
    assert bridge.wait_subscribed(10)
    try:
        yield live_server
    finally:
        bridge.stop()


def tile(page, station: str) -> str:
    return f"#stations [data-station={station}]"


def visible_tiles(page) -> list[str]:
    return page.eval_on_selector_all("#stations [data-station]:not([hidden])", "els => els.map(e => e.dataset.station)")


def status(station: str, **values) -> str:
    return StationStatus(station=station, online=True, version="2.4.0", ts=datetime.now(timezone.utc).timestamp(),
                         **values).to_json()


def test_dashboard_follows_stations_live(room, broker, chromium):
    base = room
    page = chromium.new_page(viewport={"width": 1600, "height": 1000})
    sign_in(page, base, "admin", PASSWORD)
    page.wait_for_selector("#live[data-link=live]")
    page.wait_for_selector(f"{tile(page, 'st-01')}[data-online=false]")
    assert page.get_attribute(tile(page, "st-01"), "data-alerts") == "", "never seen: offline but no alert"
    page.wait_for_selector(f"{tile(page, 'st-02')}[data-alerts~=face]")  # the failed face login
    page.click("#sound")  # the user gesture browsers want before any sound
    page.wait_for_selector("#live[data-sound=on]")

    # A real station process publishes its status: the tile follows (state, lot, question, time, health).
    station = start_station(broker.port, "st-01", USERS["st-01"], CENTRE, "st-01", status={
        "state": "answering", "lot": 7, "question": 2, "time_left": 95.0, "mic_level": 0.5, "backlog": 3,
        "disk_free_mb": 5120, "clock_offset_ms": -12.5})
    try:
        page.wait_for_selector(f"{tile(page, 'st-01')}[data-online=true][data-state=answering]")
        text = page.inner_text(tile(page, "st-01"))
        assert "答题中" in text and "01:35" in text and "待传 3" in text and "5120MB" in text and "-12.5ms" in text
        assert page.inner_text(f"{tile(page, 'st-01')} [data-field=lot]") == "7"
        assert page.get_attribute(f"{tile(page, 'st-01')} [data-field=mic]", "style") == "width:50%"

        with MqttProbe(broker.port, "st-01", USERS["st-01"]) as st01, \
                MqttProbe(broker.port, "st-02", USERS["st-02"]) as st02:
            assert not st01.connect().is_failure and not st02.connect().is_failure
            # A camera snapshot (MQTT, QoS 0) shows on the tile, 320 px wide.
            frame = np.zeros((480, 640, 3), np.uint8)
            frame[:, :320] = (40, 160, 40)
            st01.client.publish(snapshot_topic(CENTRE, "st-01"), snapshot_jpeg(frame), qos=0).wait_for_publish(5)
            page.wait_for_function("""() => { const i = document.querySelector('[data-station=st-01] img[data-snapshot]');
                                               return i && !i.hidden && i.complete && i.naturalWidth === 320; }""")

            # A flag on st-02 alerts and beeps.
            beeps = int(page.get_attribute("#live", "data-beeps") or 0)
            st02.publish(status_topic(CENTRE, "st-02"), status("st-02", state="answering", lot=3, flags=("several_faces",)))
            page.wait_for_selector(f"{tile(page, 'st-02')}[data-alerts~=flag]")
            page.wait_for_function(f"Number(document.querySelector('#live').dataset.beeps || 0) > {beeps}")
            assert "多人" in page.inner_text(tile(page, "st-02"))
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard_live.png"))

            # Muted: the next alert shows but stays silent.
            page.click("#sound")
            page.wait_for_selector("#live[data-sound=muted]")
            beeps = int(page.get_attribute("#live", "data-beeps") or 0)
            st01.publish(status_topic(CENTRE, "st-01"), status("st-01", state="answering", lot=7, flags=("no_face",)))
            page.wait_for_selector(f"{tile(page, 'st-01')}[data-alerts~=flag]")
            page.wait_for_selector("#live[data-beep=muted]")
            assert int(page.get_attribute("#live", "data-beeps") or 0) == beeps
            st01.publish(status_topic(CENTRE, "st-01"), status("st-01", state="answering", lot=7))
            page.wait_for_selector(f"{tile(page, 'st-01')}[data-alerts='']")

            # Filters: alerts, by state, offline.
            page.click("[data-filter=alerts]")
            assert visible_tiles(page) == ["st-02"]
            assert page.inner_text("[data-count=alerts]") == "1"
            page.click("[data-filter=all]")
            st02.publish(status_topic(CENTRE, "st-02"), status("st-02", state="waiting", lot=3))
            page.wait_for_selector(f"{tile(page, 'st-02')}[data-state=waiting]")
            page.select_option("#state-filter", "answering")
            assert visible_tiles(page) == ["st-01"]
            page.select_option("#state-filter", "")
            station.stop()  # goes offline (its goodbye status): an alert
            page.wait_for_selector(f"{tile(page, 'st-01')}[data-online=false][data-alerts~=offline]")
            page.click("[data-filter=offline]")
            assert visible_tiles(page) == ["st-01"]
    finally:
        station.kill()

    assert CANDIDATE not in page.inner_text("#stations"), "the wall view never shows the candidate's name"
    # The stream ends every 3 s here and the browser reconnects (a fresh set of tiles each time).
    # (It may be between two streams at any moment: wait for it live again after a reconnect.)
    page.wait_for_function("Number(document.querySelector('#live').dataset.connects) >= 2 "
                           "&& document.querySelector('#live').dataset.link === 'live'")
    page.close()


def read_events(lines, until: str) -> list[tuple[str, dict]]:
    events, event = [], None
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            events.append((event, json.loads(line[len("data: "):])))
            if event == until:
                return events
    return events


def test_stream_speaks_server_sent_events(room, settings):
    base = room
    assert "/staff/login" in requests.get(f"{base}/staff/api/stream", timeout=5).url  # signed in only
    session, _ = csrf_session(base, "admin")
    with session.get(f"{base}/staff/api/stream", stream=True, timeout=10) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        lines = r.iter_lines(chunk_size=1, decode_unicode=True)
        first = read_events(lines, until="stations")
        assert [t["id"] for t in first[-1][1]["stations"]] == ["st-01", "st-02"]
        publisher = LivePublisher(settings.redis_url, CENTRE)
        other_centre = LivePublisher(settings.redis_url, "c2")
        try:
            other_centre.tile({"id": "st-99", "online": True})
            publisher.tile({"id": "st-01", "online": True, "state": "waiting", "seen_ts": None})
        finally:
            publisher.close()
            other_centre.close()
        rest = read_events(lines, until="bye")
    kinds = [k for k, _ in rest]
    tiles = [d for k, d in rest if k == "tile"]
    assert [t["id"] for t in tiles] == ["st-01"] and tiles[0]["state"] == "waiting", "only this centre's changes"
    assert "heartbeat" in kinds and kinds[-1] == "bye"


def test_a_worker_serves_only_so_many_streams_and_the_page_polls_beyond(room, app, settings, chromium):
    """``dashboard.max_streams`` per worker: one dashboard more gets 503 ``live_busy`` and the page
    polls instead (tiles still shown); the slot is free again once the open stream is closed."""
    app.extensions["examkiosk.settings"] = settings.model_copy(
        update={"dashboard": settings.dashboard.model_copy(update={"max_streams": 1, "stream_seconds": 60})})
    base, stream = room, f"{room}/staff/api/stream"
    session, _ = csrf_session(base, "admin")
    with session.get(stream, stream=True, timeout=10) as first:
        assert first.status_code == 200
        lines = first.iter_lines(chunk_size=1, decode_unicode=True)
        read_events(lines, until="stations")
        busy = session.get(stream, timeout=5)
        assert (busy.status_code, busy.json()["code"]) == (503, "live_busy")
        page = chromium.new_page()
        sign_in(page, base, "admin", PASSWORD)
        page.wait_for_selector("#live[data-link=polling]")
        page.wait_for_selector(f"{tile(page, 'st-02')}[data-alerts~=face]")  # the room, from polling
        page.close()
        assert read_events(lines, until="heartbeat")[-1][0] == "heartbeat"  # the first stream runs on

    def stream_opens() -> bool:  # the server notices the closed stream at its next heartbeat (1 s)
        with session.get(stream, stream=True, timeout=5) as again:
            return again.status_code == 200
    wait_for(stream_opens, timeout=10, message="a stream opens once the first one is closed")
