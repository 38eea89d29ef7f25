"""End to end: a proctor moves a candidate to a spare station mid-question, on real parts.

The demo centre runs two station agents as real processes. The candidate is seated at st-01 on
the seat map, enters the waiting room there and starts answering; the proctor moves them to the
spare st-02 on the seat-map page. st-01 must stop, show where the candidate went and hand every
segment over; st-02 asks for the face again and continues the same question with the time left on
server time; in the end every segment of both stations is verified for the one attempt and its
chain checks out. Screenshots: tests/artifacts/e2e/move_*.png.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from examkiosk_wire.central import AttemptManifest
from provisioning.demo import DemoCentre
from region_server.chain_check import Found, check_chain
from tests.e2e.centre import logs_of, running_centre, shot, wait_selector
from tests.faults.harness import Kiosk, journal_segments
from tests.services import JOB_TIMEOUT, START_TIMEOUT, wait_for

pytestmark = pytest.mark.e2e

START_IN = 40.0
QUESTION_SECONDS = 14
TICKET = "20240001"


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory):
    with running_centre(tmp_path_factory.mktemp("move"), "mv", start_in=START_IN, question_seconds=QUESTION_SECONDS,
                        segment_seconds=2.0, stations=2) as running:
        yield running


def seat_page(staff, demo: DemoCentre, sitting: str):
    staff.goto(f"{demo.web_url}/staff/sittings/{sitting}/seats")
    wait_selector(staff, "[data-list=seats]", "the seat map", logs_of(demo, "edge-web"))


def test_move_to_a_spare_station_mid_question(centre, chromium):
    demo, login = centre
    st01, st02, edge = (logs_of(demo, "station-st-01"), logs_of(demo, "station-st-02"),
                        logs_of(demo, "edge-web", "edge-api", "edge-daemon"))
    old, new = Kiosk(demo.kiosk_url("st-01"), st01), Kiosk(demo.kiosk_url("st-02"), st02)
    sitting = _sitting_id(demo)

    staff = chromium.new_page(viewport={"width": 1280, "height": 800}, ignore_https_errors=True)
    staff.goto(f"{demo.web_url}/staff/")
    staff.fill("input[name=username]", login["username"])
    staff.fill("input[name=password]", login["password"])
    staff.click("input[type=submit]")
    seat_page(staff, demo, sitting)
    row = staff.locator(f"[data-list=unseated] tr[data-ticket='{TICKET}']")
    row.locator("select[name=station]").select_option("st-01")
    row.locator("[type=submit]").click()
    wait_selector(staff, f"[data-station=st-01][data-ticket='{TICKET}']", "the candidate seated at st-01", edge)

    state = old.enter_waiting_room(TICKET)
    attempt = _attempt_of(demo, "st-01")
    starts_at = state["sitting"]["starts_at"]
    old.wait(lambda s: s["screen"] == "answering" and s["time_left"] is not None
             and s["time_left"] < QUESTION_SECONDS - 4, START_IN + START_TIMEOUT,
             "answering question 1 for a few seconds")

    # The proctor moves the candidate to the spare station (an interruption under the policy).
    seat_page(staff, demo, sitting)
    seat = staff.locator(f"[data-station=st-01][data-ticket='{TICKET}']")
    seat.locator("select[name=station]").select_option("st-02")
    seat.locator("[data-form=move] [type=submit]").click()
    wait_selector(staff, f"[data-station=st-02][data-ticket='{TICKET}']", "the candidate seated at st-02", edge)
    assert "interruption 1 of 1" in staff.inner_text("body")

    # st-01 stops recording and says where the candidate went, then frees itself once all is verified.
    kiosk_old = chromium.new_page(viewport={"width": 1280, "height": 800})
    kiosk_old.goto(demo.kiosk_url("st-01"))
    moved = old.wait_screen("moved")
    assert moved["moved_to"] == "A02"
    wait_selector(kiosk_old, "html[data-screen=moved]", "st-01's page showing the move", st01)
    assert "A02" in kiosk_old.inner_text("[data-live=moved-to]")
    shot(kiosk_old, "move_old_station")
    old.wait(lambda s: s["screen"] == "identify" and s["candidate"] is None, JOB_TIMEOUT, "st-01 handed over")

    # st-02: ticket, face login again, its camera and microphone checked, then "continue" on the
    # same question with the server's time.
    new.wait(lambda s: s["server_ok"], START_TIMEOUT, "edge found")
    new.send("identify", ticket_no=TICKET)
    new.wait_screen("face_login")
    new.send("face_capture")
    new.wait_screen("device_check")
    new.wait(lambda s: s["camera_ok"] and s["mic_ok"], START_TIMEOUT, "st-02's devices working")
    new.send("devices_ok")
    resume = new.wait_screen("resume")
    kiosk_new = chromium.new_page(viewport={"width": 1280, "height": 800})
    kiosk_new.goto(demo.kiosk_url("st-02"))
    wait_selector(kiosk_new, "html[data-screen=resume]", "st-02's page offering to continue", st02)
    assert "moved to this station" in kiosk_new.inner_text("body") or "您已转至本考位" in kiosk_new.inner_text("body")
    shot(kiosk_new, "move_new_station_resume")
    assert resume["interruptions"] == 1
    new.send("resume")
    going = new.wait(lambda s: s["screen"] in ("answering", "uploading", "done"), START_TIMEOUT, "answering again")
    if going["screen"] == "answering":
        q = going["question"]
        window_end = starts_at + q * QUESTION_SECONDS
        assert abs(going["time_left"] - (window_end - going["server_time"])) < 1.0, "time left not on server time"
        assert set(range(1, q)) <= set(going["answered"])
    done = new.wait_screen("done", timeout=2 * QUESTION_SECONDS + JOB_TIMEOUT)
    assert set(done["answered"]) == {1, 2}

    # The edge: one attempt, every segment of both stations verified, the chain runs across the move.
    db = sqlite3.connect(demo.root / "edge.db")
    rows = db.execute("SELECT name, station_id, status, seq FROM segment WHERE attempt_id = ?", (attempt,)).fetchall()
    by_station = {sid: {name for name, s, _, _ in rows if s == sid} for sid in ("st-01", "st-02")}
    assert by_station["st-01"] and by_station["st-02"]
    assert all(status == "verified" for _, _, status, _ in rows)
    assert min(seq for _, s, _, seq in rows if s == "st-02") == 10_000
    for sid in ("st-01", "st-02"):
        assert {n for n, _, _ in journal_segments(demo.station_data(sid) / "journal.db")} == by_station[sid]
    expected, complete = db.execute("SELECT expected_segments, upload_complete_at FROM attempt WHERE id = ?",
                                    (attempt,)).fetchone()
    assert complete is not None and sorted(json.loads(expected)) == sorted(n for n, *_ in rows)
    kinds = [k for (k,) in db.execute("SELECT kind FROM event WHERE attempt_id = ? ORDER BY id", (attempt,))]
    assert kinds.count("interruption") == 1 and "moved_away" in kinds and "segments_handed_over" in kinds

    # Central storage: every link names the station that signed it, so the region's chain check
    # (which trusts no edge) passes across the move.
    path = wait_for(lambda: next((demo.central_dir / demo.centre).glob("*/lot-*/manifest.json"), None), JOB_TIMEOUT,
                    "the sync job writing the moved attempt's manifest", logs_of(demo, "edge-worker"), interval=0.5)
    manifest = AttemptManifest.model_validate_json(path.read_bytes())
    public_keys = dict(db.execute("SELECT id, public_key FROM station").fetchall())
    recorded_by = {name: sid for name, sid, _, _ in rows}
    assert {o.chain.key for o in manifest.objects} == {public_keys["st-01"], public_keys["st-02"]}
    assert all(o.chain.key == public_keys[recorded_by[Path(o.key).name]] for o in manifest.objects)
    found = {o.key: Found(o.size, o.sha256) for o in manifest.objects}
    assert check_chain(manifest.attempt, manifest.station_public_key, list(manifest.objects), found, []) == []


def _sitting_id(demo: DemoCentre) -> str:
    return sqlite3.connect(demo.root / "edge.db").execute("SELECT sitting_id FROM candidate WHERE ticket_no = ?",
                                                          (TICKET,)).fetchone()[0]


def _attempt_of(demo: DemoCentre, sid: str) -> str:
    row = sqlite3.connect(demo.station_data(sid) / "journal.db").execute("SELECT data FROM state").fetchone()
    return json.loads(row[0])["attempt_id"]
