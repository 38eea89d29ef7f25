"""The regional overview and an attempt page in Chromium: a regional admin signs in and reads the figures."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select

from region_server.extensions import db
from region_server.models import Attempt, Role
from tests.region_server.central_data import write_attempt, write_sitting
from tests.region_server.helpers import browser_sign_in, index_all, make_user, verify_all
from tests.services import served_app

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def live_server(app) -> Iterator[str]:
    with served_app(app) as url:
        yield url


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_regional_admin_reads_the_overview_and_an_attempt(app, central, station_key, live_server, chromium):
    w = central.writer
    write_attempt(w, "c1", "s1", 1, "a-1", station_key, per_camera=2)
    damaged = write_attempt(w, "c1", "s1", 2, "a-2", station_key, per_camera=2)
    write_attempt(w, "c2", "s2", 1, "b-1", station_key, per_camera=1)
    write_sitting(w, "c1", "s1", [{"lot": 1, "attempt": "a-1", "started": True, "finished": True,
                                    "complete_at_edge": True, "synced": True},
                                   {"lot": 2, "attempt": "a-2", "started": True, "finished": True,
                                    "complete_at_edge": True, "synced": True}], absent=1)
    w.delete(damaged.segments[2])
    index_all(app)
    verify_all(app)
    make_user(app, "admin", Role.REGIONAL_ADMIN)
    with app.app_context():
        damaged_id = db.session.scalar(select(Attempt.id).where(Attempt.manifest_key == damaged.key))

    page = chromium.new_page()
    try:
        browser_sign_in(page, live_server, "admin")
        assert page.url.endswith("/region/")
        c1 = page.locator('table[data-list=centres] tr[data-centre="c1"]')
        assert c1.locator("[data-field=attempts]").inner_text() == "2"
        assert c1.locator("[data-field=verified]").inner_text() == "1"
        assert c1.locator("[data-field=damaged]").inner_text() == "1"
        assert page.locator('tr[data-centre="c2"] [data-field=verified]').inner_text() == "1"
        s1 = page.locator('table[data-list=sittings] tr[data-sitting="c1/s1"]')
        assert s1.locator("[data-field=expected]").inner_text() == "3"
        assert s1.locator("[data-field=verified]").inner_text() == "1 / 2"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "region-overview.png"), full_page=True)

        s1.locator("[data-action=open-sitting]").click()
        lot2 = page.locator('table[data-list=lots] tr[data-lot="2"]')
        assert lot2.locator("[data-field=central]").inner_text() == "损坏或缺失 damaged"
        assert damaged.segments[2] in lot2.locator("[data-field=wrong]").inner_text()
        lot2.locator("[data-action=open-attempt]").click()
        page.wait_for_url(f"**/region/attempts/{damaged_id}")
        assert page.locator("[data-field=verification]").inner_text() == "损坏或缺失 damaged"
        assert page.locator("[data-field=chain]").inner_text() == "链断裂 broken"
        row = page.locator(f'table[data-list=objects] tr[data-key="{damaged.segments[2]}"]')
        assert row.locator("[data-field=check]").inner_text() == "中心缺失 missing in central"
        assert page.locator("table[data-list=objects] tbody tr").count() == 8  # 7 objects and the manifest
        img = page.locator("[data-list=frames] img").first
        page.wait_for_function("(img) => img.complete && img.naturalWidth === 64", arg=img.element_handle(),
                               timeout=15_000)  # the face-login frame, read from central storage, shown
        assert page.locator("table[data-list=timeline] tr[data-what=flag]").count() == 1
        assert page.locator("table[data-list=timeline] tr[data-what=face_try]").count() == 1
        page.screenshot(path=str(ARTIFACTS / "region-attempt.png"), full_page=True)
    finally:
        page.close()
