"""The live room with 1,000 stations in Chromium: every tile live, an off-screen one updated, a
burst of a thousand updates, the search by station, seat or lot, and the bridge's late banner.

Tiles reach the page as the bridge sends them: on the centre's Redis channel (``LivePublisher``),
through the real SSE stream. Screenshot: tests/artifacts/staff/dashboard_1000.png.
"""
from __future__ import annotations

import time

import pytest

from edge_server.extensions import db
from edge_server.models import StaffRole
from edge_server.services.live import LivePublisher
from edge_server.services.staff import create_user
from edge_server.services.stations import create_station
from tests.edge_server.conftest import make_settings
from tests.edge_server.helpers import make_centre
from tests.edge_server.staff.test_staff_pages import ARTIFACTS, PASSWORD, sign_in

CENTRE = "c1"
ROOM = 1000
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the page is what is tested here


def station_id(n: int) -> str:
    return f"st-{n:04d}"


def seat(n: int) -> str:
    return f"{chr(ord('A') + (n - 1) // 100)}-{(n - 1) % 100 + 1:02d}"


@pytest.fixture
def settings(db_url, tmp_path, redis_server):
    return make_settings(db_url, tmp_path / "data", centre=CENTRE, redis_url=redis_server.url,
                         dashboard={"stream_seconds": 600, "heartbeat_seconds": 5})


@pytest.fixture
def room(app, settings, live_server):
    with app.app_context():
        make_centre(db.session, CENTRE)
        for n in range(1, ROOM + 1):
            create_station(db.session, station_id(n), CENTRE, seat=seat(n))
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, CENTRE)
        db.session.commit()
    publisher = LivePublisher(settings.redis_url, CENTRE)
    try:
        yield live_server, publisher
    finally:
        publisher.close()


def tile(n: int, **values) -> dict:
    now = time.time()
    return {"id": station_id(n), "name": station_id(n), "seat": seat(n), "revoked": False, "online": True,
            "state": "waiting", "lot": n % 50 + 1, "question": None, "time_left": None, "mic_level": 0.2, "backlog": 0,
            "disk_free_mb": 9000, "clock_offset_ms": 0.4, "clock_uncertainty_ms": 0.2, "flags": [],
            "version": "2.4.0", "config": None, "last_seen": None, "seen_ts": now, "snapshot_at": None, **values}


def count(page, name: str) -> int:
    return int(page.inner_text(f"[data-count={name}]"))


def shown(page) -> list[str]:
    return page.eval_on_selector_all("#stations [data-station]:not([hidden])", "els => els.map(e => e.dataset.station)")


def test_a_room_of_a_thousand_stations_stays_live(room, chromium):
    base, publisher = room
    page = chromium.new_page(viewport={"width": 1920, "height": 1080})
    sign_in(page, base, "admin", PASSWORD)
    page.wait_for_selector("#live[data-link=live]")
    page.wait_for_function(f"document.querySelectorAll('#stations [data-station]').length === {ROOM}")
    assert count(page, "all") == ROOM and count(page, "offline") == ROOM and count(page, "alerts") == 0  # never seen

    # Every station reports at once (the bridge's flush): all thousand tiles follow.
    assert publisher.tiles([tile(n) for n in range(1, ROOM + 1)])
    page.wait_for_function(f"document.querySelectorAll('#stations [data-state=waiting]').length === {ROOM}",
                           timeout=30_000)

    # The last station, far below the screen, raises a flag: its tile, the alert count and the title.
    last = f"#stations [data-station={station_id(ROOM)}]"
    assert not page.evaluate(f"document.querySelector('{last}').getBoundingClientRect().top < innerHeight")
    assert publisher.tile(tile(ROOM, state="answering", question=2, flags=["several_faces"]))
    page.wait_for_selector(f"{last}[data-state=answering][data-alerts~=flag]", state="attached")
    assert count(page, "alerts") == 1 and page.get_attribute("#live", "data-alerts") == "1"
    assert "多人" in page.eval_on_selector(last, "el => el.textContent")  # off screen: not laid out, but there

    # The search: by station id, by seat, by lot (exactly).
    page.fill("#search", "st-0742")
    page.wait_for_function("document.querySelector('[data-count=shown]').textContent === '1'")
    assert shown(page) == ["st-0742"]
    page.fill("#search", seat(318))
    page.wait_for_function("document.querySelector('[data-count=shown]').textContent === '1'")
    assert shown(page) == [station_id(318)]
    page.fill("#search", "12")  # lot 12 exactly (st-0061 has it), and every id or seat with "12" in it
    page.wait_for_function("Number(document.querySelector('[data-count=shown]').textContent) > 1")
    lot_12 = {station_id(n) for n in range(1, ROOM + 1) if n % 50 + 1 == 12}
    by_text = {station_id(n) for n in range(1, ROOM + 1) if "12" in station_id(n) or "12" in seat(n)}
    assert set(shown(page)) == lot_12 | by_text and station_id(61) in lot_12 - by_text
    page.fill("#search", "")
    page.wait_for_function(f"document.querySelector('[data-count=shown]').textContent === '{ROOM}'")

    # The bridge is behind: a banner says by how much, and goes when it has caught up.
    assert publisher.publish({"type": "bridge", "late": True, "pending": 1200, "waited_s": 4.2})
    page.wait_for_selector("#bridge-late:not([hidden])")
    assert "4 秒" in page.inner_text("#bridge-late") and "1200" in page.inner_text("#bridge-late")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_1000.png"))
    assert publisher.publish({"type": "bridge", "late": False, "pending": 0, "waited_s": 0})
    page.wait_for_selector("#bridge-late", state="hidden")
    assert page.get_attribute("#live", "data-bridge") == "ok"
    page.close()
