"""What the sync writes to central storage, as the regional server reads it: the attempt manifest
(flags, station, start, per-question MP4s with size and offset), written last; the progress on the
staff attempt page; the sitting's ``sitting.json`` and ``lots.json``.

Real segments (H.264 + AAC in Matroska, 1 s each, made once per module with ffmpeg), a real RQ
worker on the session's Redis, directory storage, both databases.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from edge_server.daemon.scheduler import Scheduler
from edge_server.extensions import db
from edge_server.models import Attempt, Segment, SegmentStatus, Sitting, StaffRole, StaffUser, SyncStatus, utcnow
from edge_server.services import attempts as attempt_service
from edge_server.services.staff import create_user
from edge_server.work_queue import enqueue_sitting_sync, enqueue_sync
from examkiosk_wire import central
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.edge_server.jobs.test_sync import SyncEdge, read_directory

pytestmark = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                reason="ffmpeg/ffprobe not installed")

CENTRE = "c1"
PASSWORD = "correct horse battery"
NAMES = ("王芳", "李娜", "刘洋")
TICKETS = ("20241001", "20241002", "20241003")
ID_NUMBERS = ("110101199003070011", "110101199003070022", "110101199003070033")
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture(scope="module")
def segment_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of 160x120 H.264 at 10 fps and AAC, in Matroska, as a station's segment."""
    path = tmp_path_factory.mktemp("segment") / "seg.mkv"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "10", "-c:a", "aac", "-ac", "1", "-f", "matroska", str(path)],
                   check=True, timeout=60)
    return path


# (camera, seq, question, start in seconds from the sitting's start)
LAYOUT = [("main", 0, None, -1.0), ("main", 1, 1, 0.0), ("main", 2, 1, 1.0), ("second", 0, 1, 0.0)]


def add_attempt(edge: SyncEdge, sitting_id: str, n: int, *, lot: int | None) -> str:
    """Candidate ``n`` of the sitting opens an attempt at a station of its own."""
    with edge.app.app_context():
        sitting = db.session.get(Sitting, sitting_id)
        station, _ = make_station(db.session, CENTRE)
        candidate = make_candidate(db.session, sitting, name=NAMES[n], ticket_no=TICKETS[n], id_number=ID_NUMBERS[n])
        attempt_id = make_attempt(db.session, candidate, station, lot=lot).id
        db.session.commit()
        return attempt_id


def record(edge: SyncEdge, attempt_id: str, segment: Path, *, end_reason: str = "time_up",
           layout: list = LAYOUT) -> str:
    """The attempt passes face login, records ``layout`` (every segment verified on the edge) and finishes."""
    with edge.app.app_context():
        attempt = db.session.get(Attempt, attempt_id)
        t0 = attempt.sitting.starts_at.timestamp()
        digest = hashlib.sha256(segment.read_bytes()).hexdigest()
        names = []
        for camera, seq, question, start in layout:
            name = f"{attempt.id}_{camera}_{seq:05d}.mkv"
            path = edge.settings.recordings_dir / attempt.id / name
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(segment, path)
            db.session.add(Segment(
                attempt_id=attempt.id, station_id=attempt.station_id, name=name, camera=camera, seq=seq,
                question=question, started_at=t0 + start, ended_at=t0 + start + 1.0, length=path.stat().st_size,
                offset=path.stat().st_size, sha256_declared=digest, sha256_actual=digest,
                status=SegmentStatus.VERIFIED, verified_at=utcnow()))
            names.append(name)
        attempt.face_verified = "face"
        attempt.finished_at, attempt.end_reason = utcnow(), end_reason
        attempt.expected_segments, attempt.upload_complete_at = names, utcnow()
        db.session.commit()
        return attempt_id


def new_sitting(edge: SyncEdge) -> tuple[str, float]:
    with edge.app.app_context():
        sitting = make_sitting(db.session, CENTRE, starts_in=-900, question_seconds=90)
        db.session.commit()
        return sitting.id, sitting.starts_at.timestamp()


