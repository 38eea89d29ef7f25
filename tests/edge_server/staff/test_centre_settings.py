"""The centre settings page: face threshold and voice prompts, validated, audited, sent to stations."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Centre, Event, StaffRole
from edge_server.services.staff import create_user
from tests.edge_server.helpers import make_candidate, make_sitting, make_station
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session, sign_in

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "staff"


@pytest.fixture
def centre(app, live_server):
    with app.app_context():
        _, token = make_station(db.session, "c1", "st-01")
        make_candidate(db.session, make_sitting(db.session, "c1"), ticket_no="20240077")
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, "c1")
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, "c1")
        db.session.commit()
    return live_server, {"Authorization": f"Bearer {token}"}


def stored(app) -> tuple[float, bool]:
    with app.app_context():
        c = db.session.get(Centre, "c1")
        return c.face_threshold, c.voice_prompts


def test_admin_changes_the_settings_with_validation(app, centre, chromium):
    base, station = centre
    page = chromium.new_page()
    sign_in(page, base, "admin", PASSWORD)
    page.click("[data-action=centre-settings]")
    assert page.input_value("input[name=face_threshold]") == "0.6"
    assert page.is_checked("input[name=voice_prompts]")

    for bad, message in [("0.95", "between 0.3 and 0.8"), ("0.2", "between 0.3 and 0.8"), ("", "Enter a threshold")]:
        page.fill("input[name=face_threshold]", bad)
        page.click("input[type=submit]")
        assert message in page.inner_text("[data-error=face_threshold]"), bad
        assert stored(app) == (0.6, True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "centre_settings_error.png"))

    page.fill("input[name=face_threshold]", "0.55")
    page.uncheck("input[name=voice_prompts]")
    page.click("input[type=submit]")
    assert "Settings saved" in page.inner_text("main")
    assert page.input_value("input[name=face_threshold]") == "0.55"
    assert not page.is_checked("input[name=voice_prompts]")
    page.screenshot(path=str(ARTIFACTS / "centre_settings.png"))
    page.close()
    assert stored(app) == (0.55, False)

    with app.app_context():
        from edge_server.services.audit import verify

        events = db.session.scalars(select(Event).where(Event.kind == "centre_settings_changed")).all()
        assert len(events) == 1 and events[0].source == "staff"
        assert events[0].payload == {"centre": "c1", "by": "admin",
                                     "changes": {"face_threshold": [0.6, 0.55], "voice_prompts": [True, False]}}
        assert verify(db.session) == []
    opened = requests.post(f"{base}/api/v1/attempts", json={"ticket_no": "20240077"}, headers=station).json()
    assert opened["centre"] == {"face_threshold": 0.55, "voice_prompts": False}


def test_only_a_centre_admin_may_change_them(centre):
    base, _ = centre
    proctor, token = csrf_session(base, "proctor")
    assert proctor.get(f"{base}/staff/centre").status_code == 403
    assert proctor.post(f"{base}/staff/centre", data={"csrf_token": token, "face_threshold": "0.5"}).status_code == 403
    admin, token = csrf_session(base, "admin")
    assert admin.post(f"{base}/staff/centre", data={"face_threshold": "0.5"}).status_code == 400  # no CSRF token
    r = admin.post(f"{base}/staff/centre", data={"csrf_token": token, "face_threshold": "0.81", "voice_prompts": "y"})
    assert r.status_code == 400 and "between 0.3 and 0.8" in r.text
    r = admin.post(f"{base}/staff/centre", data={"csrf_token": token, "face_threshold": "abc"})
    assert r.status_code == 400 and "data-error=\"face_threshold\"" in r.text
