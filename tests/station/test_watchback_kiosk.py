"""Watching a mock attempt back at the kiosk (回看, issue 15 part 2), in Chromium.

A real station agent (not started: its flow state is set, its events applied by the test) has
recorded a mock attempt with its own recording (two cameras, a tone on the microphone) and serves
the real kiosk app on a socket. After the upload (DONE), 回看录像 plays the main camera with sound
and the evidence camera beside it in sync, the chapters seek, the check's figures are shown, and
完成 returns to the login screen and removes the films. A formal attempt shows no player and its
routes refuse; a recording deleted by retention shows a message instead of a player.
Screenshots: tests/artifacts/station/watchback_*.png.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from station.capture.audio import level
from station.flow import Screen
from station.kiosk.app import serve_kiosk
from station.runtime.runner import Runtime
from station.storage import retention
from tests.services import free_port, wait_for
from tests.station.test_watchback_remux import (
    CHUNK,
    LOUD,
    PARTS,
    ffprobe,
    mock_state,
    record_mock,
    station_settings,
    tone,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "station"
ATTEMPT = "m-1"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def kiosk(tmp_path):
    """A station that recorded the mock attempt ATTEMPT and had every segment verified by the edge."""
    port = free_port()
    agent = Runtime(station_settings(tmp_path, port))
    record_mock(agent, ATTEMPT)
    for segment in agent.ctx.journal.segments_of(ATTEMPT):
        agent.ctx.journal.mark_verified(segment.name)
    agent.state = mock_state(agent, ATTEMPT)
    server = serve_kiosk(agent.kiosk, "127.0.0.1", port)
    try:
        yield agent, f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        agent.stop()


@pytest.fixture
def page(chromium):
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        yield page
    finally:
        page.close()


def films_dir(agent: Runtime) -> Path:
    return agent.settings.data_dir / "watchback"


def video(page, camera: str, prop: str):
    return page.evaluate(f"() => document.querySelector('video[data-film={camera}]').{prop}")


def test_a_mock_attempt_plays_back_with_sound_chapters_and_the_check(kiosk, page, tmp_path):
    agent, base = kiosk
    page.goto(base)
    page.wait_for_selector("html[data-screen=done] [data-action=watchback]")
    assert page.locator("[data-action=next_candidate]").inner_text().startswith("完成")
    page.click("[data-action=watchback]")
    page.wait_for_selector("[data-live=watchback-player] video[data-film=second]")
    page.wait_for_function("() => document.querySelector('video[data-film=main]').readyState >= 1",
                           timeout=15_000)
    assert video(page, "main", "duration") == pytest.approx(sum(s for _, s in PARTS), abs=0.15)
    assert not video(page, "main", "muted") and video(page, "second", "muted")

    check = page.locator("[data-live=watchback-check]")
    assert check.locator("[data-check=seconds]").inner_text() == "4 秒 s / 4 秒 s"
    assert check.locator("[data-check=verified]").inner_text() == "10 / 10"
    assert check.locator("[data-check=loudest]").inner_text().startswith(f"{round(level(tone(CHUNK, 0, LOUD)) * 100)}%")
    chapters = page.locator("[data-action=watchback_chapter]")
    assert [chapters.nth(i).get_attribute("data-question") for i in range(chapters.count())] == ["waiting", "1", "2"]

    page.click("[data-action=watchback_play]")
    page.wait_for_function("() => document.querySelector('video[data-film=main]').currentTime > 0.8", timeout=15_000)
    # Sound: Chromium decoded audio of the main film (its audio track is there and plays).
    page.wait_for_function("() => document.querySelector('video[data-film=main]').webkitAudioDecodedByteCount > 0",
                           timeout=10_000)
    # The evidence camera plays along, its own offset taken off.
    page.wait_for_function("() => document.querySelector('video[data-film=second]').currentTime > 0.3", timeout=10_000)
    offset = float(page.get_attribute("video[data-film=second]", "data-offset"))
    main_t, second_t = page.evaluate("() => ['main', 'second'].map(c => document.querySelector(`video[data-film=${c}]`).currentTime)")
    assert second_t == pytest.approx(main_t - offset, abs=0.5)

    page.click("[data-action=watchback_chapter][data-question='2']")
    page.wait_for_function("() => { const v = document.querySelector('video[data-film=main]');"
                           " return !v.seeking && v.currentTime >= 2.95 && v.currentTime < 3.9; }", timeout=10_000)
    page.click("[data-action=watchback_play]")  # pause, for a still screenshot
    page.wait_for_function("() => document.querySelector('video[data-film=main]').paused")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "watchback_player.png"))

    # 完成: back to the login screen, the films removed.
    assert any(films_dir(agent).rglob("*.mp4"))
    page.click("[data-action=next_candidate]")
    event = wait_for(lambda: agent.events.get_nowait() if not agent.events.empty() else None, timeout=10,
                     what="the 完成 click to reach the station")
    assert event.name == "next_candidate"
    agent.apply(event)
    assert agent.state.screen == Screen.IDENTIFY
    assert not films_dir(agent).exists()
    page.wait_for_selector("html[data-screen=identify]")
    assert requests.get(f"{base}/api/watchback", timeout=5).json()["code"] == "not_done"


def test_the_film_is_served_with_ranges_and_has_its_audio_track(kiosk, tmp_path):
    agent, base = kiosk
    answer = requests.get(f"{base}/api/watchback", timeout=30)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    shown = answer.json()
    assert [(f["camera"], f["audio"]) for f in shown["films"]] == [("main", True), ("second", True)]
    url = base + shown["films"][0]["url"]
    whole = requests.get(url, timeout=10)
    assert whole.status_code == 200 and whole.headers["Content-Type"] == "video/mp4"
    assert whole.headers["Accept-Ranges"] == "bytes" and whole.headers["Cache-Control"] == "no-store"
    part = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.content)}"
    served = tmp_path / "served.mp4"
    served.write_bytes(whole.content)
    assert sorted(s["codec_name"] for s in ffprobe(served)["streams"]) == ["aac", "h264"]
    assert requests.get(f"{base}/watchback/third.mp4", timeout=5).status_code == 404


def test_a_formal_attempt_shows_no_player_and_its_routes_refuse(kiosk, page):
    agent, base = kiosk
    agent.state = mock_state(agent, ATTEMPT, kind="formal")
    page.goto(base)
    page.wait_for_selector("html[data-screen=done] [data-action=next_candidate]")
    assert page.locator("[data-action=watchback], video").count() == 0
    assert page.locator("[data-action=next_candidate]").inner_text() == "下一位考生"
    for path in ("/api/watchback", "/watchback/main.mp4"):
        answer = requests.get(base + path, timeout=5)
        assert (answer.status_code, answer.json()["code"]) == (403, "not_mock"), path
    assert not films_dir(agent).exists(), "nothing was remuxed for a formal attempt"
    # Nor a mock attempt before its upload is done.
    agent.state = mock_state(agent, ATTEMPT, screen=Screen.UPLOADING)
    assert requests.get(f"{base}/api/watchback", timeout=5).status_code == 409


def test_a_recording_deleted_by_retention_gives_a_message_not_a_player(kiosk, page):
    agent, base = kiosk
    deleted = retention.sweep(agent.ctx.journal, now=agent.clock.now() + 10, keep_seconds=0)
    assert len(deleted) == 10 and not any((agent.settings.segments_dir / ATTEMPT).glob("*.mkv"))
    page.goto(base)
    page.click("[data-action=watchback]")
    message = page.wait_for_selector("[data-live=watchback-message]")
    assert message.get_attribute("data-code") == "recording_deleted"
    zh, en = page.locator("[data-live=watchback-message] p").all_inner_texts()
    assert "已按保留期限" in zh and "删除" in zh and "deleted" in en and "retention" in en
    assert page.locator("video").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "watchback_deleted.png"))
    answer = requests.get(f"{base}/api/watchback", timeout=5)
    assert (answer.status_code, answer.json()["code"]) == (410, "recording_deleted")
    assert page.locator("[data-action=next_candidate]").is_enabled()


def test_ffmpeg_reads_the_served_evidence_film_in_step_with_the_main_one(kiosk):
    agent, base = kiosk
    shown = requests.get(f"{base}/api/watchback", timeout=30).json()
    second = next(f for f in shown["films"] if f["camera"] == "second")
    assert second["offset"] == pytest.approx(0.12, abs=0.02)
    path = agent.settings.data_dir / "watchback"
    film = next(path.rglob("second.mp4"))
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                            "stream=nb_read_frames", "-of", "csv=p=0", str(film)], capture_output=True, text=True,
                           check=True, timeout=30)
    assert int(probe.stdout.strip()) == round(sum(s for _, s in PARTS) * 25)
