"""The kiosk's screens fit the station's screen: every control of the identify screen is in view
and not under the fixed footer, without scrolling (a candidate cannot be expected to scroll a
kiosk to find 确认). Checked in Chromium at the screen sizes stations use."""
from __future__ import annotations

import pytest

from station.kiosk.app import serve_kiosk
from station.runtime.runner import Runtime
from tests.services import free_port
from tests.station.test_kiosk_requests import station_settings

SCREENS = [(1280, 800), (1024, 768), (1920, 1080)]


@pytest.fixture
def kiosk_url(tmp_path):
    port = free_port()
    runtime = Runtime(station_settings(tmp_path, port))
    server = serve_kiosk(runtime.kiosk, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        runtime.stop()


# For each control: is its centre inside the window and is the control itself what a touch there hits?
CONTROLS_IN_REACH = """() => [...document.querySelectorAll("[data-key], [data-action]")].map(el => {
    const r = el.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
    const inside = r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth;
    const hit = document.elementFromPoint(x, y);
    return [el.dataset.key || el.dataset.action, inside && hit !== null && (hit === el || el.contains(hit))];
})"""


@pytest.mark.parametrize("width,height", SCREENS, ids=[f"{w}x{h}" for w, h in SCREENS])
def test_every_identify_control_is_in_reach_without_scrolling(kiosk_url, chromium, width, height):
    page = chromium.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(kiosk_url)
        page.wait_for_selector("html[data-screen=identify] [data-action=identify]")
        controls = dict(page.evaluate(CONTROLS_IN_REACH))
        assert "identify" in controls and "0" in controls, controls
        out_of_reach = sorted(name for name, reachable in controls.items() if not reachable)
        assert out_of_reach == [], f"at {width}x{height} these controls are off screen or covered: {out_of_reach}"
    finally:
        page.close()
