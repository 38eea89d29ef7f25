"""Stations page details (rename, seat, software and config version), in Chromium; who may do what
(a proctor reaches no admin action, a regional admin only reads; the edge has no regional pages: the
regional server, region_server/, reads central storage).
Screenshot: tests/artifacts/staff/stations_details.png."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Event, Segment, SegmentStatus, StaffRole, Station, SyncStatus
from edge_server.services.staff import create_user
from edge_server.services.stations import record_status
from tests.edge_server.helpers import make_attempt, make_candidate, make_centre, make_sitting, make_station
from tests.edge_server.staff.test_staff_pages import ARTIFACTS, PASSWORD, csrf_session, sign_in


@pytest.fixture
def centres(app, live_server):
    """Centres c1 and c2; c1 has st-01 (reporting version and config) and st-02; an attempt in each centre."""
    now = datetime.now(timezone.utc)
    with app.app_context():
        make_centre(db.session, "c1", "Centre One")
        make_centre(db.session, "c2", "Centre Two")
        st01, _ = make_station(db.session, "c1", "st-01", seat="A01")
        st02, _ = make_station(db.session, "c1", "st-02")
        make_station(db.session, "c2", "st-91")
        record_status(db.session, "st-01", {"station": "st-01", "online": True, "version": "2.4.0",
                                            "config": "3f9a1c0b7d2e"}, now)
        synced = make_attempt(db.session, make_candidate(db.session, make_sitting(db.session, "c1", "sit-c1"),
                                                         ticket_no="=2024001", name="王小明"), st01, lot=1)
        synced.expected_segments = ["q1-main-0001"]
        synced.finished_at = now
        synced.sync_status, synced.synced_at = SyncStatus.SYNCED, now
        db.session.add(Segment(attempt_id=synced.id, station_id="st-01", name="q1-main-0001", length=10, offset=10,
                               sha256_declared="0" * 64, sha256_actual="0" * 64, status=SegmentStatus.VERIFIED))
        lost = make_attempt(db.session, make_candidate(db.session, make_sitting(db.session, "c2", "sit-c2"),
                                                       ticket_no="2024901"), None, lot=2)
        lost.expected_segments, lost.finished_at = ["q1-main-0001", "q1-main-0002"], now
        lost.sync_status = SyncStatus.FAILED
        for name, role, centre in [("admin", StaffRole.CENTRE_ADMIN, "c1"), ("proctor", StaffRole.PROCTOR, "c1"),
                                   ("regional", StaffRole.REGIONAL_ADMIN, None)]:
            create_user(db.session, name, PASSWORD, role, centre)
        db.session.commit()
    return live_server


def test_admin_renames_and_seats_a_station(app, centres, chromium):
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    sign_in(page, centres, "admin", PASSWORD)
    page.click("[data-action=stations-provisioning]")
    row = "[data-list=stations] tr[data-station=st-01]"
    assert page.inner_text(f"{row} [data-field=version]") == "2.4.0"
    assert page.inner_text(f"{row} [data-field=config]") == "3f9a1c0b7d2e"
    page.fill(f"{row} input[name=name]", "二号考场 5 号机")
    page.fill(f"{row} input[name=seat]", "B07")
    page.click(f"{row} [data-action=save-details]")
    assert "Station saved" in page.inner_text("main")
    assert page.inner_text(f"{row} [data-field=name]") == "二号考场 5 号机"
    assert "B07" in page.inner_text(f"{row} [data-field=seat]")

    # A seat another station holds: a clear message, the typed values kept, nothing changed.
    other = "[data-list=stations] tr[data-station=st-02]"
    page.fill(f"{other} input[name=name]", "Spare PC")
    page.fill(f"{other} input[name=seat]", "B07")
    page.click(f"{other} [data-action=save-details]")
    assert "already station st-01's" in page.inner_text(f"{other} [data-field=details-error]")
    assert page.input_value(f"{other} input[name=name]") == "Spare PC"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stations_details.png"), full_page=True)
    page.fill(f"{other} input[name=name]", "   ")
    page.fill(f"{other} input[name=seat]", "")
    page.click(f"{other} [data-action=save-details]")
    assert "needs a name" in page.inner_text(f"{other} [data-field=details-error]")
    page.close()

    with app.app_context():
        assert (db.session.get(Station, "st-02").name, db.session.get(Station, "st-02").seat) == ("st-02", "")
        events = db.session.scalars(select(Event).where(Event.kind == "station_details_changed")).all()
        assert [(e.station_id, e.payload) for e in events] == [
            ("st-01", {"by": "admin", "changes": {"name": ["st-01", "二号考场 5 号机"], "seat": ["A01", "B07"]}})]


def test_roles_proctor_reaches_no_admin_action_and_regional_only_reads(app, centres):
    base = centres
    admin, token = csrf_session(base, "admin")
    assert admin.post(f"{base}/staff/stations/st-01/details", data={"name": "x", "seat": ""}).status_code == 400
    assert admin.post(f"{base}/staff/stations/st-91/details",
                      data={"csrf_token": token, "name": "x"}).status_code == 404  # another centre's station

    for username in ("proctor", "regional"):
        session, token = csrf_session(base, username)
        html = session.get(f"{base}/staff/").text
        assert "data-action=\"revoke\"" not in html and "stations-provisioning" not in html
        posts = ["/staff/stations/st-01/details", "/staff/stations/st-01/revoke", "/staff/stations/enrolment-codes",
                 "/staff/centre"]
        for path in posts:
            r = session.post(f"{base}{path}", data={"csrf_token": token, "name": "hijack", "seat": "Z9",
                                                    "face_threshold": "0.5"})
            assert r.status_code == 403, (username, path)
        assert session.get(f"{base}/staff/stations").status_code == 403
        assert session.get(f"{base}/staff/centre").status_code == 403
    for username in ("admin", "proctor", "regional"):  # no /region on the edge any more
        session, _ = csrf_session(base, username)
        for path in ("/region/", "/region/attempts.csv", "/region/api/attempts"):
            assert session.get(f"{base}{path}").status_code == 404, (username, path)
    with app.app_context():
        station = db.session.get(Station, "st-01")
        assert (station.name, station.seat, station.revoked_at) == ("st-01", "A01", None)
