"""The face-review page in a real browser: every try with its frame beside the enrolled photo, and a
one-time fallback code issued, shown once, then used by the station."""
from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import cv2
import pytest
import requests
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Sitting, StaffRole
from edge_server.services.staff import create_user
from provisioning import assets
from tests.edge_server.helpers import make_candidate, make_sitting, make_station
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session, sign_in

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "staff"
DISTANCES = [0.71, 0.66, 0.74]


def jpeg_b64(path: Path, width: int) -> str:
    image = cv2.imread(str(path))
    image = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return base64.b64encode(data.tobytes()).decode()


@pytest.fixture
def failed_login(app, live_server, tmp_path):
    """Candidate 王芳 (enrolled with Grace Hopper's photo) failed face login three times at st-01;
    each try sent the frame it matched (the astronaut), then a review was requested."""
    photo = tmp_path / "enrolled.jpg"
    shutil.copyfile(assets.grace_hopper_image(), photo)
    with app.app_context():
        _, token = make_station(db.session, "c1", "st-01")
        candidate = make_candidate(db.session, make_sitting(db.session, "c1"), ticket_no="20240042", name="王芳")
        candidate.photo_path = str(photo)
        for name, role in [("proctor", StaffRole.PROCTOR), ("admin", StaffRole.CENTRE_ADMIN),
                           ("regional", StaffRole.REGIONAL_ADMIN)]:
            create_user(db.session, name, PASSWORD, role, "c1")
        db.session.commit()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    attempt = api.post(f"{live_server}/api/v1/attempts", json={"ticket_no": "20240042"}).json()["id"]
    frame = jpeg_b64(assets.astronaut_image(), 200)
    for distance in DISTANCES:
        r = api.post(f"{live_server}/api/v1/attempts/{attempt}/face-tries",
                     json={"matched": False, "distance": distance, "frame_jpeg": frame})
        assert r.status_code == 200, r.text
    r = api.post(f"{live_server}/api/v1/attempts/{attempt}/review", json={"best_distance": 0.66, "frame_jpeg": frame})
    assert r.status_code == 201
    return live_server, api, attempt


def images_loaded(page, selector: str) -> list[int]:
    page.wait_for_function(f"[...document.querySelectorAll({selector!r})].every(i => i.complete)")
    return page.eval_on_selector_all(selector, "els => els.map(i => i.naturalWidth)")


def test_proctor_sees_every_try_and_issues_a_code_shown_once(failed_login, chromium):
    base, api, attempt = failed_login
    page = chromium.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, base, "proctor", PASSWORD)
    page.click("[data-review] [data-action=open-attempt]")
    page.wait_for_selector(f"[data-attempt='{attempt}']")
    assert "王芳" in page.inner_text("h1")

    rows = page.locator("tr[data-try]")
    assert rows.count() == 3
    assert page.locator("tr[data-try] [data-field=distance]").all_inner_texts() == [f"{d:.3f}" for d in DISTANCES]
    assert all("不匹配" in t for t in page.locator("tr[data-try] [data-field=matched]").all_inner_texts())
    assert all(w == 200 for w in images_loaded(page, "img[data-image=try]"))  # the thumbnails really load
    assert images_loaded(page, "img[data-image=photo]") == [cv2.imread(str(assets.grace_hopper_image())).shape[1]]
    assert images_loaded(page, "img[data-image=frame]") == [200]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "face_review_tries.png"), full_page=True)

    page.click("[data-action=issue-code]")
    shown = page.inner_text("[data-issued-code] [data-field=code]")
    assert re.fullmatch(r"\d{4} \d{4}", shown)
    assert "只显示一次" in page.inner_text("[data-issued-code]")
    assert page.locator("tr[data-code]").get_attribute("data-state") == "active"
    page.screenshot(path=str(ARTIFACTS / "fallback_code_issued.png"), full_page=True)

    # Shown once: the page seen again does not have it.
    page.goto(f"{base}/staff/attempts/{attempt}")
    assert page.locator("[data-issued-code]").count() == 0
    assert shown not in page.content() and shown.replace(" ", "") not in page.content()

    # The candidate types it at the station.
    r = api.post(f"{base}/api/v1/attempts/{attempt}/fallback-code", json={"code": shown})
    assert r.status_code == 200 and r.json()["status"] == "approved"
    page.reload()
    assert "fallback code" in page.inner_text("[data-field=verified]")
    assert page.locator("tr[data-code]").get_attribute("data-state") == "used"
    assert page.locator("[data-action=issue-code]").count() == 0  # nothing left to issue
    page.close()


def test_frames_need_a_signed_in_staff_member_and_roles_are_enforced(failed_login):
    base, _, attempt = failed_login
    page_url = f"{base}/staff/attempts/{attempt}"
    session, _ = csrf_session(base, "proctor")
    frame_url = base + re.search(r'src="(/staff/face-tries/\d+\.jpg)"', session.get(page_url).text).group(1)
    assert session.get(frame_url).headers["content-type"] == "image/jpeg"
    for url in (frame_url, page_url, f"{base}/staff/attempts/{attempt}/photo.jpg"):
        r = requests.get(url, allow_redirects=False)
        assert r.status_code == 302 and "/staff/login" in r.headers["Location"], url
    # A regional admin may look but not issue; a centre admin may issue; no CSRF token, no code.
    regional, token = csrf_session(base, "regional")
    assert regional.post(f"{page_url}/fallback-code", data={"csrf_token": token}).status_code == 403
    admin, token = csrf_session(base, "admin")
    assert admin.post(f"{page_url}/fallback-code", data={}).status_code == 400
    r = admin.post(f"{page_url}/fallback-code", data={"csrf_token": token})
    assert r.status_code == 201 and "data-issued-code" in r.text
    assert "no-store" in r.headers["Cache-Control"]


def test_failing_face_logins_without_a_review_are_listed_for_staff(app, failed_login):
    base, api, reviewed = failed_login
    with app.app_context():
        sitting = db.session.scalar(select(Sitting))
        make_candidate(db.session, sitting, ticket_no="20240043", name="李雷")
        db.session.commit()
    attempt = api.post(f"{base}/api/v1/attempts", json={"ticket_no": "20240043"}).json()["id"]
    api.post(f"{base}/api/v1/attempts/{attempt}/face-tries", json={"matched": False, "distance": 0.8})
    session, _ = csrf_session(base, "proctor")
    data = session.get(f"{base}/staff/api/reviews").json()
    assert [r["attempt"] for r in data["reviews"]] == [reviewed]
    assert data["face_failures"] == [{"attempt": attempt, "ticket_no": "20240043", "name": "李雷", "station": "st-01",
                                      "tries": 1}]
    # Staff can issue a code before any review was requested.
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      session.get(f"{base}/staff/attempts/{attempt}").text).group(1)
    r = session.post(f"{base}/staff/attempts/{attempt}/fallback-code", data={"csrf_token": token})
    assert r.status_code == 201
    code = re.search(r'data-field="code">(\d{4} \d{4})<', r.text).group(1)
    assert api.post(f"{base}/api/v1/attempts/{attempt}/fallback-code", json={"code": code}).status_code == 200
    assert session.get(f"{base}/staff/api/reviews").json()["face_failures"] == []
