"""The frames face login was decided on go to central storage with the attempt, for the reviewers
(the sync job as the worker runs it; fixtures from test_sync.py)."""
from __future__ import annotations

import hashlib

from edge_server.extensions import db
from edge_server.models import Attempt
from edge_server.services import attempts as attempt_service
from edge_server.services import frames
from edge_server.work_queue import enqueue_sync
from provisioning import assets
from tests.edge_server.jobs.test_sync import SyncEdge, assert_central_copy, edge, make_recorded_attempt, read_directory  # noqa: F401


def test_every_try_frame_and_the_review_frame_land_in_central_storage(edge: SyncEdge):  # noqa: F811
    recorded = make_recorded_attempt(edge, segments=1)
    jpeg = assets.grace_hopper_image().read_bytes()
    other = assets.astronaut_image().read_bytes()
    with edge.app.app_context():
        attempt = db.session.get(Attempt, recorded.attempt_id)
        data_dir = edge.settings.data_dir
        for distance, frame in ((0.81, jpeg), (0.79, other), (0.84, None)):
            sha = frames.store_face_try_frame(data_dir, attempt.id, frame) if frame else None
            attempt_service.record_face_try(db.session, attempt, distance=distance, matched=False, frame_sha256=sha)
        review = attempt_service.request_review(db.session, attempt, 0.79)
        path = frames.review_frame_path(data_dir, review.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(other)
        db.session.commit()
        review_id = review.id

    enqueue_sync(edge.settings, recorded.attempt_id)
    edge.run_worker()
    assert edge.job(recorded.attempt_id).get_status() == "finished", edge.job(recorded.attempt_id).latest_result()
    stored = read_directory(edge.settings.storage.directory)
    manifest = assert_central_copy(stored, recorded)
    tries = manifest["face_login"]["tries"]
    assert [(t["try"], t["distance"], t["matched"]) for t in tries] == [(1, 0.81, False), (2, 0.79, False),
                                                                        (3, 0.84, False)]
    assert tries[2]["key"] is None and tries[2]["sha256"] is None, "a try without a frame is listed, not invented"
    for entry, data in ((tries[0], jpeg), (tries[1], other)):
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["key"].endswith(f"/face_login/try-{entry['try']:02d}.jpg")
        assert stored(entry["key"]) == data
    (review_entry,) = manifest["face_login"]["reviews"]
    assert review_entry["key"].endswith(f"/face_login/review-{review_id}.jpg")
    assert stored(review_entry["key"]) == other and review_entry["status"] == "pending"
