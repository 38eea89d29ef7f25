"""Stations / Provisioning in a real browser: a centre admin makes a one-time enrolment code (text and
QR), a station uses it over the API, and revoking it from the dashboard cuts it off a real Mosquitto."""
from __future__ import annotations

import base64
import json
import queue
import re
from pathlib import Path

import numpy as np
import pytest
import requests
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.identity import edge_fingerprint
from edge_server.models import EnrolmentCode, Event, StaffRole
from edge_server.services import snapshots
from edge_server.services.staff import create_user
from examkiosk_wire.enrolment_code import ALPHABET
from examkiosk_wire.topics import StationStatus
from station.link import StatusPublisher
from station.vision.snapshot import snapshot_jpeg
from tests.edge_server.conftest import make_settings
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session, sign_in
from tests.services import MqttProbe, wait_for

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "staff"
CENTRE = "c1"
EDGE_PASSWORD = "edge-secret"
CODE = re.compile(rf"^[0-9A-F]{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$")


@pytest.fixture
def broker(mosquitto_factory):
    return mosquitto_factory(CENTRE, {"edge": EDGE_PASSWORD})


@pytest.fixture
def settings(db_url, tmp_path, broker):
    return make_settings(db_url, tmp_path / "data", centre=CENTRE, mqtt={
        "host": "127.0.0.1", "port": broker.port, "username": "edge", "password": EDGE_PASSWORD})


@pytest.fixture
def staffed(app, live_server):
    from edge_server.services.enrolment_codes import ensure_centre

    with app.app_context():
        ensure_centre(db.session, CENTRE, "Centre one")
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, CENTRE)
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, CENTRE)
        db.session.commit()
    return live_server


def make_code_in_browser(page, base: str) -> str:
    sign_in(page, base, "admin", PASSWORD)
    page.click("[data-action=stations-provisioning]")
    page.wait_for_selector("h1:has-text('Stations / Provisioning')")
    page.click("[data-action=make-enrolment-code]")
    return page.inner_text("[data-field=enrolment-code]").strip()


def decode_qr(data_uri: str) -> str:
    import cv2
    import numpy as np

    assert data_uri.startswith("data:image/png;base64,")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data_uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
    return text


def test_admin_makes_a_code_a_station_uses_it(app, staffed, chromium):
    base = staffed
    fp = edge_fingerprint(app.extensions["examkiosk.settings"])
    page = chromium.new_page()
    plain = make_code_in_browser(page, base)
    assert CODE.match(plain) and plain[:4] == fp[:4].upper()
    assert decode_qr(page.get_attribute("img[data-qr=enrolment-code]", "src")) == plain
    assert f"examkiosk-provision enrol --code {plain}" in page.inner_text("[data-field=command]")
    assert "Valid until" in page.inner_text("[data-issued]")
    assert page.get_attribute("[data-list=codes] tr[data-code]", "data-state") == "active"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stations_enrolment_code.png"), full_page=True)

    r = requests.post(f"{base}/api/v1/enrol", json={"code": plain, "hostname": "pi-lab-3", "version": "9.9"})
    assert r.status_code == 201 and r.json()["station_id"] == "st-01"
    page.goto(f"{base}/staff/stations")
    assert plain not in page.content()  # shown once only
    row = page.inner_text("[data-list=stations] tr[data-station=st-01]")
    assert "pi-lab-3" in row and "9.9" in row and "offline" in row
    assert page.get_attribute("[data-list=codes] tr[data-code]", "data-state") == "used"
    assert "st-01" in page.inner_text("[data-list=codes] tr[data-code]")
    page.screenshot(path=str(ARTIFACTS / "stations_list.png"), full_page=True)
    page.close()

    with app.app_context():
        created = db.session.scalars(select(Event).where(Event.kind == "enrolment_code_created")).one()
        assert created.source == "staff" and created.payload["by"] == "admin"
        everything = json.dumps([e.payload for e in db.session.scalars(select(Event))])
        assert plain not in everything and plain.replace("-", "") not in everything
        assert db.session.scalars(select(EnrolmentCode.code_hash)).one() not in (plain, plain.replace("-", ""))


