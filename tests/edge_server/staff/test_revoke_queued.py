"""A revocation's MQTT cut-off runs in the worker: the request returns once the token is refused, the
Stations page says the MQTT login is being removed, and once the worker ran, that it is gone."""
from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Event, StaffRole
from edge_server.services.enrolment_codes import ensure_centre
from edge_server.services.staff import create_user
from tests.edge_server.conftest import dispose_app
from tests.edge_server.jobs.test_sync import forget_job_app
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session
from tests.edge_server.worker_edge import work_queued_jobs, worker_edge_app

CENTRE = "c-rq"
EDGE_PASSWORD = "edge-secret"


@pytest.fixture
def broker(mosquitto_factory):
    return mosquitto_factory(CENTRE, {"edge": EDGE_PASSWORD})


@pytest.fixture
def app(db_url, tmp_path, broker, redis_server, monkeypatch):
    """The edge, its worker's configuration file and a queue of the test's own on the session's Redis."""
    app = worker_edge_app(monkeypatch, tmp_path, db_url=db_url, redis_url=redis_server.url, centre=CENTRE,
                          queue_prefix="test-revoke", mqtt={"host": "127.0.0.1", "port": broker.port,
                                                            "username": "edge", "password": EDGE_PASSWORD})
    with app.app_context():
        ensure_centre(db.session, CENTRE, "Centre RQ")
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, CENTRE)
        db.session.commit()
    try:
        yield app
    finally:
        forget_job_app()
        dispose_app(app)


def test_the_worker_removes_the_revoked_stations_mqtt_login(app, live_server, broker):
    base = live_server
    admin, token = csrf_session(base, "admin")
    page_html = admin.post(f"{base}/staff/stations/enrolment-codes", data={"csrf_token": token}).text
    plain = re.search(r'data-field="enrolment-code">([^<]+)<', page_html).group(1)
    answer = requests.post(f"{base}/api/v1/enrol", json={"code": plain, "hostname": "h", "version": "1"}).json()
    station_id = answer["station_id"]
    assert station_id in broker.dynsec_users()

    r = admin.post(f"{base}/staff/stations/{station_id}/revoke", data={"csrf_token": token})
    assert r.status_code == 200  # redirected to the dashboard
    api = {"Authorization": f"Bearer {answer['token']}"}
    assert requests.get(f"{base}/api/v1/time", headers=api).json()["code"] == "station_revoked"
    assert station_id in broker.dynsec_users()  # queued, not done in the request
    assert "removing its MQTT login" in admin.get(f"{base}/staff/stations").text

    work_queued_jobs(app)
    assert station_id not in broker.dynsec_users()
    assert "MQTT login removed" in admin.get(f"{base}/staff/stations").text
    with app.app_context():
        cut = db.session.scalars(select(Event).where(Event.kind == "station_mqtt_cut_off")).one()
        assert cut.station_id == station_id
        assert cut.payload == {"by": "admin", "notified": True, "removed": True, "problem": ""}
