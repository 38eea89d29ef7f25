"""The kiosk page is told by the agent's stream (server-sent events), not by its poll: with every
``/api/state`` request refused, headless Chromium still follows the agent from the waiting room to
the first question the moment the agent's timer moves it to ANSWERING, the paper having been
opened in memory ahead of the start (the key came the lead before it).

A real station agent (not started: the test applies the timer's event itself) serves the real
kiosk app on a socket; the paper is sealed and opened with the real AES-GCM code.
"""
from __future__ import annotations

import io
import json
import zipfile

import pytest

from edge_server.services.paper_format import parse_paper_file
from examkiosk_wire import sealed
from station.flow import Event, Screen
from tests.station.kiosk_agent import waiting_agent

SITTING = "c1-stream"
QUESTION = "请谈谈你对团队合作的理解。"


def seal_paper() -> tuple[bytes, sealed.SealedBlob]:
    doc = f"title: 结构化面谈\ninstructions: 共 1 题。\nquestions:\n  - text: {QUESTION}\n    seconds: 300\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("paper.yaml", doc)
    return sealed.seal(parse_paper_file("paper.zip", buffer.getvalue()).to_plaintext(), SITTING)


@pytest.fixture
def kiosk(tmp_path):
    with waiting_agent(tmp_path / "station", SITTING, starts_in=3600, entry_open=3780, question_seconds=(300,)) as running:
        yield running


def test_the_page_shows_the_first_question_when_the_agent_starts_without_a_poll(kiosk, chromium):
    agent, base = kiosk
    papers = agent.ctx.papers
    key, blob = seal_paper()
    # Ahead of the start: the ciphertext in the station's cache, the key pushed the lead before the
    # start, the paper opened in memory (station.runtime.handlers.paper.open_ahead does this).
    path = papers._path(SITTING)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sitting": SITTING, "ciphertext": sealed.b64(blob.ciphertext),
                                "nonce": sealed.b64(blob.nonce), "sha256": blob.sha256}))
    assert papers.key_pushed({"sitting": SITTING, "key": sealed.b64(key)})
    papers.open(SITTING)
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    refused = []
    page.route("**/api/state", lambda route: (refused.append(route.request.url), route.abort()))
    try:
        page.goto(base)
        # The waiting room, told by the stream alone (every poll is refused).
        page.wait_for_selector("html[data-screen=waiting]", timeout=20_000)
        assert refused, "the page did poll (and was refused), so the waiting room came from the stream"
        assert QUESTION not in page.content(), "the paper is not on the page before the start"
        # The timer's event at the start: the flow moves at the instant and the paper is shown at once.
        agent.apply(Event("tick", {"at": agent.state.schedule.starts_at}))
        assert agent.state.screen == Screen.ANSWERING and agent.ctx.shown.paper is not None
        page.wait_for_selector("html[data-screen=answering] [data-live=question-text][data-loaded=yes]",
                               timeout=20_000)
        assert page.inner_text("[data-live=question-text]") == QUESTION
    finally:
        page.close()
