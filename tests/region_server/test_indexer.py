"""The indexer: finds attempts, sittings and lot maps per centre; idempotent, resumable, and safe to run
twice at once; a refused manifest is a problem with its key and nothing else is skipped."""
from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select

from examkiosk_wire import central as wire
from region_server.extensions import db
from region_server.models import Attempt, Centre, IndexCursor, LotTicket, Problem, ProblemKind, Sitting, StoredObject
from tests.region_server.central_data import write_attempt, write_sitting
from tests.region_server.helpers import index_all


def _counts(app) -> dict[str, int]:
    with app.app_context():
        return {"attempts": db.session.scalar(select(func.count()).select_from(Attempt)),
                "objects": db.session.scalar(select(func.count()).select_from(StoredObject)),
                "centres": db.session.scalar(select(func.count()).select_from(Centre))}


@pytest.mark.parametrize("central", ["directory", "s3"], indirect=True)
def test_a_pass_indexes_every_centre_and_a_second_pass_fetches_nothing(app, central, station_key):
    w = central.writer
    a1 = write_attempt(w, "c1", "s1", 1, "att-c1-1", station_key, per_camera=2)
    write_attempt(w, "c1", "s1", 2, "att-c1-2", station_key, per_camera=2)
    write_attempt(w, "c2", "s9", None, "att-c2-1", station_key, per_camera=2)
    write_sitting(w, "c1", "s1", [{"lot": 1, "attempt": "att-c1-1", "started": True, "finished": True,
                                    "complete_at_edge": True, "synced": True},
                                   {"lot": 2, "attempt": "att-c1-2", "started": True, "finished": True}],
                  absent=1, tickets={1: "T-0001", 2: "T-0002"})

    report = index_all(app)
    assert sorted(report.centres) == ["c1", "c2"] and sorted(report.finished) == ["c1", "c2"]
    assert len(report.attempts) == 3 and report.problems == 0
    assert report.fetched == 5  # three manifests, one sitting.json, one lots.json: no media read
    counts = _counts(app)
    # Per attempt: 4 segments, 2 question files, a face-login frame and the manifest itself.
    assert counts == {"attempts": 3, "objects": 3 * (4 + 2 + 1 + 1), "centres": 2}
    with app.app_context():
        attempt = db.session.scalar(select(Attempt).where(Attempt.manifest_key == a1.key))
        assert attempt.prefix == "c1/s1/lot-001" and attempt.lot == 1 and attempt.centre_id == "c1"
        assert attempt.sitting_row.sitting == "s1" and attempt.sitting_row.expected == 3
        assert attempt.sitting_row.absent == 1 and len(attempt.sitting_row.lots) == 2
        assert {o.kind for o in attempt.objects} == {"segment", "question", "face_frame", "manifest"}
        manifest_row = next(o for o in attempt.objects if o.kind == "manifest")
        assert manifest_row.key == a1.key and manifest_row.expected_sha256 == attempt.manifest_sha256
        tickets = {t.lot: t.ticket_no for t in db.session.scalars(select(LotTicket))}
        assert tickets == {1: "T-0001", 2: "T-0002"}
        unassigned = db.session.scalar(select(Attempt).where(Attempt.centre_id == "c2"))
        assert unassigned.prefix == "c2/s9/unassigned-att-c2-1" and unassigned.lot is None
        assert db.session.get(Centre, "c1").last_manifest_at is not None
        assert all(c.start_after == "" and c.passes == 1 for c in db.session.scalars(select(IndexCursor)))

    again = index_all(app)
    assert again.fetched == 0 and again.attempts == [] and _counts(app) == counts


def test_a_changed_manifest_is_indexed_again(app, central, station_key):
    written = write_attempt(central.writer, "c1", "s1", 4, "att-1", station_key, per_camera=2)
    index_all(app)
    document = json.loads(central.writer.read(written.key))
    document["end_reason"] = "ended_early"
    document["objects"] = document["objects"][:3]
    central.writer.put(written.key, json.dumps(document).encode())
    report = index_all(app)
    assert report.fetched == 1 and len(report.attempts) == 1
    with app.app_context():
        attempt = db.session.scalar(select(Attempt))
        assert attempt.end_reason == "ended_early"
        assert sum(1 for o in attempt.objects if o.kind == "segment") == 3


def test_a_pass_that_stops_resumes_after_its_cursor(app, central, station_key):
    for lot in range(1, 5):
        write_attempt(central.writer, "c1", "s1", lot, f"att-{lot}", station_key, per_camera=1, with_media=False)
    # Each attempt is two keys (a segment per camera, ... ) plus its manifest: stop part-way through.
    first = index_all(app, stop_after=7)
    with app.app_context():
        cursor = db.session.get(IndexCursor, "c1")
        assert cursor.start_after and cursor.passes == 0 and cursor.lease_owner == ""
        done_before = db.session.scalar(select(func.count()).select_from(Attempt))
    assert 0 < done_before < 4 and first.finished == []
    rest = index_all(app)
    assert rest.finished == ["c1"] and rest.fetched == 4 - done_before  # nothing listed before the cursor again
    assert _counts(app)["attempts"] == 4


