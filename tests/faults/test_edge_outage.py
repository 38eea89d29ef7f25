"""The edge web process down mid-exam, the station killed meanwhile, the worker down and Redis
restarted with sync jobs queued.

The exam never stops or slows while the edge is unreachable: the kiosk keeps counting down on
server time and shows the server as 断开 with a growing upload backlog. A power cut of the station
then (``kill -9``) is survived without the edge: the launcher's supervision starts the agent again
(as systemd does on the appliance) and the candidate resumes on the same question with its text on
screen, the paper key opened from the station's journal. When the edge is back,
uploads resume from the server's offsets and every segment is verified. The sync job that was
queued when Redis lost its data is queued again by the daemon and the recording reaches central
storage. ``make test-faults`` keeps the edge down for 60 s; ``make test`` for 25 s.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.demo import DemoCentre, Ports, free_port
from provisioning.supervise import Supervisor
from tests.faults.harness import Kiosk
from tests.services import JOB_TIMEOUT, START_TIMEOUT, wait_for

pytestmark = pytest.mark.faults

OUTAGE = 60.0 if os.environ.get("EXAMKIOSK_FAULTS") == "all" else 25.0
QUESTION_SECONDS = int(OUTAGE / 2 + 22)  # question 1 holds the outage's start, the crash and the resume
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "faults"


@contextlib.contextmanager
def supervised(demo: DemoCentre) -> Iterator[list[str]]:
    """The launcher's supervision (``python -m provisioning.demo`` runs the same ``Supervisor``)
    ticking on a thread; yields the lines it prints."""
    lines: list[str] = []
    supervisor, stop = Supervisor(demo, say=lines.append), threading.Event()

    def run() -> None:
        while not stop.wait(0.5):
            supervisor.tick()

    thread = threading.Thread(target=run, name="supervisor", daemon=True)
    thread.start()
    try:
        yield lines
    finally:
        stop.set()
        thread.join(10)


def test_edge_down_mid_exam_then_redis_loses_queued_jobs(tmp_path_factory, chromium):
    demo = DemoCentre(tmp_path_factory.mktemp("outage"),
                      ports=Ports(web=free_port(), kiosk=free_port(), mqtt=free_port(), mqtt_tls=free_port(),
                                  redis=free_port()),
                      centre=f"o{uuid.uuid4().hex[:6]}", start_in=45, question_seconds=QUESTION_SECONDS,
                      segment_seconds=2.0)
    demo.prepare()
    demo.start()
    try:
        kiosk = Kiosk(demo.kiosk_url(), logs=[demo.logs / "station-st-01.log"])
        state = kiosk.enter_waiting_room("20240001")
        offset = state["server_time"] - time.time()
        starts_at = state["sitting"]["starts_at"]
        ends_at = starts_at + 2 * QUESTION_SECONDS
        kiosk.wait_screen("answering", timeout=starts_at - offset - time.time() + START_TIMEOUT)
        time.sleep(3)

        demo.stop_process("edge-worker")
        demo.stop_web()  # both instances: the station API and the staff pages
        down_at = time.monotonic()
        crash_and_resume_without_the_edge(demo, kiosk, chromium)
        during = kiosk.wait(lambda s: not s["server_ok"] and s["backlog"] >= 3, OUTAGE - 5,
                            "backlog growing while the edge is down")
        assert during["screen"] == "answering"
        # The countdown follows server time while the edge is away.
        assert abs(during["time_left"] - (starts_at + QUESTION_SECONDS - during["server_time"])) < 1.0
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
        assert kiosk.state()["screen"] == "answering"
        demo.start_web()

        kiosk.wait_screen("done", timeout=ends_at - offset - time.time() + JOB_TIMEOUT)
        db = sqlite3.connect(demo.root / "edge.db")
        attempt, expected, sync = db.execute(
            "SELECT a.id, a.expected_segments, a.sync_status FROM attempt a JOIN candidate c ON c.id = a.candidate_id"
            " WHERE c.ticket_no = '20240001'").fetchone()
        statuses = dict(db.execute("SELECT name, status FROM segment WHERE attempt_id = ?", (attempt,)).fetchall())
        assert sorted(statuses) == sorted(json.loads(expected))
        assert set(statuses.values()) == {"verified"}
        assert sync == "queued"  # the worker is down: the job waits in Redis

        # Redis restarts empty (no persistence in the demo): the queued job is gone.
        demo.stop_process("redis")
        demo.start_redis()
        demo.start_worker()
        manifest = wait_for(lambda: next((demo.central_dir / demo.centre).glob("*/lot-*/manifest.json"), None),
                            JOB_TIMEOUT, "the daemon queueing the lost sync job again, the worker writing its manifest",
                            [demo.logs / f"{name}.log" for name in ("edge-daemon", "edge-worker")], interval=0.5)
        objects = json.loads(manifest.read_text())["objects"]
        assert sorted(o["key"].rsplit("/", 1)[1] for o in objects) == sorted(statuses)
    finally:
        demo.stop()


def crash_and_resume_without_the_edge(demo: DemoCentre, kiosk: Kiosk, chromium) -> None:
    log = demo.logs / "station-st-01.log"
    before = kiosk.wait(lambda s: s["screen"] == "answering" and (s.get("paper") or {}).get("text"), START_TIMEOUT,
                        "question 1 on screen")
    question, text = before["question"], before["paper"]["text"]
    with supervised(demo) as lines:
        old_pid = demo.processes["station-st-01"].pid
        os.killpg(old_pid, signal.SIGKILL)  # a power cut: the agent and its kiosk server are gone at once
        wait_for(lambda: "station-st-01" in demo.processes and demo.processes["station-st-01"].pid != old_pid,
                 START_TIMEOUT, "the launcher starting the killed station again", [log])
        assert lines == ["station-st-01 was killed by signal 9; restarting it in 2 s"]
        kiosk.wait(lambda s: s["screen"] == "resume", START_TIMEOUT, "继续录制 offered after the restart")
    kiosk.send("resume")
    resumed = kiosk.wait(lambda s: s["screen"] == "answering" and (s.get("paper") or {}).get("text"), START_TIMEOUT,
                         "the same question's text on screen again, with the edge still down")
    assert not resumed["server_ok"], "the edge must still be down for this to prove anything"
    assert resumed["question"] == question and resumed["paper"]["text"] == text
    assert "restored from the journal" in log.read_text(), "the paper key did not come from the journal"
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(demo.kiosk_url())
        page.wait_for_function("([want]) => document.querySelector('[data-live=question-text]')?.textContent"
                               ".includes(want)", arg=[text[:20]], timeout=START_TIMEOUT * 1000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "resumed_without_edge.png"))
    finally:
        page.close()
