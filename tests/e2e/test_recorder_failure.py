"""A sealed segment whose ``on_closed`` fails (it cannot be journaled or signed) still reaches the
edge, verified: on the demo centre (every edge process real), with the station's runtime in this
process so that its journal can fail once, as a full disk or a broken database would.

Asserted: the segment is journaled after it had to wait, in its place in the chain (seq 0, every
later one after it), the edge verifies it with the SHA-256 of the file and the exam ends as usual
(the edge confirms every segment); staff heard of it (``recorder_failed`` on the edge).
"""
from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import pytest

from provisioning.demo import DemoCentre, Ports, free_port
from station.config import load_settings
from station.kiosk.app import serve_kiosk
from station.runtime.runner import Runtime
from tests.faults.harness import Kiosk
from tests.services import JOB_TIMEOUT, START_TIMEOUT, wait_for

pytestmark = pytest.mark.e2e

TICKET = "20240001"


def edge_rows(demo: DemoCentre, sql: str, *args: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{demo.root / 'edge.db'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def test_a_segment_whose_on_closed_failed_reaches_the_edge_verified(tmp_path_factory, monkeypatch):
    demo = DemoCentre(tmp_path_factory.mktemp("recfail"),
                      ports=Ports(web=free_port(), kiosk=free_port(), mqtt=free_port(), mqtt_tls=free_port(),
                                  redis=free_port()),
                      centre=f"r{uuid.uuid4().hex[:6]}", start_in=3, question_seconds=60, segment_seconds=1.0,
                      timing_mode="whole_session", daemon_interval=1.0)
    demo.prepare()
    monkeypatch.setattr(demo, "start_station", lambda sid: None)  # this station runs here, below
    monkeypatch.setenv("EXAMKIOSK_STATION_CONFIG", str(demo.station_config(demo.station_ids[0])))
    demo.start()
    runtime = server = None
    try:
        settings = load_settings()
        runtime = Runtime(settings)
        journal = runtime.ctx.journal
        real_add, failed = journal.add_segment, []

        def add_segment(**kwargs):
            if not failed:  # the first segment sealed: its journaling fails, once
                failed.append(kwargs["name"])
                raise sqlite3.OperationalError("database or disk is full")
            return real_add(**kwargs)

        monkeypatch.setattr(journal, "add_segment", add_segment)
        runtime.start()
        server = serve_kiosk(runtime.kiosk, settings.kiosk.host, settings.kiosk.port)
        threading.Thread(target=runtime.run, name="runner", daemon=True).start()
        logs = [demo.logs / f"{name}.log" for name in ("edge-api", "edge-daemon", "edge-worker")]
        kiosk = Kiosk(demo.kiosk_url(), logs=logs)

        kiosk.enter_waiting_room(TICKET, until=("waiting", "answering"))
        attempt = runtime.state.attempt_id
        wait_for(lambda: failed, START_TIMEOUT, "the first segment to be sealed", logs)
        wait_for(lambda: failed[0] in {s.name for s in journal.segments_of(attempt)}, START_TIMEOUT,
                 f"{failed[0]} journaled after its failure", logs)
        kiosk.wait_screen("answering")
        time.sleep(2.5)
        kiosk.send("end_exam", confirmed=True)
        kiosk.wait_screen("done", timeout=JOB_TIMEOUT)

        segments = journal.segments_of(attempt)
        main = [s for s in segments if s.camera == "main"]
        assert [s.seq for s in main] == list(range(len(main))) and len(main) >= 3
        (first,) = [s for s in main if s.name == failed[0]]
        assert first.seq == 0 and first.status == "verified"
        on_edge = {name: (status, sha) for name, status, sha in edge_rows(
            demo, "SELECT name, status, sha256_actual FROM segment WHERE attempt_id = ?", attempt)}
        assert on_edge[first.name] == ("verified", first.sha256)
        assert {s.name: on_edge[s.name][0] for s in segments} == {s.name: "verified" for s in segments}
        # Staff heard of it: the event is in the edge's log, naming the segment.
        reports = wait_for(lambda: edge_rows(demo, "SELECT payload FROM event WHERE attempt_id = ? AND kind = ?",
                                             attempt, "recorder_failed"),
                           START_TIMEOUT, "the recorder_failed event on the edge", logs)
        assert any(failed[0] in str(payload) for (payload,) in reports)
    finally:
        if server is not None:
            server.shutdown()
        if runtime is not None:
            runtime.stop()
        demo.stop()