def test_two_indexers_at_once_share_the_work_and_index_everything_once(app, central, station_key):
    for centre in ("c1", "c2", "c3", "c4"):
        for lot in range(1, 4):
            write_attempt(central.writer, centre, "s1", lot, f"{centre}-{lot}", station_key, per_camera=1,
                          with_media=False)
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def run():
        try:
            barrier.wait(timeout=30)
            reports.append(index_all(app))
        except Exception as exc:  # reported below, with the other thread's result
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    indexed = [pk for r in reports for pk in r.attempts]
    assert len(indexed) == 12 and len(set(indexed)) == 12  # no attempt indexed by both
    finished = sorted(c for r in reports for c in r.finished)
    busy = sorted(c for r in reports for c in r.busy)
    assert sorted(set(finished)) == ["c1", "c2", "c3", "c4"] and set(busy) <= set(finished)
    assert _counts(app)["attempts"] == 12
    again = index_all(app)
    assert again.attempts == [] and again.busy == []  # every lease was handed back


@pytest.mark.parametrize("central", ["directory", "s3"], indirect=True)
def test_refused_manifests_are_problems_with_their_keys_and_the_rest_is_indexed(app, central, station_key):
    w = central.writer
    good = write_attempt(w, "c1", "s1", 1, "good-1", station_key, per_camera=1)
    truncated = write_attempt(w, "c1", "s1", 2, "trunc-2", station_key, per_camera=1)
    w.put(truncated.key, w.read(truncated.key)[:-40])
    malformed_key = "c1/s1/lot-003/manifest.json"
    w.put(malformed_key, json.dumps({"format": wire.ATTEMPT_FORMAT, "centre": "c1", "sitting": "s1",
                                     "attempt": "bad-3", "lot": "three"}).encode())
    foreign_key = "c1/s1/lot-004/manifest.json"
    w.put(foreign_key, json.dumps({"format": "someone-else/2", "hello": "world"}).encode())
    climbing = write_attempt(w, "c1", "s1", 5, "climb-5", station_key, per_camera=1)
    document = json.loads(w.read(climbing.key))
    document["objects"][0]["key"] = "c1/s1/lot-005/segments/../../lot-001/segments/main_00000.mkv"
    w.put(climbing.key, json.dumps(document).encode())
    elsewhere = write_attempt(w, "c1", "s1", 6, "else-6", station_key, per_camera=1)
    document = json.loads(w.read(elsewhere.key))
    document["objects"][0]["key"] = "c2/s1/lot-001/segments/main_00000.mkv"
    w.put(elsewhere.key, json.dumps(document).encode())
    after = write_attempt(w, "c1", "s2", 7, "good-7", station_key, per_camera=1)  # listed after every bad one
    w.put("c1/s1/sitting.json", b"\xff\xfe not utf-8")

    report = index_all(app)
    assert report.finished == ["c1"]
    with app.app_context():
        found = {(p.kind, p.key): p.message for p in db.session.scalars(select(Problem))}
        indexed = set(db.session.scalars(select(Attempt.manifest_key)))
    assert indexed == {good.key, after.key}
    assert (ProblemKind.TRUNCATED_MANIFEST, truncated.key) in found
    assert (ProblemKind.MALFORMED_MANIFEST, malformed_key) in found and "lot" in found[
        (ProblemKind.MALFORMED_MANIFEST, malformed_key)]
    assert (ProblemKind.FOREIGN_MANIFEST, foreign_key) in found
    assert (ProblemKind.KEY_OUTSIDE_PREFIX, climbing.key) in found
    assert (ProblemKind.KEY_OUTSIDE_PREFIX, elsewhere.key) in found
    assert (ProblemKind.MALFORMED_MANIFEST, "c1/s1/sitting.json") in found
    assert len(found) == 6

    # Fixed at the edge: the problem is resolved and the attempt indexed.
    central.writer.put(truncated.key, wire.dump(truncated.manifest))
    index_all(app)
    with app.app_context():
        problem = db.session.scalar(select(Problem).where(Problem.key == truncated.key))
        assert problem.resolved_at is not None
        assert db.session.scalar(select(Attempt).where(Attempt.manifest_key == truncated.key)) is not None


def test_an_attempt_before_its_sitting_manifest_gets_the_sitting_later(app, central, station_key):
    write_attempt(central.writer, "c1", "s1", 1, "a-1", station_key, per_camera=1, with_media=False)
    index_all(app)
    write_sitting(central.writer, "c1", "s1", [{"lot": 1, "attempt": "a-1", "finished": True}], absent=2)
    index_all(app)
    with app.app_context():
        (sitting,) = db.session.scalars(select(Sitting)).all()
        assert sitting.absent == 2 and sitting.expected == 3 and sitting.name == "Sitting s1"
