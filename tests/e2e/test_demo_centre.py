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

from examkiosk_wire.chain import link_problems, verify
from provisioning.demo import DemoCentre
from tests.e2e.centre import on_screen, running_centre, shot

pytestmark = pytest.mark.e2e

START_IN = 90.0
QUESTION_SECONDS = 6


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory):
    with running_centre(tmp_path_factory.mktemp("centre"), "e2e", start_in=START_IN,
                        question_seconds=QUESTION_SECONDS, segment_seconds=2.0, stations=2,
                        second_camera=("st-01",)) as running:
        yield running


def identify(page, ticket: str) -> None:
    on_screen(page, "identify")
    for digit in ticket:
        page.click(f"[data-key='{digit}']")
    page.click("[data-action=identify]")
    on_screen(page, "face_login")


def draw_lot(page, screenshot: str | None = None) -> None:
    """Draw, unless the lot deadline passed and the edge assigned one already.

    A station that has just restarted may still be looking for the edge: the kiosk's footer
    says so, and a candidate (like this test) waits for it to say the server is reachable.
    """
    page.wait_for_selector("#server.ok", timeout=40_000)
    page.wait_for_selector("html[data-screen=device_check], [data-action=draw_lot]:not([disabled])", timeout=20_000)
    if page.evaluate("document.documentElement.dataset.screen") == "draw_lot":
        if screenshot:
            shot(page, screenshot)
        page.click("[data-action=draw_lot]")
    on_screen(page, "device_check")


def read_all(page) -> None:
    overflowing = 0
    for screen in ("read_flow", "read_pledge", "read_notice"):
        on_screen(page, screen)
        if page.eval_on_selector("#reading", "el => el.scrollHeight > el.clientHeight + 4"):
            overflowing += 1
            assert page.is_disabled("[data-action=accept]"), "accept must wait until the text is read to the end"
        page.eval_on_selector("#reading", "el => el.scrollTop = el.scrollHeight")
        page.wait_for_selector("[data-action=accept]:not([disabled])")
        shot(page, f"05_{screen}")
        page.click("[data-action=accept]")
    assert overflowing, "at least the exam flow is longer than its box"


