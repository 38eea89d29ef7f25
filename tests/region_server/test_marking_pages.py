"""The marking pages in Chromium: the regional admin assigns a marker and sets the scale; the
marker sees only that sitting, plays a lot, saves a score (a bad one is refused and nothing typed
is lost), and the score is in the admin's results CSV; a marker sees no name, ticket number or ID
number on any page, JSON, file or response header it can reach."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from region_server.extensions import db
from region_server.marking.models import Score
from region_server.models import Attempt, Role
from tests.region_server import review_world as world
from tests.region_server.helpers import browser_sign_in, make_user
from tests.services import wait_for

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "region"
OTHER_SITTING = "s-pm"


def _world(app, central) -> None:
    world.write_sitting(central.writer.put, lots=(7, 8))
    world.write_sitting(central.writer.put, lots=(7,), sitting=OTHER_SITTING, name="下午场 afternoon")
    world.index(app)
    make_user(app, "admin", Role.REGIONAL_ADMIN)
    make_user(app, "marker", Role.MARKER)
    make_user(app, "marker2", Role.MARKER)


def _assign(page, base: str, sitting_id: int, marker: str = "marker") -> None:
    page.goto(f"{base}/marking/")
    page.click(f"tr[data-sitting='{sitting_id}'] [data-action=setup]")
    page.check(f"input[data-marker={marker}]")
    page.click("[data-action=save-markers]")
    assert "Markers saved" in page.inner_text("main")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_marker_scores_a_lot_and_the_score_is_in_the_results(app, central, chromium):
    _world(app, central)
    sitting_id, attempts = world.ids(app)
    other_id, _ = world.ids(app, OTHER_SITTING)
    with world.served(app) as base:
        admin = chromium.new_context().new_page()
        browser_sign_in(admin, base, "admin")
        _assign(admin, base, sitting_id)
        admin.fill("input[name=max_score]", "abc")
        admin.click("[data-action=save-scale]")
        assert "is not a number" in admin.inner_text("main")
        assert admin.input_value("input[name=max_score]") == "abc"  # what was typed is still there
        admin.fill("input[name=max_score]", "20")
        admin.fill("input[name=step]", "0.5")
        admin.click("[data-action=save-scale]")
        assert "Scale saved" in admin.inner_text("main")

        marker = chromium.new_context().new_page()
        browser_sign_in(marker, base, "marker")
        assert urlsplit(marker.url).path == "/marking/"
        assert marker.locator("tr[data-sitting]").evaluate_all("rs => rs.map(r => r.dataset.sitting)") == \
            [str(sitting_id)]  # only the assigned sitting
        assert marker.goto(f"{base}/marking/sittings/{other_id}/").status == 403
        assert marker.goto(f"{base}/region/").status == 403
        marker.goto(f"{base}/marking/")
        marker.click("[data-action=open-sitting]")
        marker.click("tr[data-lot='7'] [data-action=open-lot]")
        assert marker.inner_text("h1").endswith("签号 Lot 007")
        wait_for(lambda: marker.evaluate("Math.min(...[...document.querySelectorAll('video')].map(v => v.readyState))")
                 >= 1, 30, "the lot's two videos to load")
        marker.keyboard.press(" ")
        wait_for(lambda: min(marker.evaluate("[...document.querySelectorAll('video')].map(v => v.currentTime)"))
                 > 0.5, 30, "both cameras of the lot to play")
        marker.keyboard.press("k")

        marker.fill("input[name=score]", "21")
        marker.evaluate("document.querySelector('input[name=score]').removeAttribute('max')")  # past the browser
        marker.fill("textarea[name=note]", "表达清楚 clear answer")
        marker.click("[data-action=save-score]")
        assert "The score must be between 0 and 20" in marker.inner_text("main")
        assert marker.input_value("textarea[name=note]") == "表达清楚 clear answer"
        marker.fill("input[name=score]", "17.5")
        marker.click("[data-action=save-score]")
        assert "Question 1 saved" in marker.inner_text("main")
        assert marker.inner_text("[data-field=saved-score]") == "17.5"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        marker.screenshot(path=str(ARTIFACTS / "marking_lot.png"), full_page=True)
        marker.goto(f"{base}/marking/sittings/{sitting_id}/")
        assert "Q1: 17.5" in marker.inner_text("tr[data-lot='7'] [data-field=my-scores]")

        results = admin.request.get(f"{base}/marking/sittings/{sitting_id}/results.csv")
        assert results.status == 200
        text = results.body().decode("utf-8-sig")
        assert "c-north,s-am,7,TK-88314275,1,marker,17.5,表达清楚 clear answer," in text
        assert marker.request.get(f"{base}/marking/sittings/{sitting_id}/results.csv").status == 403
    with app.app_context():
        score = db.session.scalars(db.select(Score)).one()
        assert (score.attempt_id, score.question, score.value) == (attempts[7], 1, 17.5)


def _has_secret(text: str) -> list[str]:
    return [s for s in world.SECRETS if s in text]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_marker_sees_no_name_ticket_or_id_number_anywhere(app, central, chromium):
    _world(app, central)
    sitting_id, attempts = world.ids(app)
    with app.app_context():  # the region does hold them: in the manifests and the lot map
        stored = json.dumps(db.session.get(Attempt, attempts[7]).manifest, ensure_ascii=False)
        assert world.CANDIDATE_NAME in stored and world.ID_NUMBER in stored and world.CANDIDATE_NAME_LATIN in stored
    with world.served(app) as base:
        admin = chromium.new_context().new_page()
        browser_sign_in(admin, base, "admin")
        _assign(admin, base, sitting_id)
        assert "TK-88314275" in admin.request.get(f"{base}/marking/sittings/{sitting_id}/results.csv").text()

        context = chromium.new_context()
        page = context.new_page()
        seen: list[tuple[str, list[str]]] = []  # (url, secrets found) of every response of every kind

        def check(response) -> None:
            found = _has_secret(json.dumps(response.all_headers(), ensure_ascii=False))
            kind = response.headers.get("content-type", "")
            if response.status < 300 and kind.startswith(("text/", "application/json", "application/javascript")):
                found += _has_secret(response.text())
            seen.append((response.url, found))

        page.on("response", check)
        browser_sign_in(page, base, "marker")
        queue, visited = [f"{base}/marking/", f"{base}/marking/api/sittings/{sitting_id}/lots"], set()
        while queue and len(visited) < 60:
            url = queue.pop(0)
            if url in visited:
                continue
            visited.add(url)
            response = page.goto(url)
            assert response is not None and response.status in (200, 403), (url, response.status)
            assert _has_secret(page.inner_text("body")) == [], url
            assert _has_secret(page.content()) == [], url
            for href in page.locator("a[href]").evaluate_all("as => as.map(a => a.getAttribute('href'))"):
                target = urljoin(url, href).split("#")[0]
                if target.startswith(base) and target not in visited:
                    queue.append(target)
            for src in page.locator("video[src]").evaluate_all("vs => vs.map(v => v.getAttribute('src'))"):
                media = page.request.get(urljoin(url, src), headers={"Range": "bytes=0-1023"})
                assert media.status == 206 and _has_secret(json.dumps(media.headers)) == [], src
        lot_pages = [u for u in visited if "/lots/" in u and "/api/" not in u]
        assert len(lot_pages) >= 4 and f"{base}/marking/api/sittings/{sitting_id}/lots" in visited
        assert any("/media/" in url for url, _ in seen)  # the players' own range requests were checked too
        assert [(url, found) for url, found in seen if found] == []
        context.close()