def log_flags(edge: SyncEdge, attempt_id: str, t0: float) -> None:
    """A flag that ended, one reported twice and never ended, and one whose payload names no kind."""
    events = [("flag_started", {"flag": "focus_lost", "started_at": t0 + 0.5, "detail": None, "thumbnail_jpeg": "AAAA"}),
              ("flag_started", {"flag": "face_mismatch", "started_at": t0 + 1.5, "detail": {"distance": 0.91}}),
              ("flag_ended", {"flag": "focus_lost", "started_at": t0 + 0.5, "ended_at": t0 + 1.2}),
              ("flag_started", {"flag": "face_mismatch", "started_at": t0 + 1.5, "detail": {"distance": 0.91}}),
              ("flag_started", {"flag": 3, "started_at": "soon"})]
    with edge.app.app_context():
        station = db.session.get(Attempt, attempt_id).station_id
        for kind, payload in events:
            attempt_service.log_event(db.session, kind=kind, station_id=station, attempt_id=attempt_id,
                                      payload=payload)
        db.session.commit()


def sync(edge: SyncEdge, attempt_id: str) -> str:
    enqueue_sync(edge.settings, attempt_id)
    edge.run_worker()
    return edge.job(attempt_id).get_status()


def prefix_of(edge: SyncEdge, attempt_id: str) -> str:
    attempt = edge.attempt(attempt_id)
    return f"{CENTRE}/{attempt.sitting_id}/lot-{attempt.lot:03d}"


