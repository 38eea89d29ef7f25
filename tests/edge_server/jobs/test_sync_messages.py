"""The attempt's help chat and acknowledged broadcasts go into its manifest in central storage
(the sync job as the worker runs it; fixtures from test_sync.py)."""
from __future__ import annotations

import json

from edge_server.extensions import db
from edge_server.models import Attempt, HelpThread, StaffRole, Station
from edge_server.services import messages as message_service
from edge_server.services.staff import create_user
from edge_server.work_queue import enqueue_sync
from tests.edge_server.jobs.test_sync import (  # noqa: F401
    CANDIDATE_NAME,
    SyncEdge,
    assert_central_copy,
    edge,
    make_recorded_attempt,
    read_directory,
)


def test_the_manifest_carries_the_attempts_help_chat(edge: SyncEdge):  # noqa: F811
    recorded = make_recorded_attempt(edge, segments=1)
    with edge.app.app_context():
        attempt = db.session.get(Attempt, recorded.attempt_id)
        station = db.session.get(Station, attempt.station_id)
        proctor = create_user(db.session, "proctor", "correct horse battery", StaffRole.PROCTOR, "c1")
        help_request = message_service.ask_for_help(db.session, station, attempt_id=attempt.id, reason="network",
                                                    text="上传很慢")
        thread = db.session.get(HelpThread, help_request.thread_id)
        message_service.reply(db.session, thread, staff=proctor, text="不影响考试，请继续作答")
        finished_at, attempt.finished_at = attempt.finished_at, None  # the notice came during the exam
        notice = message_service.broadcast(db.session, attempt.sitting, staff=proctor, text="请保持安静")
        message_service.acknowledge(db.session, station, notice.id, attempt_id=attempt.id)
        attempt.finished_at = finished_at
        db.session.commit()

    enqueue_sync(edge.settings, recorded.attempt_id)
    edge.run_worker()
    assert edge.job(recorded.attempt_id).get_status() == "finished", edge.job(recorded.attempt_id).latest_result()
    manifest = assert_central_copy(read_directory(edge.settings.storage.directory), recorded)
    assert [(m["kind"], m["from"], m["text"]) for m in manifest["messages"]] == [
        ("help", "candidate", "上传很慢"), ("reply", "proctor", "不影响考试，请继续作答"),
        ("broadcast", "proctor", "请保持安静")]
    assert all("author" not in m for m in manifest["messages"]), "no staff names for the markers"
    assert CANDIDATE_NAME not in json.dumps(manifest, ensure_ascii=False)
