"""End to end: help chat (求助) and a broadcast, on the demo centre's real processes, driven by Chromium.

The candidate identifies, presses 求助 on the kiosk, picks a quick reason and sends; the dashboard's
station tile shows the help alert and the help panel the request; the proctor replies, and the kiosk
shows a reply notice and the reply in its panel. Then the proctor sends a notice to the sitting: the
kiosk shows it as a banner that stays (even across a reload) until the candidate acknowledges it,
and the dashboard counts the acknowledgement. Screenshots: tests/artifacts/e2e/help_*.png.
"""
from __future__ import annotations

import pytest

from tests.e2e.centre import UI_TIMEOUT, explained, logs_of, running_centre, shot

pytestmark = pytest.mark.e2e

HELP_TEXT = "摄像头画面卡住了"
REPLY = "请稍等，监考老师马上过来检查设备。"
NOTICE = "第 2 题题干更正：请朗读两段文字，不是三段。"


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory):
    with running_centre(tmp_path_factory.mktemp("help-centre"), "help", start_in=900.0,
                        question_seconds=30) as running:
        yield running


def test_help_reply_and_broadcast_between_kiosk_and_dashboard(centre, chromium):
    demo, _ = centre
    logs = logs_of(demo, "station-st-01", "edge-web", "edge-api", "edge-daemon")
    # A page wait that runs out says which selector it waited for, then shows the logs.
    with explained("the help chat and broadcast between st-01's kiosk and the dashboard", logs):
        _help_and_broadcast(centre, chromium)


