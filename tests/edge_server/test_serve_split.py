"""One gunicorn instance per audience (``serve``): the stations' never serves staff pages and the
staff's never serves the station API, so a staff sign-in flood cannot hold a station's thread
(issue 11, finding 3). The units set it (tests/test_systemd_units.py); bench/login_flood.py
measures it under a flood."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge_server import create_app
from edge_server.config import ConfigError
from edge_server.extensions import db
from tests.edge_server.conftest import clean_environment, dispose_app, make_settings
from tests.edge_server.helpers import make_station


@pytest.fixture
def apps(db_url: str, tmp_path: Path):
    """``{serve: test client}`` for the three settings, over one database with a station."""
    made = {serve: create_app(make_settings(db_url, tmp_path / "data", serve=serve))
            for serve in ("all", "stations", "staff")}
    try:
        with made["all"].app_context():
            _, token = make_station(db.session, "c1", "st-01")
            db.session.commit()
        yield {serve: app.test_client() for serve, app in made.items()}, token
    finally:
        for app in made.values():
            dispose_app(app)


def test_the_station_instance_serves_the_api_and_nothing_of_staff(apps):
    clients, token = apps
    stations = clients["stations"]
    assert stations.get("/api/v1/time", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert stations.get("/api/v1/time").status_code == 401  # the API's own answer: it is served here
    assert stations.get("/healthz").get_json() == {"ok": True}
    for method, path in (("GET", "/staff/login"), ("POST", "/staff/login"), ("GET", "/staff/"), ("GET", "/"),
                         ("GET", "/region/"), ("GET", "/static/staff.css"), ("GET", "/api/v1x")):
        resp = stations.open(path, method=method, data={"username": "admin", "password": "x"})
        assert resp.status_code == 404, (method, path)
        assert resp.get_json()["code"] == "not_found", (method, path)  # JSON, not a CSRF error or a page


def test_the_staff_instance_serves_pages_and_not_the_api(apps):
    clients, token = apps
    staff = clients["staff"]
    for path in ("/api/v1/time", "/api/v1", "/api/v1/uploads/x"):
        resp = staff.get(path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 404 and resp.get_json()["code"] == "not_found", path
    assert staff.post("/api/v1/enrol", json={"code": "x"}).status_code == 404
    assert staff.get("/staff/login").status_code == 200
    assert staff.get("/static/staff.css").status_code == 200
    assert staff.get("/healthz").get_json() == {"ok": True}
    assert staff.get("/staff/").status_code == 302  # to the sign-in page


def test_one_instance_serves_everything_by_default(apps):
    clients, token = apps
    everything = clients["all"]
    assert everything.get("/api/v1/time", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert everything.get("/staff/login").status_code == 200


def test_each_unit_chooses_with_the_environment(tmp_path: Path, monkeypatch):
    from edge_server.config import load_settings

    with clean_environment():
        assert make_settings("sqlite://", tmp_path).serve == "all"
        monkeypatch.setenv("EXAMKIOSK_SERVE", "stations")
        assert load_settings(Path("/nonexistent/edge.toml"), secret_key="k").serve == "stations"
        monkeypatch.setenv("EXAMKIOSK_SERVE", "station")
        with pytest.raises(ConfigError, match="serve"):
            load_settings(Path("/nonexistent/edge.toml"), secret_key="k")