def test_demo_centre_end_to_end(centre, chromium):
    browser = chromium
    demo, login = centre
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
    staff.wait_for_selector("[data-station=st-01][data-online=true]", timeout=20_000)
    staff.wait_for_selector("[data-station=st-02][data-online=true]", timeout=20_000)

    # Candidate 2's enrolled photo is someone else: 3 failed tries, then manual review.
    identify(kiosk2, "20240002")
    for attempt in range(1, 4):
        kiosk2.click("[data-action=face_capture]")
        if attempt < 3:
            kiosk2.wait_for_function(f"document.querySelector('[data-live=tries]').textContent === '{attempt}'",
                                     timeout=20_000)
    on_screen(kiosk2, "manual_review")
    shot(kiosk2, "03_manual_review")
    staff.wait_for_selector("[data-review]", timeout=15_000)
    assert "20240002" in staff.inner_text("[data-review]")
    # The proctor sees the station's best frame beside the enrolled photo.
    for image in ("frame", "photo"):
        staff.wait_for_function(
            f"document.querySelector('[data-review] img[data-image={image}]')?.naturalWidth > 0", timeout=10_000)
    shot(staff, "staff_review_queue")
    staff.click("[data-review] [data-action=approve]")
    on_screen(kiosk2, "read_flow", timeout=15_000)
    kiosk2.eval_on_selector("#reading", "el => el.scrollTop = el.scrollHeight")
    kiosk2.click("[data-action=accept]")
    on_screen(kiosk2, "read_pledge")

    # A power cut at station 2: the journal brings it back to the same screen.
    demo.kill_station("st-02")
    demo.start_station("st-02")
    kiosk2.reload()
    on_screen(kiosk2, "read_pledge", timeout=15_000)
    assert "李华" in kiosk2.inner_text("#candidate-info")
    # Approved by the proctor, candidate 2 goes on to the waiting room (the camera still shows
    # someone else: the monitor must flag the mismatch during the exam).
    for screen in ("read_pledge", "read_notice"):
        on_screen(kiosk2, screen)
        kiosk2.eval_on_selector("#reading", "el => el.scrollTop = el.scrollHeight")
        kiosk2.click("[data-action=accept]")
    draw_lot(kiosk2)
    kiosk2.wait_for_selector("[data-live=mic-ok].ok", timeout=15_000)
    kiosk2.click("[data-action=devices_ok]")
    on_screen(kiosk2, "info_confirm")
    kiosk2.click("[data-action=confirm_info]")
    on_screen(kiosk2, "waiting")

    # Candidate 1 goes through the whole flow.
    shot(kiosk1, "01_identify")
    identify(kiosk1, "20240001")
    kiosk1.wait_for_timeout(800)
    shot(kiosk1, "02_face_login")
    kiosk1.click("[data-action=face_capture]")
    read_all(kiosk1)
    draw_lot(kiosk1, "06_draw_lot")
    kiosk1.wait_for_selector("[data-live=mic-ok].ok", timeout=15_000)
    kiosk1.wait_for_selector("[data-live=camera-ok].ok", timeout=15_000)
    shot(kiosk1, "07_device_check")
    kiosk1.click("[data-action=devices_ok]")
    on_screen(kiosk1, "info_confirm")
    assert "张明" in kiosk1.inner_text("[data-field=name]")
    id_shown = kiosk1.inner_text("[data-field=id_number]")
    assert "*" in id_shown and "110105199003070" not in id_shown  # masked
    lot = int(kiosk1.inner_text("[data-field=lot]"))
    shot(kiosk1, "08_info_confirm")
    kiosk1.click("[data-action=confirm_info]")
    on_screen(kiosk1, "waiting")
    # Mandarin voice prompts are served to the kiosk page (built offline with espeak-ng).
    voice = kiosk1.request.get(demo.kiosk_url("st-01") + "voice/waiting_room.wav")
    assert voice.status == 200 and voice.body()[:4] == b"RIFF"
    kiosk1.wait_for_timeout(500)
    shot(kiosk1, "09_waiting")

    # The dashboard shows what the station publishes over MQTT (through the daemon).
    staff.wait_for_selector("[data-station=st-01][data-state=waiting]", timeout=10_000)
    assert staff.inner_text("[data-station=st-01] [data-field=lot]") == str(lot)
    shot(staff, "staff_dashboard_waiting")

    on_screen(kiosk1, "answering", timeout=(START_IN + 30) * 1000)
    kiosk1.wait_for_selector("[data-live=question-text][data-loaded=yes]", timeout=10_000)
    assert kiosk1.inner_text("[data-live=question]") == "1"
    shot(kiosk1, "10_answering_q1")
    staff.wait_for_selector("[data-station=st-01][data-state=answering]", timeout=10_000)
    # Monitoring: station 2 shows a different person than its candidate; station 1's page loses focus.
    staff.wait_for_selector("[data-station=st-02] [data-field=flags]:has-text('人脸不符')", timeout=15_000)
    shot(staff, "staff_dashboard_flags")
    for visible in ("false", "true"):
        kiosk1.evaluate("v => fetch('/api/focus', {method: 'POST', headers: {'Content-Type': 'application/json'},"
                        " body: JSON.stringify({visible: v})})", visible == "true")
        kiosk1.wait_for_timeout(1200)
    kiosk1.wait_for_function("document.querySelector('[data-live=question]').textContent === '2'",
                             timeout=(QUESTION_SECONDS + 5) * 1000)
    shot(kiosk1, "11_answering_q2")
    on_screen(kiosk1, "uploading", timeout=(QUESTION_SECONDS + 10) * 1000)
    shot(kiosk1, "12_uploading")
    on_screen(kiosk1, "done", timeout=60_000)
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
    for _ in range(100):
        if manifest_path.exists():
            break
        staff.wait_for_timeout(200)
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
    assert manifest["end_reason"] == "time_up" and manifest["flags"] == []
    # One joined file per camera and question (and the waiting room), checked, no media problem.
    assert manifest["media_problems"] == []
    assert {(q["camera"], q["question"]) for q in manifest["questions"]} == {
        (camera, question) for camera in ("main", "second") for question in (None, 1, 2)}
    for joined in manifest["questions"]:
        assert joined["complete"] and abs(joined["duration"] - joined["expected_duration"]) <= 2.0
        assert hashlib.sha256((demo.central_dir / joined["key"]).read_bytes()).hexdigest() == joined["sha256"]
    db_sync = db.execute("SELECT sync_status FROM attempt WHERE id = ?", (attempt_id,)).fetchone()[0]
    assert db_sync == "synced"

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

    # The daemon logged station events that arrived over MQTT.
    kinds = {k for (k,) in db.execute("SELECT kind FROM event WHERE source = 'mqtt' AND station_id = 'st-01'")}
    assert {"entered_waiting_room", "answering_finished"} <= kinds
    staff.wait_for_selector(f"[data-attempt='{attempt_id}'] [data-field=sync]:has-text('synced')", timeout=10_000)
    shot(staff, "staff_dashboard_done")


def test_demo_prepare_runs_twice(tmp_path: Path):
    """A second `make demo` reuses the secrets and starts from fresh demo data."""
    demo = DemoCentre(tmp_path, centre=f"twice{uuid.uuid4().hex[:6]}")
    first = demo.prepare()
    second = demo.prepare()
    assert first == second
    db = sqlite3.connect(tmp_path / "edge.db")
    assert db.execute("SELECT COUNT(*) FROM candidate").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM staff_user").fetchone()[0] == 1
