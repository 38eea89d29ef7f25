"""Fault 5: central storage unwritable for a while, on the whole demo centre.

The station agent records an attempt and uploads it to the edge while central storage cannot be
written (a file stands where its directory should be: ``chmod`` would not stop root). Retention is
as eager as it can be: the station keeps nothing it has had verified (``keep_hours = 0``) and
neither does the edge (``keep_hours = 0``, a sweep every round of the daemon, every second).

Asserted: while the sync fails, the edge keeps every segment (by then the only copy: the station
deleted its own once the edge verified them); once storage is writable again, the sync completes by
itself (the RQ retry); the manifest and every segment land with the SHA-256 the station recorded;
only then does the edge delete its copies, and every verified segment is accounted for.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from provisioning.demo import DemoCentre, Ports, free_port
from tests.faults.harness import Kiosk, configure, journal_segments
from tests.services import JOB_TIMEOUT, START_TIMEOUT, wait_for

pytestmark = pytest.mark.faults

TICKET = "20240001"


def attempt_row(demo: DemoCentre) -> tuple[str, str, str] | None:
    db = sqlite3.connect(f"file:{demo.root / 'edge.db'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT a.id, a.sync_status, a.sync_error FROM attempt a JOIN candidate c"
                          " ON c.id = a.candidate_id WHERE c.ticket_no = ?", (TICKET,)).fetchone()
    finally:
        db.close()


def edge_segments(demo: DemoCentre, attempt: str) -> dict[str, tuple[str, str]]:
    db = sqlite3.connect(f"file:{demo.root / 'edge.db'}?mode=ro", uri=True, timeout=5)
    try:
        return {name: (status, sha) for name, status, sha in db.execute(
            "SELECT name, status, sha256_actual FROM segment WHERE attempt_id = ?", (attempt,))}
    finally:
        db.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_central_storage_unwritable_then_back(tmp_path_factory):
    demo = DemoCentre(tmp_path_factory.mktemp("storage"),
                      ports=Ports(web=free_port(), kiosk=free_port(), mqtt=free_port(), mqtt_tls=free_port(),
                                  redis=free_port()),
                      centre=f"s{uuid.uuid4().hex[:6]}", start_in=3, question_seconds=60, segment_seconds=1.0,
                      timing_mode="whole_session", daemon_interval=1.0)
    demo.prepare()
    configure(demo.edge_config, retention={"keep_hours": 0, "sweep_seconds": 1})
    configure(demo.station_config(demo.station_ids[0]), retention={"keep_hours": 0})
    demo.central_dir.write_text("a file where the central storage directory should be\n")
    demo.start()
    try:
        kiosk = Kiosk(demo.kiosk_url(), logs=[demo.logs / "station-st-01.log"])
        worker = [demo.logs / f"{name}.log" for name in ("edge-worker", "edge-daemon")]
        # The exam has begun: the candidate goes straight to question 1, then 2, then ends it.
        kiosk.enter_waiting_room(TICKET, until=("answering",))
        time.sleep(2.5)
        kiosk.send("next_question")
        kiosk.wait(lambda s: s["question"] == 2, START_TIMEOUT, "question 2")
        time.sleep(2.5)
        kiosk.send("end_exam", confirmed=True)
        kiosk.wait_screen("done", timeout=JOB_TIMEOUT)

        attempt, _, _ = attempt_row(demo)
        journal = demo.station_data(demo.station_ids[0]) / "journal.db"
        recorded = {name: sha for name, sha, status in journal_segments(journal) if status == "verified"}
        assert len(recorded) >= 4 and len(recorded) == len(journal_segments(journal))
        recordings = demo.edge_data / "recordings" / attempt

        # The sync fails: central storage cannot be written.
        *_, error = wait_for(lambda: (row := attempt_row(demo)) and row[1] == "failed" and row, JOB_TIMEOUT,
                             "the sync job failing on the unwritable central storage", worker)
        assert "cannot write" in error
        # The station kept nothing it had verified; the edge, the only copy left, keeps everything
        # through several retention sweeps.
        segments_dir = demo.station_data(demo.station_ids[0]) / "segments" / attempt
        wait_for(lambda: not any(segments_dir.glob("*.mkv")), START_TIMEOUT, "the station's retention deleting "
                 "its verified segments", [demo.logs / "station-st-01.log"])
        for _ in range(3):
            assert {p.name: sha256(p) for p in recordings.glob("*.mkv")} == recorded
            assert attempt_row(demo)[1] == "failed"
            time.sleep(1.0)

        # Storage is back: the sync completes by itself.
        demo.central_dir.unlink()
        manifest_path = wait_for(lambda: next(demo.central_dir.glob(f"{demo.centre}/*/*/manifest.json"), None),
                                 JOB_TIMEOUT, "the retried sync job writing the manifest in central storage", worker)
        wait_for(lambda: attempt_row(demo)[1] == "synced", JOB_TIMEOUT, "the attempt marked synced", worker)
        manifest = json.loads(manifest_path.read_text())
        prefix = manifest_path.parent
        objects = {o["key"].rsplit("/", 1)[1]: o for o in manifest["objects"]}
        assert sorted(objects) == sorted(recorded)
        for name, sha in recorded.items():
            stored = prefix / "segments" / name
            assert objects[name]["sha256"] == sha == sha256(stored), name
            assert objects[name]["size"] == stored.stat().st_size
        for question in manifest["questions"]:
            assert sha256(prefix / "questions" / question["key"].rsplit("/", 1)[1]) == question["sha256"]

        # Only now, confirmed by central storage, the edge lets its copies go.
        joined = demo.edge_data / "joined" / attempt
        # One sweep deletes the segments, then the per-question files, each read back first.
        wait_for(lambda: not recordings.exists() and not joined.exists(), JOB_TIMEOUT,
                 "the edge's retention deleting its copies", worker)
        assert edge_segments(demo, attempt) == {name: ("verified", sha) for name, sha in recorded.items()}
    finally:
        demo.stop()
