"""The sittings page in a real browser: create with validation, edit, the time lock (server-side), roles."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Event, Sitting, StaffRole
from edge_server.services.staff import create_user
from tests.edge_server.helpers import make_centre, make_sitting
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session, sign_in

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "staff"
CENTRE = "c1"


@pytest.fixture
def centre(app, live_server):
    with app.app_context():
        make_centre(db.session, CENTRE)
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, CENTRE)
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, CENTRE)
        db.session.commit()
        return live_server


def local_input(value: datetime) -> str:
    """How a datetime-local input holds a UTC time in the server's (here: this process's) zone."""
    return value.astimezone().strftime("%Y-%m-%dT%H:%M")


def minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def test_admin_creates_and_edits_a_sitting(app, centre, chromium):
    base = centre
    start = minute(datetime.now(timezone.utc) + timedelta(days=2))
    page = chromium.new_page()
    sign_in(page, base, "admin", PASSWORD)
    page.click("[data-action=sittings]")
    page.click("[data-action=new-sitting]")
    page.fill("input[name=name]", "公务员面试 上午场")
    page.select_option("select[name=timing_mode]", "whole_session")
    page.fill("input[name=waiting_opens_at]", local_input(start - timedelta(minutes=30)))
    page.fill("input[name=lot_deadline_at]", local_input(start - timedelta(minutes=5)))
    page.fill("input[name=starts_at]", local_input(start))
    page.fill("input[name=entry_closes_at]", local_input(start - timedelta(minutes=1)))  # wrong: before the start
    page.fill("input[name=total_seconds]", "0")  # wrong: a whole session needs a duration
    page.click("[data-action=save-sitting]")
    assert "The entry cutoff must be after the start" in page.inner_text("[data-error=entry_closes_at]")
    assert "Whole-session timing needs a total" in page.inner_text("[data-error=total_seconds]")
    assert page.input_value("input[name=name]") == "公务员面试 上午场"  # nothing typed is lost
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sitting_form_errors.png"), full_page=True)
    with app.app_context():
        assert db.session.scalars(select(Sitting)).all() == []

    page.fill("input[name=entry_closes_at]", local_input(start + timedelta(minutes=3)))
    page.fill("input[name=total_seconds]", "1500")
    page.check("input[name=early_finish_allowed]")
    page.check("input[name=mock_required]")
    page.click("[data-action=save-sitting]")
    assert "Sitting created" in page.inner_text("main")
    assert "not imported yet" in page.inner_text("[data-field=paper]")
    with app.app_context():
        sitting = db.session.scalars(select(Sitting)).one()
        assert (sitting.name, sitting.kind, sitting.timing_mode) == ("公务员面试 上午场", "formal", "whole_session")
        # No paper yet: the sealed one is imported for this sitting on the Papers page.
        assert not sitting.paper.sealed and sitting.paper.question_seconds == []
        assert sitting.starts_at == start and sitting.entry_closes_at == start + timedelta(minutes=3)
        assert sitting.waiting_opens_at == start - timedelta(minutes=30)
        assert (sitting.total_seconds, sitting.early_finish_allowed, sitting.mock_required) == (1500, True, True)
        assert (sitting.max_interruptions, sitting.max_gap_seconds) == (1, 120)
        sitting_id = sitting.id

    page.fill("input[name=max_interruptions]", "2")
    page.fill("input[name=starts_at]", local_input(start + timedelta(minutes=10)))
    page.click("[data-action=save-sitting]")
    assert "The entry cutoff must be after the start" in page.inner_text("[data-error=entry_closes_at]")
    page.fill("input[name=entry_closes_at]", local_input(start + timedelta(minutes=13)))
    page.click("[data-action=save-sitting]")
    assert "Sitting saved" in page.inner_text("main")
    page.click("[data-action=sittings]")
    row = page.inner_text(f"[data-sitting={sitting_id}]")
    assert "公务员面试 上午场" in row and "editable" in row
    page.screenshot(path=str(ARTIFACTS / "sittings_list.png"), full_page=True)
    page.close()
    with app.app_context():
        sitting = db.session.get(Sitting, sitting_id)
        assert sitting.starts_at == start + timedelta(minutes=10) and sitting.max_interruptions == 2
        assert sitting.entry_closes_at == start + timedelta(minutes=13)
        created = db.session.scalars(select(Event).where(Event.kind == "sitting_created")).one()
        changed = db.session.scalars(select(Event).where(Event.kind == "sitting_changed")).one()
        assert created.payload["by"] == "admin" and created.payload["sitting"] == sitting_id
        assert changed.payload["changes"] == {
            "starts_at": [start.isoformat(), (start + timedelta(minutes=10)).isoformat()],
            "entry_closes_at": [(start + timedelta(minutes=3)).isoformat(), (start + timedelta(minutes=13)).isoformat()],
            "max_interruptions": [1, 2]}


def test_the_time_lock_once_the_waiting_room_is_open(app, centre, chromium):
    base = centre
    with app.app_context():
        sitting = make_sitting(db.session, CENTRE, "sit-open", starts_in=600, waiting_opens_before=1800,
                               name="已开放场次")
        starts_at = sitting.starts_at
        db.session.commit()
    page = chromium.new_page()
    sign_in(page, base, "admin", PASSWORD)
    page.goto(f"{base}/staff/sittings/sit-open")
    assert "only the name may change" in page.inner_text("[data-notice=locked]")
    assert page.is_disabled("input[name=starts_at]") and page.is_disabled("select[name=timing_mode]")
    assert page.is_disabled("input[name=max_interruptions]") and page.is_enabled("input[name=name]")
    page.fill("input[name=name]", "已开放场次（改名）")
    page.click("[data-action=save-sitting]")
    assert "Sitting saved" in page.inner_text("main")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sitting_locked.png"), full_page=True)
    page.close()

    # The lock is the server's: a request that does send a new start is refused, nothing changes.
    admin, token = csrf_session(base, "admin")
    later = local_input(starts_at + timedelta(minutes=15))
    r = admin.post(f"{base}/staff/sittings/sit-open", data={"csrf_token": token, "name": "x", "starts_at": later})
    assert r.status_code == 409
    assert re.search(r"only the name may change \(refused: starts_at\)", r.text)
    r = admin.post(f"{base}/staff/sittings/sit-open", data={"csrf_token": token, "name": "x", "max_interruptions": "5"})
    assert r.status_code == 409 and "refused: max_interruptions" in r.text
    with app.app_context():
        sitting = db.session.get(Sitting, "sit-open")
        assert (sitting.name, sitting.starts_at, sitting.max_interruptions) == ("已开放场次（改名）", starts_at, 1)
        changes = [e.payload["changes"] for e in db.session.scalars(select(Event).where(Event.kind == "sitting_changed"))]
        assert changes == [{"name": ["已开放场次", "已开放场次（改名）"]}]


def test_proctors_view_but_do_not_edit(app, centre):
    base = centre
    with app.app_context():
        make_sitting(db.session, CENTRE, "sit-a", name="Sitting A")
        db.session.commit()
    proctor, token = csrf_session(base, "proctor")
    assert "Sitting A" in proctor.get(f"{base}/staff/sittings").text
    page = proctor.get(f"{base}/staff/sittings/sit-a").text
    assert "Read only" in page and 'data-action="save-sitting"' not in page
    assert proctor.get(f"{base}/staff/sittings/new").status_code == 403
    assert proctor.post(f"{base}/staff/sittings/sit-a", data={"csrf_token": token, "name": "y"}).status_code == 403
    admin, token = csrf_session(base, "admin")
    assert admin.post(f"{base}/staff/sittings/sit-a", data={"name": "y"}).status_code == 400  # no CSRF token
    with app.app_context():
        assert db.session.get(Sitting, "sit-a").name == "Sitting A"


def test_models_match_the_migration(app):
    """The 0009 columns and tables as migrated are the ones the models describe."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from edge_server.models import Base

    with app.app_context(), db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diffs if re.search(r"candidate_import|station_id'.*candidate|candidate.*station_id|"
                                          r"question_seconds|early_finish|mock_required|uq_candidate", repr(d))]
    assert mine == []
