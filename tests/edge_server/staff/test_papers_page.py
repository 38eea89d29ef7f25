"""Papers page in a real browser: a centre admin imports a paper file for a sitting; a bad file is
refused with every problem named and nothing stored; a good one is sealed and listed, unread."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Event, Sitting, StaffRole
from edge_server.services.staff import create_user
from tests.edge_server.helpers import make_sitting
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session, sign_in

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "staff"
GOOD = """\
title: 结构化面谈 第二场
instructions: 每题回答完毕后请说“回答完毕”。
questions:
  - text: 请谈谈你对“服务基层”的理解。
    seconds: 300
  - text: 如何处理与同事的分歧？
    seconds: 240
  - text: 请介绍一次你主动解决问题的经历。
    seconds: 180
"""
BAD = """\
title: 结构化面谈
questions:
  - text: 第一题
    secs: 300
  - text: ""
    seconds: 90000
"""


@pytest.fixture
def staffed(app, live_server):
    with app.app_context():
        make_sitting(db.session, "c1", "c1-morning", starts_in=3600, name="上午场 Morning")
        make_sitting(db.session, "c1", "c1-afternoon", starts_in=7200, name="下午场 Afternoon")
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, "c1")
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, "c1")
        db.session.commit()
    return live_server


def test_admin_imports_a_paper_a_bad_file_is_explained(app, staffed, chromium, tmp_path):
    bad, good = tmp_path / "paper.yaml", tmp_path / "afternoon.yaml"
    bad.write_text(BAD)
    good.write_text(GOOD)
    with app.app_context():
        before = db.session.get(Sitting, "c1-afternoon").paper_id
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, staffed, "admin", PASSWORD)
    page.click("[data-action=papers]")
    page.wait_for_selector("h1:has-text('Sealed papers')")
    assert page.get_attribute("[data-list=papers] tr[data-sitting=c1-afternoon]", "data-sealed") == "true"

    page.select_option("select[name=sitting]", "c1-afternoon")
    page.set_input_files("input[name=file]", str(bad))
    page.click("[data-action=import-paper]")
    problems = page.locator("[data-problems] [data-problem]").all_inner_texts()
    assert problems == [
        "questions[1]: unknown key 'secs' (allowed: text, seconds, pages, images)",
        "questions[1].seconds: required, whole seconds from 10 to 7200",
        "questions[2].text: required, a non-empty text",
        "questions[2].seconds: 90000 is not whole seconds from 10 to 7200",
    ]
    assert "The file was not imported" in page.inner_text("[data-problems]")
    assert page.input_value("select[name=sitting]") == "c1-afternoon"  # the choice is kept
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "papers_bad_file.png"), full_page=True)
    with app.app_context():
        assert db.session.get(Sitting, "c1-afternoon").paper_id == before  # nothing stored

    page.set_input_files("input[name=file]", str(good))
    page.click("[data-action=import-paper]")
    assert "Imported and sealed" in page.inner_text("[data-imported=c1-afternoon]")
    row = page.locator("[data-list=papers] tr[data-sitting=c1-afternoon]")
    assert row.locator("[data-field=questions]").inner_text() == "3"
    assert row.locator("[data-field=file]").inner_text().startswith("afternoon.yaml")
    assert "sealed" in row.locator("[data-field=state]").inner_text()
    assert "at the start" in row.locator("[data-field=key]").inner_text()
    content = page.content()
    assert "服务基层" not in content and "结构化面谈" not in content  # sealed: not even the title shows
    page.screenshot(path=str(ARTIFACTS / "papers_imported.png"), full_page=True)
    page.close()

    with app.app_context():
        kinds = [(e.kind, e.payload.get("by")) for e in db.session.scalars(
            select(Event).where(Event.kind.in_(["paper_imported", "paper_import_refused"])).order_by(Event.id))]
        assert kinds == [("paper_import_refused", "admin"), ("paper_imported", "admin")]
        assert db.session.get(Sitting, "c1-afternoon").paper.question_seconds == [300, 240, 180]


def test_only_a_centre_admin_imports(staffed):
    proctor, token = csrf_session(staffed, "proctor")
    assert "data-action=\"papers\"" not in proctor.get(f"{staffed}/staff/").text
    assert proctor.get(f"{staffed}/staff/papers").status_code == 403
    files = {"file": ("paper.yaml", GOOD.encode(), "application/yaml")}
    r = proctor.post(f"{staffed}/staff/papers", data={"csrf_token": token, "sitting": "c1-morning"}, files=files)
    assert r.status_code == 403
    admin, token = csrf_session(staffed, "admin")
    r = admin.post(f"{staffed}/staff/papers", data={"sitting": "c1-morning"}, files=files)  # no CSRF token
    assert r.status_code == 400 and "CSRF token is missing" in r.text
    r = admin.post(f"{staffed}/staff/papers", data={"csrf_token": token, "sitting": "c1-morning"})
    assert r.status_code == 400 and "Choose a paper file" in r.text
