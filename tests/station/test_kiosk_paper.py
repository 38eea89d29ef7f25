"""The kiosk's answering screen shows a sealed paper's pages and pictures, each fitting the screen.

A real station agent (not started: its flow state is moved by the real transitions) serves the
real kiosk app on a socket; the paper is sealed and opened with the real AES-GCM code, as the
agent does at the start. Headless Chromium reads the pages and sees the picture fit the screen at
1280x800 and 1920x1080. Screenshots: tests/artifacts/kiosk/paper_*.png.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from edge_server.services.paper_format import parse_paper_file
from examkiosk_wire import sealed
from station import flow
from station.flow import Event, Screen
from station.runtime.runner import Runtime
from tests.station.kiosk_agent import waiting_agent

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "kiosk"
SITTING = "c1-paper"
PAGE_ONE = "请阅读材料后回答：你如何看待基层服务中的沟通问题？"
PAGE_TWO = "材料二：某社区在推行垃圾分类时，居民意见分歧较大。请结合图 1 说明你的思路。"
SECOND = "请谈谈你对团队合作的理解。"


def chart_png(width: int, height: int) -> bytes:
    """A wide bar chart picture (larger than the paper column, so it must be scaled down)."""
    image = np.full((height, width, 3), 255, np.uint8)
    for i, value in enumerate((0.3, 0.8, 0.55, 0.9)):
        x = 80 + i * (width - 160) // 4
        cv2.rectangle(image, (x, height - 40 - int(value * (height - 120))), (x + 140, height - 40), (180, 110, 30), -1)
    cv2.putText(image, "Survey 2024", (40, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (20, 20, 20), 3)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def sealed_paper(chart: bytes, photo: bytes) -> dict:
    """The paper as the station holds it after opening the sealed blob at the start."""
    doc = (f"title: 结构化面谈（模拟卷）\ninstructions: 本次面试共 2 题，每回答完一个问题，请说“回答完毕”。\n"
           f"questions:\n  - text: {PAGE_ONE}\n    seconds: 300\n    pages:\n      - {PAGE_TWO}\n"
           f"    images: [figures/chart.png]\n  - text: {SECOND}\n    seconds: 300\n"
           f"    images: [figures/photo.png]\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("paper.yaml", doc)
        archive.writestr("figures/chart.png", chart)
        archive.writestr("figures/photo.png", photo)
    content = parse_paper_file("paper.zip", buffer.getvalue())
    key, blob = sealed.seal(content.to_plaintext(), SITTING)
    return sealed.open_paper(key, blob, SITTING)


@pytest.fixture
def kiosk(tmp_path):
    with waiting_agent(tmp_path / "station", SITTING, starts_in=0.5, entry_open=180, question_seconds=(300, 300)) as running:
        yield running


def step(agent: Runtime, name: str, now: float | None = None) -> None:
    agent.state, _ = flow.transition(agent.state, Event(name), agent.clock.now() if now is None else now)


def image_status(base: str, question: int, index: int) -> int:
    return requests.get(f"{base}/paper/q/{question}/image/{index}", timeout=5).status_code


def test_pictures_are_served_only_while_answering_and_only_for_reached_questions(kiosk):
    agent, base = kiosk
    chart, photo = chart_png(400, 200), chart_png(300, 300)
    # Waiting room: the paper is still sealed, nothing of it is served.
    assert image_status(base, 1, 1) == 404
    step(agent, "tick", agent.state.schedule.starts_at)
    assert agent.state.screen == Screen.ANSWERING and agent.state.question == 1
    assert image_status(base, 1, 1) == 404, "the key has not come yet: no paper is open"
    agent.ctx.shown.paper = sealed_paper(chart, photo)

    answer = requests.get(f"{base}/paper/q/1/image/1", timeout=5)
    assert answer.status_code == 200 and answer.content == chart
    assert answer.headers["Content-Type"] == "image/png" and answer.headers["Cache-Control"] == "no-store"
    assert image_status(base, 2, 1) == 403, "question 2 is not reached yet"
    assert image_status(base, 1, 2) == 404 and image_status(base, 9, 1) == 404
    state = requests.get(f"{base}/api/state", timeout=5).json()
    assert state["paper"]["pages"] == [PAGE_ONE, PAGE_TWO]
    assert state["paper"]["images"] == [{"url": "/paper/q/1/image/1", "name": "chart.png"}]

    step(agent, "next_question")
    assert agent.state.question == 2
    assert requests.get(f"{base}/paper/q/2/image/1", timeout=5).content == photo
    assert image_status(base, 1, 1) == 200, "an answered question's picture stays readable"

    agent.state = replace(agent.state, screen=Screen.UPLOADING)
    assert image_status(base, 1, 1) == 404 and image_status(base, 2, 1) == 404, "the exam is over"


def test_the_answering_screen_pages_through_the_question_and_fits_its_picture(kiosk, chromium):
    agent, base = kiosk
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    step(agent, "tick", agent.state.schedule.starts_at)
    agent.ctx.shown.paper = sealed_paper(chart_png(1600, 900), chart_png(300, 300))
    for width, height in ((1280, 800), (1920, 1080)):
        page = chromium.new_page(viewport={"width": width, "height": height})
        try:
            page.goto(base)
            page.wait_for_selector("html[data-screen=answering] [data-live=question-text][data-loaded=yes]")
            assert page.inner_text("[data-live=question-text]") == PAGE_ONE
            assert page.inner_text("[data-live=page-no]") == "第 1 页 / 共 2 页"
            assert "结构化面谈（模拟卷）" in page.inner_text("[data-live=paper-title]")
            assert "回答完毕" in page.inner_text("[data-live=paper-guide]")
            assert page.is_disabled("[data-action=page_prev]")
            page.wait_for_selector("[data-live=figures] img[data-loaded=yes]")
            box = page.locator("[data-live=figures] img").bounding_box()
            column = page.locator("#paper").bounding_box()
            assert box["width"] <= column["width"] and box["height"] <= height * 0.4, (box, column)
            page.screenshot(path=str(ARTIFACTS / f"paper_{width}x{height}_page1.png"))

            page.click("[data-action=page_next]")
            assert page.inner_text("[data-live=question-text]") == PAGE_TWO
            assert page.inner_text("[data-live=page-no]") == "第 2 页 / 共 2 页"
            assert page.is_disabled("[data-action=page_next]")
            # The page stays put while the state polls go on (the countdown ticks on).
            shown = page.inner_text("[data-live=countdown]")
            page.wait_for_function(f"() => document.querySelector('[data-live=countdown]').textContent !== {shown!r}")
            assert page.inner_text("[data-live=question-text]") == PAGE_TWO
            assert page.get_attribute("[data-live=question-text]", "data-page") == "2"
            page.screenshot(path=str(ARTIFACTS / f"paper_{width}x{height}_page2.png"))

            page.click("[data-live=figures] img")
            page.wait_for_selector("[data-live=zoom] img")
            zoomed = page.locator("[data-live=zoom] img").bounding_box()
            assert zoomed["width"] <= width and zoomed["height"] <= height and zoomed["width"] > box["width"]
            page.screenshot(path=str(ARTIFACTS / f"paper_{width}x{height}_zoom.png"))
            page.click("[data-live=zoom]")
            assert page.query_selector("[data-live=zoom]") is None
        finally:
            page.close()

    # The next question starts on its first page; it has one page, so no paging.
    step(agent, "next_question")
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(base)
        page.wait_for_function(f"() => document.querySelector('[data-live=question-text]')?.textContent === {SECOND!r}")
        assert page.is_hidden("[data-live=pager]")
        page.wait_for_selector("[data-live=figures] img[data-loaded=yes]")
    finally:
        page.close()
