"""Staff pages in a real browser: sign-in lockout, CSRF, roles, revoking a station."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from edge_server.extensions import db
from edge_server.models import StaffRole
from edge_server.services.staff import MAX_FAILURES, create_user
from tests.edge_server.helpers import make_station

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "staff"
PASSWORD = "correct horse battery"


@pytest.fixture
def staffed(app, live_server):
    with app.app_context():
        make_station(db.session, "c1", "st-01")
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, "c1")
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, "c1")
        db.session.commit()
    return live_server


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/staff/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")


def test_lockout_after_repeated_failures(staffed, chromium):
    page = chromium.new_page()
    for _ in range(MAX_FAILURES):
        sign_in(page, staffed, "admin", "wrong password!")
        assert "Wrong username or password" in page.inner_text("main")
    sign_in(page, staffed, "admin", PASSWORD)  # right password, but locked now
    assert "登录失败次数过多" in page.inner_text("main") and "/staff/login" in page.url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "login_lockout.png"))
    sign_in(page, staffed, "proctor", PASSWORD)  # another account is not affected
    page.wait_for_selector("[data-list=stations]")
    page.close()


def csrf_session(base: str, username: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      session.get(f"{base}/staff/login").text).group(1)
    r = session.post(f"{base}/staff/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 200 and "/staff/" in r.url
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', session.get(f"{base}/staff/").text).group(1)
    return session, token


def test_forms_without_csrf_token_are_rejected(staffed):
    r = requests.post(f"{staffed}/staff/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 400 and "CSRF" in r.text
    session, _ = csrf_session(staffed, "admin")
    r = session.post(f"{staffed}/staff/stations/st-01/revoke", data={})
    assert r.status_code == 400


def test_a_proctor_cannot_revoke_a_station(staffed):
    session, token = csrf_session(staffed, "proctor")
    r = session.post(f"{staffed}/staff/stations/st-01/revoke", data={"csrf_token": token})
    assert r.status_code == 403


def test_admin_revokes_a_station_and_its_token_stops_working(app, staffed, chromium):
    with app.app_context():
        from edge_server.models import Station
        from edge_server.services.stations import hash_token

        station = db.session.get(Station, "st-01")
        station.token_hash = hash_token("st-01-token")
        db.session.commit()
    api = {"Authorization": "Bearer st-01-token"}
    assert requests.get(f"{staffed}/api/v1/time", headers=api).status_code == 200
    page = chromium.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, staffed, "admin", PASSWORD)
    page.click("[data-station=st-01] [data-action=revoke]")
    page.wait_for_selector("[data-station=st-01][data-revoked=true]")
    assert "已吊销 revoked" in page.inner_text("[data-station=st-01]")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_revoked.png"))
    r = requests.get(f"{staffed}/api/v1/time", headers=api)
    assert r.status_code == 403 and r.json()["code"] == "station_revoked"
    page.close()


def test_admission_ticket_qr_logs_back_to_the_ticket_number(app, staffed, chromium):
    import cv2
    import numpy as np

    from station.vision.qr import decode_ticket
    from tests.edge_server.helpers import make_candidate, make_sitting

    with app.app_context():
        make_candidate(db.session, make_sitting(db.session, "c1"), ticket_no="20249999", name="王芳")
        db.session.commit()
    page = chromium.new_page()
    sign_in(page, staffed, "proctor", PASSWORD)
    page.wait_for_selector("[data-ticket='20249999'] [data-action=ticket-png]")
    png = page.request.get(f"{staffed}/staff/candidates/20249999/ticket.png")
    assert png.status == 200 and png.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(png.body(), np.uint8), cv2.IMREAD_COLOR)
    assert decode_ticket(image) == "20249999"
    pdf = page.request.get(f"{staffed}/staff/candidates/20249999/ticket.pdf")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    assert page.request.get(f"{staffed}/staff/candidates/nobody/ticket.pdf").status == 404
    page.close()
    assert requests.get(f"{staffed}/staff/candidates/20249999/ticket.png", allow_redirects=False).status_code == 302
