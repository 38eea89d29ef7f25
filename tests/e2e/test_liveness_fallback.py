"""End to end: a station with the liveness challenge on, whose camera shows a photo being moved
about (the demo clip: a slow pan and zoom over two still photos of the enrolled person).

The face matches, but the kiosk's head-turn challenge sees a flat picture: three refused tries,
then the manual-review screen. A proctor opens the attempt on the staff page (every try with its
frame), issues a one-time fallback code, and the candidate types it on the kiosk to go on.
Real processes throughout (broker, Redis, gunicorn, daemon, worker, station), driven by Chromium.
"""
from __future__ import annotations

import pytest

from tests.e2e.centre import UI_TIMEOUT, explained, logs_of, on_screen, running_centre, shot

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory):
    with running_centre(tmp_path_factory.mktemp("live-centre"), "live", start_in=600.0, question_seconds=30,
                        liveness=("st-01",)) as running:
        yield running


def test_a_moved_photo_fails_liveness_and_a_fallback_code_lets_the_candidate_in(centre, chromium):
    demo, _ = centre
    logs = logs_of(demo, "station-st-01", "edge-web", "edge-api", "edge-daemon")
    # A page wait that runs out says which selector it waited for, then shows the logs.
    with explained("the liveness challenge and fallback code on st-01", logs):
        _liveness_then_fallback_code(centre, chromium)


def _liveness_then_fallback_code(centre, chromium):
    demo, login = centre
    kiosk = chromium.new_page(viewport={"width": 1280, "height": 800})
    staff = chromium.new_page(viewport={"width": 1280, "height": 800}, ignore_https_errors=True)  # the edge's own cert
    kiosk.goto(demo.kiosk_url("st-01"))
    staff.goto(f"{demo.web_url}/staff/")
    staff.fill("input[name=username]", login["username"])
    staff.fill("input[name=password]", login["password"])
    staff.click("input[type=submit]")
    staff.wait_for_selector("[data-station=st-01][data-online=true]", timeout=UI_TIMEOUT)

    on_screen(kiosk, "identify")
    for digit in "20240001":
        kiosk.click(f"[data-key='{digit}']")
    kiosk.click("[data-action=identify]")
    on_screen(kiosk, "face_login")
    directions = set()
    for attempt in range(1, 4):
        kiosk.click("[data-action=face_capture]")
        # The face matched: the kiosk asks for a head turn to one side.
        kiosk.wait_for_selector("[data-live=busy-text].challenge", timeout=UI_TIMEOUT)
        directions.add(kiosk.get_attribute("[data-live=busy-text]", "data-challenge"))
        if attempt == 1:
            shot(kiosk, "liveness_01_challenge")
        if attempt < 3:
            kiosk.wait_for_function(f"document.querySelector('[data-live=tries]').textContent === '{attempt}'",
                                    timeout=UI_TIMEOUT)
            notice = kiosk.inner_text("[data-live=notice]")
            assert "活体检测未通过" in notice, notice
            if attempt == 1:
                shot(kiosk, "liveness_02_refused")
    assert directions <= {"left", "right"} and directions
    on_screen(kiosk, "manual_review")

    # The proctor opens the attempt: every try with its frame, then issues a one-time code.
    staff.wait_for_selector("[data-review] [data-action=open-attempt]", timeout=UI_TIMEOUT)
    staff.click("[data-review] [data-action=open-attempt]")
    staff.wait_for_selector("[data-try]")
    tries = staff.query_selector_all("[data-try]")
    assert len(tries) == 3
    assert all(t.get_attribute("data-matched") == "false" for t in tries), "a refused liveness is a failed try"
    for i in range(3):
        staff.wait_for_function(
            f"document.querySelectorAll('[data-try] img[data-image=try]')[{i}]?.naturalWidth > 0", timeout=UI_TIMEOUT)
    staff.once("dialog", lambda dialog: dialog.accept())  # "Issue a one-time fallback code?"
    staff.click("[data-action=issue-code]")
    code = staff.inner_text("[data-issued-code] [data-field=code]").strip()
    assert len(code.replace(" ", "")) == 8
    shot(staff, "liveness_03_fallback_code")

    # A wrong code is refused on the kiosk with a clear message; the right one lets the candidate in.
    wrong = "00000000" if code.replace(" ", "") != "00000000" else "11111111"
    for digit in wrong:
        kiosk.click(f"[data-key='{digit}']")
    kiosk.click("[data-action=fallback_code]")
    kiosk.wait_for_function("document.querySelector('[data-live=notice]').textContent.includes('验证码不正确')",
                            timeout=UI_TIMEOUT)
    for digit in code.replace(" ", ""):
        kiosk.click(f"[data-key='{digit}']")
    shot(kiosk, "liveness_04_code_typed")
    kiosk.click("[data-action=fallback_code]")
    on_screen(kiosk, "read_flow")
    staff.reload()
    assert "fallback" in staff.inner_text("[data-attempt]").lower()
