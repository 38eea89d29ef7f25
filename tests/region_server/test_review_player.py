"""The review player in Chromium: both cameras play in sync, a flag mark seeks both to its offset,
the keyboard shortcuts work, the media arrives in ranges (206), and a reviewer decides a flag."""
from __future__ import annotations

from pathlib import Path

import pytest

from region_server.audit import AuditRow
from region_server.extensions import db
from region_server.models import Role
from region_server.review.models import Decision, FlagDecision
from tests.region_server import review_world as world
from tests.region_server.helpers import browser_sign_in, make_user
from tests.services import wait_for

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "region"
TIMES = "[document.querySelector('video[data-role=main]').currentTime," \
        " document.querySelector('video[data-role=evidence]').currentTime]"


def state(page) -> dict:
    return page.evaluate("""() => { const m = document.querySelector('video[data-role=main]'),
        e = document.querySelector('video[data-role=evidence]');
        return {main: m.currentTime, evidence: e.currentTime, paused: m.paused, evidencePaused: e.paused,
                muted: m.muted, evidenceMuted: e.muted, ready: Math.min(m.readyState, e.readyState)}; }""")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_cameras_play_in_sync_flags_seek_and_shortcuts_work(app, central, chromium):
    world.write_sitting(central.writer.put, lots=(7,))
    world.index(app)
    make_user(app, "reviewer", Role.REVIEWER)
    _, attempts = world.ids(app)
    with world.served(app) as base:
        page = chromium.new_page()
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status) if "/media/" in r.url else None)
        browser_sign_in(page, base, "reviewer")
        page.goto(f"{base}/review/attempts/{attempts[7]}/q/1")
        assert "签号 Lot 007" in page.inner_text("h1")
        assert "J 后退 10 秒 back 10 s" in page.inner_text("[data-field=shortcuts]")
        wait_for(lambda: state(page)["ready"] >= 1, 30, "both videos to load their metadata")

        page.keyboard.press(" ")  # a key press is a user gesture: playing with sound is allowed
        wait_for(lambda: min(page.evaluate(TIMES)) > 1.5, 30, "both cameras to play past 1.5 s")
        s = state(page)
        assert not s["paused"] and not s["evidencePaused"]
        assert not s["muted"] and s["evidenceMuted"]  # the sound is the main camera's
        for _ in range(10):  # one clock: read together, they stay within 100 ms
            main, evidence = page.evaluate(TIMES)
            assert abs(main - evidence) < 0.1, (main, evidence)
            page.wait_for_timeout(100)
        for jump in (0.4, -0.3, 2.0):  # the evidence camera pushed off the clock comes back within 50 ms
            page.evaluate(f"(() => {{ const e = document.querySelector('video[data-role=evidence]');"
                          f" e.currentTime = document.querySelector('video[data-role=main]').currentTime + {jump}; }})()")
            wait_for(lambda: (lambda t: abs(t[0] - t[1]) < 0.05)(page.evaluate(TIMES)), 15,
                     f"a drift of {jump} s to be corrected")

        marks = page.locator(".timeline [data-flag-at]")
        assert marks.count() == 2  # question 1 has two flags; question 2's is on its own page
        assert [float(marks.nth(i).get_attribute("data-flag-at")) for i in range(2)] == [3.0, 6.0]
        marks.nth(1).click()
        main, evidence = page.evaluate(TIMES)
        assert 6.0 <= main < 6.4 and abs(main - evidence) < 0.1, (main, evidence)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review_player.png"), full_page=True)

        page.keyboard.press("k")
        wait_for(lambda: state(page)["paused"] and state(page)["evidencePaused"], 10, "K to pause both")
        at = state(page)["main"]
        page.keyboard.press("ArrowLeft")
        assert state(page)["main"] == pytest.approx(at - 5, abs=0.01)
        page.keyboard.press("ArrowRight")
        assert state(page)["main"] == pytest.approx(at, abs=0.01)
        page.keyboard.press("j")
        assert state(page)["main"] == 0
        page.keyboard.press("l")
        s = wait_for(lambda: (lambda s: s if abs(s["evidence"] - 10) < 0.05 else None)(state(page)), 10,
                     "the evidence camera to follow L to 10 s")
        assert s["main"] == pytest.approx(10, abs=0.01) and s["paused"]
        page.keyboard.press(" ")
        wait_for(lambda: not state(page)["paused"], 10, "Space to play again")
        page.keyboard.press(" ")
        wait_for(lambda: state(page)["paused"], 10, "Space to pause again")

        assert 206 in statuses  # Chromium asked for ranges and got them
        page.click("nav.chapters a[data-question='2']")
        page.wait_for_url("**/q/2")
        assert [float(m.get_attribute("data-flag-at")) for m in page.locator(".timeline [data-flag-at]").all()] \
            == [1.5]
        page.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_reviewer_decides_a_flag_and_it_is_audited(app, central, chromium):
    world.write_sitting(central.writer.put, lots=(7,))
    world.index(app)
    make_user(app, "reviewer", Role.REVIEWER)
    _, attempts = world.ids(app)
    with world.served(app) as base:
        page = chromium.new_page()
        browser_sign_in(page, base, "reviewer")
        page.goto(f"{base}/review/")
        assert page.locator(f"tr[data-attempt='{attempts[7]}'] td.num").all_inner_texts() == ["3", "3", "0"]
        page.click(f"tr[data-attempt='{attempts[7]}'] [data-action=play]")
        item = page.locator("li[data-flag='several_faces@1006.000']")
        assert "未裁定 undecided" in item.inner_text()
        item.locator("select[name=decision]").select_option("needs_decision")
        item.locator("input[name=note]").fill("两人入镜 two people in view")
        item.locator("[data-action=decide]").click()
        page.wait_for_load_state()
        assert "需裁定 needs a decision · reviewer" in \
            page.locator("li[data-flag='several_faces@1006.000'] [data-field=decision]").inner_text()
        page.goto(f"{base}/review/")
        assert page.locator(f"tr[data-attempt='{attempts[7]}'] td.num").all_inner_texts() == ["3", "2", "1"]
        page.close()
    with app.app_context():
        row = db.session.scalars(db.select(FlagDecision)).one()
        assert (row.flag_key, row.decision, row.decided_by) == ("several_faces@1006.000", Decision.NEEDS_DECISION,
                                                                "reviewer")
        audit_row = db.session.scalars(db.select(AuditRow)).one()
        assert (audit_row.action, audit_row.actor, audit_row.payload["decision"]) == \
            ("flag.decided", "reviewer", "needs_decision")