def test_only_a_centre_admin_makes_codes(app, staffed):
    base = staffed
    proctor, token = csrf_session(base, "proctor")
    assert "stations-provisioning" not in proctor.get(f"{base}/staff/").text
    assert proctor.get(f"{base}/staff/stations").status_code == 403
    assert proctor.post(f"{base}/staff/stations/enrolment-codes", data={"csrf_token": token}).status_code == 403
    admin, token = csrf_session(base, "admin")
    assert "stations-provisioning" in admin.get(f"{base}/staff/").text
    assert admin.post(f"{base}/staff/stations/enrolment-codes", data={}).status_code == 400  # no CSRF token
    with app.app_context():
        assert db.session.scalars(select(EnrolmentCode)).all() == []
    r = admin.post(f"{base}/staff/stations/enrolment-codes", data={"csrf_token": token})
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    assert CODE.match(re.search(r'data-field="enrolment-code">([^<]+)<', r.text).group(1))
    assert "/staff/login" in requests.get(f"{base}/staff/stations").url  # signed out: to the login page


def test_revoke_cuts_the_enrolled_station_off(app, staffed, broker, chromium):
    """The dashboard's revoke: token refused, ``revoked`` pushed, MQTT login removed and the station dropped."""
    base = staffed
    admin, token = csrf_session(base, "admin")
    page_html = admin.post(f"{base}/staff/stations/enrolment-codes", data={"csrf_token": token}).text
    plain = re.search(r'data-field="enrolment-code">([^<]+)<', page_html).group(1)
    answer = requests.post(f"{base}/api/v1/enrol", json={"code": plain, "hostname": "h", "version": "1"}).json()
    station_id, mqtt = answer["station_id"], answer["mqtt"]
    api = {"Authorization": f"Bearer {answer['token']}"}
    assert requests.get(f"{base}/api/v1/time", headers=api).status_code == 200

    commands: queue.Queue = queue.Queue()
    station = StatusPublisher("127.0.0.1", broker.port, mqtt["username"], mqtt["password"], CENTRE, station_id,
                              keepalive=5, version="test", on_command=commands.put)
    page = chromium.new_page()
    try:
        station.start()
        assert station.wait_connected(10)
        station.publish_status(StationStatus(station=station_id, online=True, version="test")).wait_for_publish(5)
        snapshots_dir = app.extensions["examkiosk.settings"].snapshots_dir
        snapshots.store(snapshots_dir, station_id, snapshot_jpeg(np.zeros((120, 160, 3), np.uint8)))
        assert admin.get(f"{base}/staff/stations/{station_id}/snapshot.jpg").status_code == 200

        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, base, "admin", PASSWORD)
        page.click(f"[data-station={station_id}] [data-action=revoke]")
        page.wait_for_selector(f"[data-station={station_id}][data-revoked=true]")
        assert "已吊销 revoked" in page.inner_text(f"[data-station={station_id}]")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard_revoked_enrolled.png"))

        assert commands.get(timeout=5).kind == "revoked"
        wait_for(lambda: not station.connected, timeout=5, message="the broker dropped the revoked station")
        assert not station.wait_connected(2.5)  # paho's reconnects are refused
        probe = MqttProbe(broker.port, mqtt["username"], mqtt["password"])
        try:
            assert probe.connect().is_failure
        finally:
            probe.close()
        assert station_id not in broker.dynsec_users()
        r = requests.get(f"{base}/api/v1/time", headers=api)
        assert (r.status_code, r.json()["code"]) == (403, "station_revoked")
        # Its last camera picture of a candidate is gone with it.
        assert snapshots.taken_at(snapshots_dir, station_id) is None
        assert admin.get(f"{base}/staff/stations/{station_id}/snapshot.jpg").status_code == 404

        page.goto(f"{base}/staff/stations")
        assert "已吊销 revoked" in page.inner_text(f"[data-list=stations] tr[data-station={station_id}]")
    finally:
        station.stop(timeout=0.5)
        page.close()
    with app.app_context():
        cut = db.session.scalars(select(Event).where(Event.kind == "station_mqtt_cut_off")).one()
        assert cut.station_id == station_id
        assert cut.payload == {"by": "admin", "notified": True, "removed": True, "problem": ""}