def _help_and_broadcast(centre, chromium):
    demo, login = centre
    kiosk = chromium.new_page(viewport={"width": 1280, "height": 800})
    staff = chromium.new_page(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)  # the edge's own cert
    staff.goto(f"{demo.web_url}/staff/")
    staff.fill("input[name=username]", login["username"])
    staff.fill("input[name=password]", login["password"])
    staff.click("input[type=submit]")
    staff.wait_for_selector("[data-station=st-01][data-online=true]", timeout=UI_TIMEOUT)
    assert staff.query_selector("[data-help-alert]") is None
    # The live room runs on the event stream (gunicorn, Redis) and shows the running agent's camera snapshot.
    staff.wait_for_selector("#live[data-link=live]")
    staff.wait_for_function("""() => { const i = document.querySelector('[data-station=st-01] img[data-snapshot]');
                                       return i && !i.hidden && i.complete && i.naturalWidth === 320; }""",
                            timeout=UI_TIMEOUT)

    # The candidate identifies, then asks for help with a quick reason (and a few words).
    kiosk.goto(demo.kiosk_url("st-01"))
    kiosk.wait_for_selector("html[data-screen=identify]", timeout=UI_TIMEOUT)
    assert kiosk.inner_text("#help-button").strip() == "求助", "the help button is there before identification"
    for digit in "20240001":
        kiosk.click(f"[data-key='{digit}']")
    kiosk.click("[data-action=identify]")
    kiosk.wait_for_selector("html[data-screen=face_login]", timeout=UI_TIMEOUT)
    kiosk.click("#help-button")
    kiosk.wait_for_selector("#help-panel:not([hidden]) [data-action=help_reason]")
    kiosk.click("[data-action=help_send]")  # no reason chosen yet: the panel says so
    assert kiosk.get_attribute("[data-live=help-status]", "data-status") == "choose"
    kiosk.click("[data-reason=device]")
    kiosk.fill("#help-text", HELP_TEXT)
    shot(kiosk, "help_01_kiosk_panel")
    kiosk.click("[data-action=help_send]")
    kiosk.wait_for_selector("[data-live=help-history] [data-kind=help][data-pending=false]", timeout=UI_TIMEOUT)
    assert HELP_TEXT in kiosk.inner_text("[data-live=help-history]")
    assert "设备故障" in kiosk.inner_text("[data-live=help-history]")
    kiosk.wait_for_selector("[data-live=help-status][data-status=sent]")
    shot(kiosk, "help_02_kiosk_sent")
    kiosk.click("[data-action=help_close]")

    # The dashboard: the station's tile alerts, the help panel shows the request (and a beep was tried).
    staff.wait_for_selector("[data-station=st-01] [data-help-alert=st-01]", timeout=UI_TIMEOUT)
    card = staff.wait_for_selector("[data-thread][data-waiting=true]", timeout=UI_TIMEOUT)
    assert card.get_attribute("data-thread-station") == "st-01"
    assert HELP_TEXT in card.inner_text() and "设备故障" in card.inner_text()
    assert staff.get_attribute("#help", "data-beep") in ("played", "blocked")
    assert staff.inner_text("#help-count").startswith("1")
    shot(staff, "help_03_dashboard_alert")

    # The proctor replies: the kiosk shows a notice, then the reply in its panel.
    card.query_selector("textarea[name=text]").fill(REPLY)
    card.query_selector("[data-action=reply]").click()
    staff.wait_for_selector("[data-thread][data-waiting=false] [data-kind=reply]", timeout=UI_TIMEOUT)
    kiosk.wait_for_selector("#help-toast:not([hidden])", timeout=UI_TIMEOUT)
    assert REPLY in kiosk.inner_text("#help-toast")
    assert kiosk.inner_text("[data-live=help-unread]") == "1"
    shot(kiosk, "help_04_kiosk_reply_notice")
    kiosk.click("#help-toast [data-action=help]")
    kiosk.wait_for_selector("[data-live=help-history] [data-kind=reply]")
    assert REPLY in kiosk.inner_text("[data-live=help-history] [data-kind=reply]")
    kiosk.wait_for_function("document.querySelector('[data-live=help-unread]').textContent === ''",
                            timeout=UI_TIMEOUT)
    shot(kiosk, "help_05_kiosk_reply_panel")
    kiosk.click("[data-action=lang]")  # the same panel in English
    kiosk.wait_for_function("document.querySelector('#help-panel h2').textContent === 'Help'")
    assert "Device problem" in kiosk.inner_text("[data-live=help-history]")
    shot(kiosk, "help_06_kiosk_panel_en")
    kiosk.click("[data-action=lang]")
    kiosk.click("[data-action=help_close]")
    staff.wait_for_selector("[data-station=st-01] [data-help-open=st-01]", timeout=UI_TIMEOUT)
    assert staff.query_selector("[data-help-alert]") is None, "answered: no longer an alert"

    # A notice to the sitting: a banner on the kiosk until the candidate acknowledges it.
    staff.wait_for_selector("#broadcast-form select[name=sitting] option", state="attached")
    staff.fill("#broadcast-form textarea[name=text]", NOTICE)
    staff.click("[data-action=broadcast]")
    staff.wait_for_function(
        "document.querySelector('[data-field=broadcast-result]').textContent.includes('1')", timeout=UI_TIMEOUT)
    banner = kiosk.wait_for_selector("[data-broadcast]", timeout=UI_TIMEOUT)
    assert NOTICE in banner.inner_text()
    shot(kiosk, "help_07_kiosk_broadcast_banner")
    kiosk.reload()  # it stays until acknowledged
    kiosk.wait_for_selector("html[data-screen=face_login]", timeout=UI_TIMEOUT)
    kiosk.wait_for_selector("[data-broadcast]", timeout=UI_TIMEOUT)
    staff.wait_for_selector("[data-broadcast][data-acknowledged='0'][data-stations='1']")
    kiosk.click("[data-action=ack_broadcast]")
    kiosk.wait_for_selector("[data-broadcast]", state="detached", timeout=UI_TIMEOUT)
    staff.wait_for_selector("[data-broadcast][data-acknowledged='1']", timeout=UI_TIMEOUT)
    kiosk.wait_for_timeout(1_000)
    assert kiosk.query_selector("[data-broadcast]") is None, "an acknowledged notice does not come back"
    shot(staff, "help_08_dashboard_broadcast_acknowledged")

    # Resolved: the thread greys out and the tile has no help mark.
    staff.click("[data-thread] [data-action=resolve]")
    staff.wait_for_selector("[data-thread][data-status=resolved]", timeout=UI_TIMEOUT)
    staff.wait_for_function("!document.querySelector('[data-station=st-01] [data-help-open], [data-help-alert]')",
                            timeout=UI_TIMEOUT)
    kiosk.close()
    staff.close()
