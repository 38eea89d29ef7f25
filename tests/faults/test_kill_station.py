"""`kill -9` of station agents at points spread over the exam, on the real edge stack.

Five stations sit one sitting together; each is killed once at its own point and restarted at
once (a power cut and a reboot). After the exam every station must show "上传成功" and:
no verified byte is lost, every closed segment ends up verified, at most the open segment is lost
per crash (the signed chain has no gap), answered questions are kept, the remaining time after
"继续录制" is right on server time, and the interruption is counted on the edge.

CI runs a seeded random subset of the twenty points (``EXAMKIOSK_FAULT_SEED``);
``make test-faults`` runs all twenty.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid

import pytest

from provisioning.demo import DemoCentre, Ports, free_port
from tests.faults.harness import KillPoint, Kiosk, choose, closed_segments, journal_segments, kill_points
from tests.services import JOB_TIMEOUT, START_TIMEOUT, explain, wait_for

pytestmark = pytest.mark.faults

QUESTION_SECONDS = 16
STATIONS = 5
SEED = int(os.environ.get("EXAMKIOSK_FAULT_SEED", "20261122"))


def batches() -> list[list[KillPoint]]:
    points = kill_points(QUESTION_SECONDS)
    if os.environ.get("EXAMKIOSK_FAULTS") == "all":
        return [points[i:i + STATIONS] for i in range(0, len(points), STATIONS)]
    return [choose(points, STATIONS, SEED)]


def consecutive_free_ports(count: int) -> int:
    for _ in range(100):
        base = free_port()
        socks = []
        try:
            for i in range(count):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


@pytest.mark.parametrize("points", batches(), ids=lambda pts: "+".join(p.name for p in pts))
def test_kill_9_at_points_across_the_exam(points: list[KillPoint], tmp_path_factory):
    demo = DemoCentre(
        tmp_path_factory.mktemp("faults"),
        ports=Ports(web=free_port(), kiosk=consecutive_free_ports(STATIONS), mqtt=free_port(), mqtt_tls=free_port(),
                    redis=free_port()),
        centre=f"f{uuid.uuid4().hex[:6]}", start_in=80, question_seconds=QUESTION_SECONDS, segment_seconds=2.0,
        stations=STATIONS, extra_candidates=STATIONS,
    )
    demo.prepare()
    demo.start()
    try:
        run_batch(demo, points)
    finally:
        demo.stop()


def run_batch(demo: DemoCentre, points: list[KillPoint]) -> None:
    tickets = ["20240001"] + [f"2024{n + 3:04d}" for n in range(STATIONS - 1)]
    kiosks = {sid: Kiosk(demo.kiosk_url(sid), logs=[demo.logs / f"station-{sid}.log"]) for sid in demo.station_ids}
    reports: dict[str, dict] = {}
    errors: list[BaseException] = []
    kill_lock = threading.Lock()  # one restart at a time keeps the 2 cores from thrashing

    def station(sid: str, ticket: str, point: KillPoint) -> None:
        try:
            reports[sid] = drive(demo, sid, kiosks[sid], ticket, point, kill_lock)
        except BaseException as exc:  # reported below with the station's name, its threads and its log's end
            demo.dump_stacks(f"station-{sid}")
            errors.append(AssertionError(f"{sid} ({point.name}): {exc}\n--- station log ---\n"
                                         f"{demo.log_tail(f'station-{sid}', chars=20000)}"))

    threads = [threading.Thread(target=station, args=(sid, ticket, point))
               for sid, ticket, point in zip(demo.station_ids, tickets, points, strict=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 600  # the exam (80 s + 2 questions) and each station's restart, loaded
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [sid for sid, t in zip(demo.station_ids, threads, strict=True) if t.is_alive()]
    assert not stuck, explain(f"stations still being driven after 600 s: {stuck}",
                              [demo.logs / f"station-{sid}.log" for sid in stuck])
    assert not errors, "\n".join(str(e) for e in errors)
    assert set(reports) == set(demo.station_ids)
    check_edge(demo, reports)


def drive(demo: DemoCentre, sid: str, kiosk: Kiosk, ticket: str, point: KillPoint, kill_lock) -> dict:
    state = kiosk.enter_waiting_room(ticket)
    sitting = state["sitting"]
    starts_at = sitting["starts_at"]
    ends_at = starts_at + 2 * QUESTION_SECONDS
    offset = state["server_time"] - time.time()
    due = point.due(starts_at, ends_at) - offset
    time.sleep(max(0.0, due - time.time()))
    journal = demo.station_data(sid) / "journal.db"
    with kill_lock:
        before = kiosk.state()
        attempt = json.loads(sqlite3.connect(journal).execute("SELECT data FROM state").fetchone()[0])["attempt_id"]
        if point.after_rotation:  # kill at once after a segment closes (2 s segments)
            closed = closed_segments(journal, attempt)
            wait_for(lambda: closed_segments(journal, attempt) != closed, START_TIMEOUT,
                     f"{sid} closing its next segment", [demo.logs / f"station-{sid}.log"], interval=0.01)
            before = kiosk.state()
        verified_before = {name: sha for name, sha, status in journal_segments(journal) if status == "verified"}
        demo.kill_station(sid)
        killed_at = time.time() + offset
        parts = list((demo.station_data(sid) / "segments" / attempt).glob("*.part"))
        demo.start_station(sid)
    recording = before["screen"] in ("waiting", "answering")
    after = kiosk.wait(lambda s: s["screen"] != "identify", START_TIMEOUT, "restore")
    if recording:
        after = kiosk.wait(lambda s: s["screen"] in ("resume", "uploading", "done"), START_TIMEOUT, "resume offered")
    resumed = None
    if after["screen"] == "resume":
        kiosk.send("resume")
        resumed = kiosk.wait(lambda s: s["screen"] in ("waiting", "answering", "uploading", "done"), START_TIMEOUT,
                             "resumed")
        now = resumed["server_time"]
        if resumed["screen"] == "answering":
            q = resumed["question"]
            window_end = starts_at + q * QUESTION_SECONDS
            assert abs(resumed["time_left"] - (window_end - now)) < 1.0, "remaining time not on server time"
            assert set(before["answered"]) <= set(resumed["answered"]), "answered questions lost"
            assert set(range(1, q)) <= set(resumed["answered"])
        elif resumed["screen"] == "waiting":
            assert abs(resumed["time_left"] - (starts_at - now)) < 1.0
    done = kiosk.wait_screen("done", timeout=ends_at - time.time() - offset + JOB_TIMEOUT)
    assert set(done["answered"]) == {1, 2}, done["answered"]
    return {"attempt": attempt, "point": point.name, "recording": recording, "resumed": resumed is not None,
            "verified_before": verified_before, "parts": [p.name for p in parts], "killed_at": killed_at,
            "journal": journal_segments(journal)}


def check_edge(demo: DemoCentre, reports: dict[str, dict]) -> None:
    db = sqlite3.connect(demo.root / "edge.db")
    recordings = demo.edge_data / "recordings"
    for sid, report in reports.items():
        attempt = report["attempt"]
        rows = {name: (status, sha, prev, entry, seq) for name, status, sha, prev, entry, seq in db.execute(
            "SELECT name, status, sha256_actual, prev_hash, entry_hash, seq FROM segment WHERE attempt_id = ?",
            (attempt,))}
        journal = {name: sha for name, sha, _ in report["journal"]}
        # Every closed segment (the journal holds exactly the closed ones) is verified on the edge.
        assert set(journal) == set(rows), f"{sid}: edge and station disagree on the segments"
        assert all(status == "verified" and sha == journal[name] for name, (status, sha, *_) in rows.items())
        # No verified byte lost: what was verified before the crash is still there, unchanged.
        for name, sha in report["verified_before"].items():
            assert rows[name][1] == sha and (recordings / attempt / name).exists()
        # At most the open segment was lost: the chain runs without a gap or a broken link.
        chain = sorted((seq, prev, entry) for _, _, prev, entry, seq in rows.values())
        assert [seq for seq, _, _ in chain] == list(range(len(chain))), f"{sid}: gap in the segment sequence"
        assert all(chain[i][1] == chain[i - 1][2] for i in range(1, len(chain)))
        assert len(report["parts"]) <= 1
        expected, complete = db.execute("SELECT expected_segments, upload_complete_at FROM attempt WHERE id = ?",
                                        (attempt,)).fetchone()
        assert complete is not None and sorted(json.loads(expected)) == sorted(journal)
        # The interruption is counted on the edge.
        if report["resumed"]:
            counts = [json.loads(p)["count"] for (p,) in db.execute(
                "SELECT payload FROM event WHERE kind = 'interruption' AND attempt_id = ?", (attempt,))]
            assert counts == [1], f"{sid}: interruptions on the edge {counts}"
