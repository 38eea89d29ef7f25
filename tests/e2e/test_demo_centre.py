"""End to end: the whole demo centre on real parts, driven through headless Chromium.

Mosquitto, Redis, gunicorn, the edge daemon, the RQ worker and two station agents (video file as
camera, WAV as microphone) run as real processes. One candidate fails face login three times and
is approved by a proctor on the staff page; another passes face login and goes through the whole
flow to "上传成功". Then the edge's database, central storage and the MQTT-fed dashboard are
checked. Screenshots of every screen go to tests/artifacts/e2e/.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from examkiosk_wire.chain import link_problems, verify
from provisioning.demo import DemoCentre, free_port
from provisioning.demo_region import DemoRegion
from tests.e2e.centre import UI_TIMEOUT, explained, logs_of, on_screen, running_centre, shot, wait_selector
from tests.services import JOB_TIMEOUT, wait_for

pytestmark = pytest.mark.e2e

START_IN = 90.0
QUESTION_SECONDS = 6


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory):
    with running_centre(tmp_path_factory.mktemp("centre"), "e2e", start_in=START_IN,
                        question_seconds=QUESTION_SECONDS, segment_seconds=2.0, stations=2,
                        second_camera=("st-01",)) as running:
        yield running


@pytest.fixture(scope="module")
def region(centre):
    """The regional server as `make demo` starts it beside the centre (stopped with the centre)."""
    demo, _ = centre
    region = DemoRegion(demo, free_port(), index_seconds=2.0)
    logins = region.prepare()
    region.start()
    return region, logins


def identify(page, ticket: str, logs=()) -> None:
    on_screen(page, "identify", logs=logs)
    for digit in ticket:
        page.click(f"[data-key='{digit}']")
    page.click("[data-action=identify]")
    on_screen(page, "face_login", logs=logs)


def draw_lot(page, screenshot: str | None = None, logs=()) -> None:
    """Draw, unless the lot deadline passed and the edge assigned one already.

    A station that has just restarted may still be looking for the edge: the kiosk's footer
    says so, and a candidate (like this test) waits for it to say the server is reachable.
    """
    wait_selector(page, "#server.ok", "the kiosk's footer saying the server is reachable", logs)
    wait_selector(page, "html[data-screen=device_check], [data-action=draw_lot]:not([disabled])",
                  "the lot to draw (or one drawn by the edge)", logs)
    if page.evaluate("document.documentElement.dataset.screen") == "draw_lot":
        if screenshot:
            shot(page, screenshot)
        try:
            page.click("[data-action=draw_lot]", timeout=5_000)
        except PlaywrightTimeoutError:
            # The lot deadline passed between the wait and the click: the station is drawing one
            # itself (the button is disabled while it does), and the screen moves on without us.
            pass
    on_screen(page, "device_check", logs=logs)


def read_all(page, logs=()) -> None:
    overflowing = 0
    for screen in ("read_flow", "read_pledge", "read_notice"):
        on_screen(page, screen, logs=logs)
        if page.eval_on_selector("#reading", "el => el.scrollHeight > el.clientHeight + 4"):
            overflowing += 1
            assert page.is_disabled("[data-action=accept]"), "accept must wait until the text is read to the end"
        page.eval_on_selector("#reading", "el => el.scrollTop = el.scrollHeight")
        page.wait_for_selector("[data-action=accept]:not([disabled])")
        shot(page, f"05_{screen}")
        page.click("[data-action=accept]")
    assert overflowing, "at least the exam flow is longer than its box"


def test_demo_centre_end_to_end(centre, region, chromium):
    browser = chromium
    demo, login = centre
    st01, st02 = logs_of(demo, "station-st-01"), logs_of(demo, "station-st-02")
    edge = logs_of(demo, "edge-daemon", "edge-web", "edge-api")
    kiosk1 = browser.new_page(viewport={"width": 1280, "height": 800})
    kiosk2 = browser.new_page(viewport={"width": 1280, "height": 800})
    staff = browser.new_page(viewport={"width": 1280, "height": 800}, ignore_https_errors=True)  # the edge's own cert
    kiosk1.goto(demo.kiosk_url("st-01"))
    kiosk2.goto(demo.kiosk_url("st-02"))

    # Staff signs in (CSRF-protected form, argon2 password).
    staff.goto(f"{demo.web_url}/staff/")
    staff.fill("input[name=username]", login["username"])
    staff.fill("input[name=password]", "wrong password")
    staff.click("input[type=submit]")
    assert "Wrong username or password" in staff.inner_text("main")
    staff.fill("input[name=username]", login["username"])
    staff.fill("input[name=password]", login["password"])
    staff.click("input[type=submit]")
    for sid, logs in (("st-01", st01), ("st-02", st02)):
        wait_selector(staff, f"[data-station={sid}][data-online=true]", f"{sid} online on the dashboard",
                      logs + edge)

    # Candidate 2's enrolled photo is someone else: 3 failed tries, then manual review.
    identify(kiosk2, "20240002", st02)
    for attempt in range(1, 4):
        kiosk2.click("[data-action=face_capture]")
        if attempt < 3:
            with explained(f"st-02's kiosk counting face try {attempt}", st02):
                kiosk2.wait_for_function(
                    f"document.querySelector('[data-live=tries]').textContent === '{attempt}'", timeout=UI_TIMEOUT)
    on_screen(kiosk2, "manual_review", logs=st02)
    shot(kiosk2, "03_manual_review")
    wait_selector(staff, "[data-review]", "st-02's candidate in the review queue", st02 + edge)
    assert "20240002" in staff.inner_text("[data-review]")
    # The proctor sees the station's best frame beside the enrolled photo.
    for image in ("frame", "photo"):
        with explained(f"the review's {image} image loaded", st02 + edge):
            staff.wait_for_function(
                f"document.querySelector('[data-review] img[data-image={image}]')?.naturalWidth > 0",
                timeout=UI_TIMEOUT)
    shot(staff, "staff_review_queue")
    staff.click("[data-review] [data-action=approve]")
    on_screen(kiosk2, "read_flow", logs=st02 + edge)
    kiosk2.eval_on_selector("#reading", "el => el.scrollTop = el.scrollHeight")
    kiosk2.click("[data-action=accept]")
    on_screen(kiosk2, "read_pledge")

    # A power cut at station 2: the journal brings it back to the same screen.
    demo.kill_station("st-02")
    demo.start_station("st-02")
    kiosk2.reload()
    on_screen(kiosk2, "read_pledge", logs=st02)
    assert "李华" in kiosk2.inner_text("#candidate-info")
    # Approved by the proctor, candidate 2 goes on to the waiting room (the camera still shows
    # someone else: the monitor must flag the mismatch during the exam).
    for screen in ("read_pledge", "read_notice"):
        on_screen(kiosk2, screen, logs=st02)
        kiosk2.eval_on_selector("#reading", "el => el.scrollTop = el.scrollHeight")
        kiosk2.click("[data-action=accept]")
    draw_lot(kiosk2, logs=st02)
    wait_selector(kiosk2, "[data-live=mic-ok].ok", "st-02's microphone working", st02)
    kiosk2.click("[data-action=devices_ok]")
    on_screen(kiosk2, "info_confirm", logs=st02)
    kiosk2.click("[data-action=confirm_info]")
    on_screen(kiosk2, "waiting", logs=st02)

    # Candidate 1 goes through the whole flow.
    shot(kiosk1, "01_identify")
    identify(kiosk1, "20240001", st01)
    kiosk1.wait_for_timeout(800)  # the preview's first frames, for the screenshot
    shot(kiosk1, "02_face_login")
    kiosk1.click("[data-action=face_capture]")
    read_all(kiosk1, st01)
    draw_lot(kiosk1, "06_draw_lot", logs=st01)
    wait_selector(kiosk1, "[data-live=mic-ok].ok", "st-01's microphone working", st01)
    wait_selector(kiosk1, "[data-live=camera-ok].ok", "st-01's camera working", st01)
    shot(kiosk1, "07_device_check")
    kiosk1.click("[data-action=devices_ok]")
    on_screen(kiosk1, "info_confirm", logs=st01)
    assert "张明" in kiosk1.inner_text("[data-field=name]")
    id_shown = kiosk1.inner_text("[data-field=id_number]")
    assert "*" in id_shown and "110105199003070" not in id_shown  # masked
    lot = int(kiosk1.inner_text("[data-field=lot]"))
    shot(kiosk1, "08_info_confirm")
    kiosk1.click("[data-action=confirm_info]")
    on_screen(kiosk1, "waiting", logs=st01)
    # Mandarin voice prompts are served to the kiosk page (built offline with espeak-ng).
    voice = kiosk1.request.get(demo.kiosk_url("st-01") + "voice/waiting_room.wav")
    assert voice.status == 200 and voice.body()[:4] == b"RIFF"
    kiosk1.wait_for_timeout(500)  # the waiting room's countdown drawn, for the screenshot
    shot(kiosk1, "09_waiting")

    # The dashboard shows what the station publishes over MQTT (through the daemon).
    wait_selector(staff, "[data-station=st-01][data-state=waiting]", "st-01 waiting on the dashboard", st01 + edge)
    assert staff.inner_text("[data-station=st-01] [data-field=lot]") == str(lot)
    shot(staff, "staff_dashboard_waiting")

    on_screen(kiosk1, "answering", timeout=START_IN * 1000 + UI_TIMEOUT, logs=st01 + edge)  # the exam's start
    wait_selector(kiosk1, "[data-live=question-text][data-loaded=yes]", "question 1's text", st01 + edge)
    assert kiosk1.inner_text("[data-live=question]") == "1"
    shot(kiosk1, "10_answering_q1")
    wait_selector(staff, "[data-station=st-01][data-state=answering]", "st-01 answering on the dashboard",
                  st01 + edge)
    # Monitoring: station 2 shows a different person than its candidate; station 1's page loses focus.
    wait_selector(staff, "[data-station=st-02] [data-field=flags]:has-text('人脸不符')",
                  "st-02's face-mismatch flag on the dashboard", st02 + edge)
    shot(staff, "staff_dashboard_flags")
    for visible in ("false", "true"):
        kiosk1.evaluate("v => fetch('/api/focus', {method: 'POST', headers: {'Content-Type': 'application/json'},"
                        " body: JSON.stringify({visible: v})})", visible == "true")
        kiosk1.wait_for_timeout(1200)  # the page hidden (then visible) for a while: one focus_lost flag
    with explained("st-01's kiosk on question 2", st01):
        kiosk1.wait_for_function("document.querySelector('[data-live=question]').textContent === '2'",
                                 timeout=QUESTION_SECONDS * 1000 + UI_TIMEOUT)
    shot(kiosk1, "11_answering_q2")
    on_screen(kiosk1, "uploading", timeout=QUESTION_SECONDS * 1000 + UI_TIMEOUT, logs=st01)
    shot(kiosk1, "12_uploading")
    on_screen(kiosk1, "done", timeout=JOB_TIMEOUT * 1000, logs=st01 + logs_of(demo, "edge-api"))
    assert kiosk1.inner_text("[data-live=upload-ok]") == "上传成功"
    shot(kiosk1, "13_done")

    # The edge verified every segment the station recorded.
    db = sqlite3.connect(demo.root / "edge.db")
    attempt_id, edge_lot, expected = db.execute(
        "SELECT a.id, a.lot, a.expected_segments FROM attempt a JOIN candidate c ON c.id = a.candidate_id "
        "WHERE c.ticket_no = '20240001'").fetchone()
    assert edge_lot == lot
    station_segments = sorted(p.name for p in (demo.station_data("st-01") / "segments" / attempt_id).glob("*.mkv"))
    assert len(station_segments) >= (START_IN - 30) / 2  # waiting room + answering, ~2 s each
    assert sorted(json.loads(expected)) == station_segments
    rows = db.execute("SELECT name, status, sha256_declared, sha256_actual FROM segment WHERE attempt_id = ?",
                      (attempt_id,)).fetchall()
    assert sorted(r[0] for r in rows) == station_segments
    assert all(r[1] == "verified" and r[2] == r[3] for r in rows)
    questions = {q for (q,) in db.execute("SELECT DISTINCT question FROM segment WHERE attempt_id = ?", (attempt_id,))}
    assert questions == {None, 1, 2}  # waiting room, then one chain per question

    # The RQ worker copied the recording and a manifest to central storage, filed under the lot.
    prefix = demo.central_dir / demo.centre / f"{demo.centre}-interview" / f"lot-{lot:03d}"
    manifest_path = prefix / "manifest.json"
    worker = logs_of(demo, "edge-worker", "edge-daemon")
    wait_for(manifest_path.exists, JOB_TIMEOUT, f"the sync job writing {manifest_path}", worker)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["lot"] == lot and "张明" not in manifest_path.read_text()
    assert sorted(Path(o["key"]).name for o in manifest["objects"]) == station_segments
    for obj in manifest["objects"]:
        stored = demo.central_dir / obj["key"]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == obj["sha256"]
    # Every segment is a signed link of one unbroken chain.
    key = manifest["station_public_key"]
    assert key and all(verify(key, o["chain"]["entry"], o["chain"]["sig"]) for o in manifest["objects"])
    cameras = {o["camera"] for o in manifest["objects"]}
    assert cameras == {"main", "second"}  # the evidence camera has its own chain
    for camera in cameras:
        chain = sorted((o["seq"], o["chain"]["prev"], o["chain"]["entry"]) for o in manifest["objects"]
                       if o["camera"] == camera)
        assert link_problems(chain) == []
    assert manifest["end_reason"] == "time_up" and "ended_early" not in {f["kind"] for f in manifest["flags"]}
    # One joined file per camera and question (and the waiting room), checked, no media problem.
    assert manifest["media_problems"] == []
    assert {(q["camera"], q["question"]) for q in manifest["questions"]} == {
        (camera, question) for camera in ("main", "second") for question in (None, 1, 2)}
    for joined in manifest["questions"]:
        assert joined["complete"] and abs(joined["duration"] - joined["expected_duration"]) <= 2.0
        assert hashlib.sha256((demo.central_dir / joined["key"]).read_bytes()).hexdigest() == joined["sha256"]
    sync_status = "SELECT sync_status FROM attempt WHERE id = ?"
    wait_for(lambda: db.execute(sync_status, (attempt_id,)).fetchone()[0] == "synced", JOB_TIMEOUT,
             "the sync job marking the attempt synced", worker)

    # Flags are events that point into the recording (segment and offset), with a thumbnail.
    flags = {}
    for (payload,) in db.execute("SELECT e.payload FROM event e JOIN attempt a ON a.id = e.attempt_id "
                                 "WHERE e.kind = 'flag_started'"):
        flag = json.loads(payload)
        flags.setdefault(flag["flag"], []).append(flag)
    assert "face_mismatch" in flags and "focus_lost" in flags
    assert any(f["segment"] and f["offset"] is not None and f["thumbnail_jpeg"] for f in flags["face_mismatch"])
    ended = {json.loads(p)["flag"] for (p,) in db.execute("SELECT payload FROM event WHERE kind = 'flag_ended'")}
    assert "focus_lost" in ended
    # The manifest carries them in server time, for the review player (no thumbnails).
    reported = {(json.loads(p)["flag"], json.loads(p)["started_at"]) for (p,) in db.execute(
        "SELECT payload FROM event WHERE kind IN ('flag_started', 'flag_ended') AND attempt_id = ?", (attempt_id,))}
    assert {(f["kind"], f["started_at"]) for f in manifest["flags"]} == reported
    assert "thumbnail_jpeg" not in manifest_path.read_text()
    for joined in manifest["questions"]:  # MP4 per question, with the server time of its first frame
        assert joined["key"].endswith(".mp4") and joined["offset"] is not None and joined["size"] > 0
    sitting_manifest = demo.central_dir / demo.centre / f"{demo.centre}-interview" / "sitting.json"
    wait_for(sitting_manifest.exists, JOB_TIMEOUT, f"the sync job writing {sitting_manifest}", worker)
    assert "张明" not in sitting_manifest.read_text() and "20240001" not in sitting_manifest.read_text()

    # The daemon logged station events that arrived over MQTT.
    kinds = {k for (k,) in db.execute("SELECT kind FROM event WHERE source = 'mqtt' AND station_id = 'st-01'")}
    assert {"entered_waiting_room", "answering_finished"} <= kinds
    wait_selector(staff, f"[data-attempt='{attempt_id}'] [data-field=sync]:has-text('synced')",
                  "the attempt synced on the dashboard", edge)
    shot(staff, "staff_dashboard_done")
    the_region_verifies_and_plays_it(browser, demo, region, str(prefix.relative_to(demo.central_dir)))


def the_region_verifies_and_plays_it(browser, demo: DemoCentre, region, prefix: str) -> None:
    """The demo's regional server, reading only central storage, finds the attempt, verifies every
    object and the chain, and a regional admin plays it in the browser."""
    server, logins = region
    logs = logs_of(demo, "region-daemon", "region-worker", "region-web")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server.url}/login")
    page.fill("input[name=username]", "region-admin")
    page.fill("input[name=password]", logins["region-admin"])
    page.click("input[type=submit]")
    row = f"tr[data-prefix='{prefix}']"

    def verified() -> bool:
        page.goto(f"{server.url}/region/attempts")
        return page.query_selector(f"{row} [data-field=verification]:has-text('已校验 verified')") is not None

    wait_for(verified, JOB_TIMEOUT, f"the region showing {prefix} verified", logs, interval=1.0)
    assert "正常 ok" in page.inner_text(f"{row} [data-field=chain]")
    page.click(f"{row} [data-action=open-attempt]")
    page.click("[data-action=play]")
    with explained("the region's player playing the main camera", logs):
        page.wait_for_function("() => { const v = document.querySelector('video');"
                               " if (v && v.paused) v.play(); return v && v.currentTime > 0.5; }", timeout=UI_TIMEOUT)
    shot(page, "region_player")
    page.close()


def test_demo_prepare_runs_twice(tmp_path: Path):
    """A second `make demo` reuses the secrets and starts from fresh demo data."""
    demo = DemoCentre(tmp_path, centre=f"twice{uuid.uuid4().hex[:6]}")
    first = demo.prepare()
    second = demo.prepare()
    assert first == second
    db = sqlite3.connect(tmp_path / "edge.db")
    assert db.execute("SELECT COUNT(*) FROM candidate").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM staff_user").fetchone()[0] == 1
