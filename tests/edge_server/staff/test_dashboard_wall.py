"""A hundred stations on one 1920x1080 screen (the wall view), with Redis away: the page falls back
to polling and still shows every tile. Screenshot: tests/artifacts/staff/dashboard_wall_100.png."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from edge_server.extensions import db
from edge_server.models import StaffRole
from edge_server.services.staff import create_user
from edge_server.services.stations import record_status
from tests.edge_server.conftest import make_settings
from tests.edge_server.helpers import make_station
from tests.edge_server.staff.test_staff_pages import ARTIFACTS, PASSWORD, sign_in

FLAGS = [("no_face",), ("several_faces",), ("focus_lost",), ("mic_silent",), ("face_covered", "loud_noise")]


@pytest.fixture
def settings(db_url, tmp_path):
    # make_settings points Redis at a closed port: the live stream answers 503.
    return make_settings(db_url, tmp_path / "data", dashboard={"stale_seconds": 600})


@pytest.fixture
def hundred(app, live_server):
    now = datetime.now(timezone.utc)
    with app.app_context():
        for n in range(1, 101):
            station, _ = make_station(db.session, "c1", f"st-{n:03d}", seat=f"{'ABCDEFGHIJ'[(n - 1) // 10]}{(n - 1) % 10 + 1:02d}")
            if n == 100:
                continue  # never seen
            online = n % 19 != 0
            record_status(db.session, station.id, {
                "station": station.id, "online": online, "state": "waiting" if n % 7 == 0 else "answering",
                "lot": n, "question": 1 + n % 3, "time_left": 30.0 + (n * 37) % 240, "mic_level": (n % 10) / 10,
                "backlog": n % 4, "disk_free_mb": 20000 - n * 10, "clock_offset_ms": round((n % 9 - 4) * 3.5, 1),
                "flags": list(FLAGS[n // 17 % len(FLAGS)]) if n % 17 == 0 else [], "version": "2.4.0",
                "config": "3f9a1c0b7d2e"}, now)
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, "c1")
        db.session.commit()
    return live_server


def test_a_hundred_stations_fit_one_screen_while_polling(hundred, chromium):
    page = chromium.new_page(viewport={"width": 1920, "height": 1080})
    sign_in(page, hundred, "proctor", PASSWORD)
    page.wait_for_selector("#live[data-link=polling]")  # Redis is away: polling, and the page says so
    assert "Polling" in page.inner_text("#link-state")
    page.wait_for_function("document.querySelectorAll('#stations [data-station]').length === 100")
    assert page.query_selector("[data-action=revoke]") is None, "a proctor gets no revoke button"
    page.click("#wall")
    page.wait_for_selector("body.wall #stations.dense")
    assert not page.is_visible("header.top") and not page.is_visible("#help")
    boxes = page.eval_on_selector_all("#stations [data-station]", """els => els.map(e => {
        const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })""")
    assert len(boxes) == 100
    assert all(left >= 0 and top >= 0 and right <= 1920 and bottom <= 1080 for left, top, right, bottom in boxes), \
        max(b[3] for b in boxes)
    counts = {k: page.inner_text(f"[data-count={k}]") for k in ("all", "alerts", "offline")}
    # 5 offline (19, 38, ...), 5 flagged (17, 34, ...), 1 never seen (offline, no alert)
    assert counts == {"all": "100", "alerts": "10", "offline": "6"}
    assert "01:07" in page.inner_text("[data-station=st-001]")  # 30 + 37 s left
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_wall_100.png"))
    page.click("[data-filter=alerts]")
    assert len(page.query_selector_all("#stations [data-station]:not([hidden])")) == 10
    page.reload()  # the wall view is remembered
    page.wait_for_selector("body.wall")
    page.close()