def ffprobe_format(path: Path) -> str:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=format_name", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def page_text(edge: SyncEdge, attempt_id: str) -> str:
    """The staff attempt page as a proctor of the centre gets it, without tags, spaces collapsed."""
    with edge.app.app_context():
        if db.session.scalar(select(StaffUser).where(StaffUser.username == "proctor")) is None:
            create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, CENTRE)
            db.session.commit()
    client = edge.app.test_client()
    token = _CSRF.search(client.get("/staff/login").get_data(as_text=True)).group(1)
    client.post("/staff/login", data={"username": "proctor", "password": PASSWORD, "csrf_token": token})
    response = client.get(f"/staff/attempts/{attempt_id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    sync_part = re.search(r'<p data-field="sync".*?</p>', html, re.S).group(0)
    return " ".join(re.sub(r"<[^>]+>", " ", sync_part).split())


# --- the attempt manifest -------------------------------------------------------------------------

def test_the_manifest_is_what_the_region_parses_with_flags_station_and_question_offsets(edge: SyncEdge,
                                                                                       segment_file: Path):
    sitting_id, t0 = new_sitting(edge)
    attempt_id = record(edge, add_attempt(edge, sitting_id, 0, lot=7), segment_file, end_reason="too_many_interruptions")
    log_flags(edge, attempt_id, t0)

    assert sync(edge, attempt_id) == "finished", edge.job(attempt_id).latest_result()

    read = read_directory(edge.settings.storage.directory)
    prefix = prefix_of(edge, attempt_id)
    raw = read(f"{prefix}/manifest.json")
    manifest = central.parse_attempt_manifest(f"{prefix}/manifest.json", raw)
    attempt = edge.attempt(attempt_id)
    assert (manifest.attempt, manifest.lot, manifest.station) == (attempt_id, 7, attempt.station_id)
    assert manifest.started_at == pytest.approx(t0) and manifest.written_at
    assert manifest.end_reason == "too_many_interruptions"
    assert [(f.kind, f.started_at, f.ended_at) for f in manifest.flags] == [
        ("focus_lost", t0 + 0.5, t0 + 1.2), ("face_mismatch", t0 + 1.5, None),
        ("ended_early", attempt.finished_at.timestamp(), None)]
    assert manifest.flags[1].detail == {"distance": 0.91} and manifest.flags[2].reason == "too_many_interruptions"
    assert "thumbnail_jpeg" not in raw.decode()

    # One MP4 per camera and question, with its size and the server time of its first frame.
    assert [(q.camera, q.question, Path(q.key).name) for q in manifest.questions] == [
        ("main", None, "main_waiting.mp4"), ("main", 1, "main_q1.mp4"), ("second", 1, "second_q1.mp4")]
    starts = {(camera, question): t0 + start for camera, seq, question, start in reversed(LAYOUT)}
    for question in manifest.questions:
        stored = read(question.key)
        assert stored is not None and question.size == len(stored)
        assert hashlib.sha256(stored).hexdigest() == question.sha256
        assert question.offset == pytest.approx(starts[(question.camera, question.question)])
        assert question.complete and question.segments
    main_q1 = manifest.questions[1]
    assert "mp4" in ffprobe_format(edge.settings.storage.directory / main_q1.key)
    assert main_q1.segments == [f"{attempt_id}_main_00001.mkv", f"{attempt_id}_main_00002.mkv"]
    # The player puts the face_mismatch flag 1.5 s into question 1.
    assert manifest.flags[1].started_at - main_q1.offset == pytest.approx(1.5)
    for key, sha, size in manifest.keys():
        stored = read(key)
        assert stored is not None and hashlib.sha256(stored).hexdigest() == sha and size in (None, len(stored))
    text = raw.decode()
    assert not any(secret in text for secret in (NAMES[0], TICKETS[0], ID_NUMBERS[0]))

    # Progress: every object and byte, the manifest included; the page shows it.
    objects = len(manifest.objects) + len(manifest.questions) + 1
    size = sum(o.size for o in manifest.objects) + sum(q.size for q in manifest.questions) + len(raw)
    assert (attempt.sync_objects_done, attempt.sync_objects_total) == (objects, objects)
    assert (attempt.sync_bytes_done, attempt.sync_bytes_total) == (size, size)
    text = page_text(edge, attempt_id)
    assert f"同步 Sync: {objects}/{objects} objects, {size / 1e6:.1f}/{size / 1e6:.1f} MB" in text
    assert "synced to central storage" in text

    # Run again: the same manifest bytes (its written_at too), nothing rewritten.
    assert sync(edge, attempt_id) == "finished"
    assert read(f"{prefix}/manifest.json") == raw


def test_the_manifest_is_written_last_and_the_page_shows_how_far_a_failed_sync_got(edge: SyncEdge,
                                                                                  segment_file: Path):
    sitting_id, _ = new_sitting(edge)
    attempt_id = record(edge, add_attempt(edge, sitting_id, 0, lot=3), segment_file)
    root = edge.settings.storage.directory
    prefix = prefix_of(edge, attempt_id)
    blocker = root / prefix / "questions"  # a file where the question files' folder should be
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder\n")

    assert sync(edge, attempt_id) == "scheduled"  # failed; RQ retries it later

    attempt = edge.attempt(attempt_id)
    assert attempt.sync_status == SyncStatus.FAILED and "questions" in attempt.sync_error
    segments = sorted((root / prefix / "segments").iterdir())
    assert len(segments) == len(LAYOUT), "the segments went first"
    assert not (root / prefix / "manifest.json").exists(), "no commit marker for an incomplete copy"
    total = len(LAYOUT) + 3 + 1  # segments, three question files, the manifest
    assert (attempt.sync_objects_done, attempt.sync_objects_total) == (len(LAYOUT), total)
    assert attempt.sync_bytes_done == sum(p.stat().st_size for p in segments) < attempt.sync_bytes_total
    text = page_text(edge, attempt_id)
    assert f"同步 Sync: {len(LAYOUT)}/{total} objects" in text and "failed, retried automatically" in text

    blocker.unlink()
    edge.queue.scheduled_job_registry.requeue(edge.job(attempt_id))
    edge.run_worker()
    attempt = edge.attempt(attempt_id)
    assert attempt.sync_status == SyncStatus.SYNCED
    assert (attempt.sync_objects_done, attempt.sync_bytes_done) == (total, attempt.sync_bytes_total)
    assert (root / prefix / "manifest.json").exists()
    assert f"同步 Sync: {total}/{total} objects" in page_text(edge, attempt_id)


# --- the sitting's documents ----------------------------------------------------------------------

def read_sitting(edge: SyncEdge, sitting_id: str) -> tuple[bytes, central.SittingManifest, central.LotMap]:
    root = edge.settings.storage.directory
    key, lots = f"{CENTRE}/{sitting_id}/sitting.json", f"{CENTRE}/{sitting_id}/lots.json"
    raw = (root / key).read_bytes()
    return raw, central.parse_sitting_manifest(key, raw), central.parse_lot_map(lots, (root / lots).read_bytes())


def test_the_sitting_manifest_counts_lots_and_absentees_without_names_and_follows_later_syncs(edge: SyncEdge,
                                                                                            segment_file: Path):
    sitting_id, t0 = new_sitting(edge)
    first = record(edge, add_attempt(edge, sitting_id, 0, lot=7), segment_file, end_reason="ended_by_candidate")
    second = add_attempt(edge, sitting_id, 1, lot=8)  # opened, face login not passed yet
    with edge.app.app_context():  # the third candidate never came
        make_candidate(db.session, db.session.get(Sitting, sitting_id), name=NAMES[2], ticket_no=TICKETS[2],
                       id_number=ID_NUMBERS[2])
        db.session.commit()

    assert sync(edge, first) == "finished"

    raw, manifest, lots = read_sitting(edge, sitting_id)
    assert (manifest.centre, manifest.sitting, manifest.kind, manifest.timing_mode) == (
        CENTRE, sitting_id, "formal", "per_question")
    assert manifest.starts_at == pytest.approx(t0) and manifest.question_seconds == [90, 90]
    assert manifest.ends_at == pytest.approx(t0 + 180)
    assert (manifest.expected, manifest.absent) == (3, 1)
    assert [(s.lot, s.attempt, s.started, s.finished, s.ended_early, s.complete_at_edge, s.synced)
            for s in manifest.lots] == [(7, first, True, True, False, True, True),
                                        (8, second, False, False, False, False, False)]
    assert manifest.lots[0].end_reason == "ended_by_candidate"
    text = raw.decode()
    for secret in (*NAMES, *TICKETS, *ID_NUMBERS):
        assert secret not in text, f"sitting.json leaks {secret!r}"
    assert lots.lots == {"7": TICKETS[0], "8": TICKETS[1]}, "lot -> ticket number for the regional admin"

    # The job queued at the lot deadline: unchanged content, the same bytes, not even rewritten.
    path = edge.settings.storage.directory / CENTRE / sitting_id / "sitting.json"
    mtime = path.stat().st_mtime_ns
    enqueue_sitting_sync(edge.settings, sitting_id)
    edge.run_worker()
    assert path.read_bytes() == raw and path.stat().st_mtime_ns == mtime

    # The second candidate records and ends early; once that syncs, the sitting's manifest says so.
    record(edge, second, segment_file, end_reason="too_many_interruptions", layout=LAYOUT[1:2])
    assert sync(edge, second) == "finished"
    again, manifest, _ = read_sitting(edge, sitting_id)
    assert again != raw and manifest.written_at > json.loads(raw)["written_at"]
    assert [(s.lot, s.started, s.finished, s.ended_early, s.end_reason, s.synced) for s in manifest.lots] == [
        (7, True, True, False, "ended_by_candidate", True), (8, True, True, True, "too_many_interruptions", True)]
    assert (manifest.expected, manifest.absent) == (3, 1)


def test_the_daemon_queues_the_sitting_documents_once_after_the_lot_deadline(edge: SyncEdge):
    with edge.app.app_context():
        past = make_sitting(db.session, CENTRE, starts_in=-900)
        make_sitting(db.session, CENTRE, starts_in=3600)  # its deadline is still ahead
        old = make_sitting(db.session, CENTRE, starts_in=-3 * 24 * 3600)  # long done: written when it was due
        db.session.commit()
        past_id, old_id = past.id, old.id
    queued: list[str] = []
    scheduler = Scheduler(edge.settings, edge.app, enqueue=lambda s, a: None,
                          enqueue_sitting=lambda s, sitting: queued.append(sitting))
    now = utcnow()
    assert scheduler.run_once(now)["sittings"] == 1
    assert scheduler.run_once(now + timedelta(seconds=5))["sittings"] == 0
    assert queued == [past_id] and old_id not in queued

    # The job it queues writes both documents.
    enqueue_sitting_sync(edge.settings, past_id)
    edge.run_worker()
    _, manifest, lots = read_sitting(edge, past_id)
    assert (manifest.expected, manifest.absent, manifest.lots, lots.lots) == (0, 0, [], {})
