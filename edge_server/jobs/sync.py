"""Copy an attempt to central storage: segments, per-question MP4s, face-login frames, then its manifest.

The job (``sync_attempt``, RQ, safe to run twice) first joins the per-question files
(``jobs/media.py``), checks every verified segment against its verified SHA-256, and plans every
object with its size. Then it stores them one by one; the store confirms each (``edge_server.storage``).
The attempt's ``manifest.json`` (``examkiosk_wire.central.AttemptManifest``) goes **last**, only
after every object it lists is stored and confirmed: the manifest is the commit marker, so a reader
(the regional server) that finds it may expect every object in it. A run that fails part-way
writes no manifest. (A run after an earlier complete one may replace a question file by a newer
join, say once a late segment arrived: until its new manifest lands, the old one names a checksum
the store no longer holds, which the region's verification reports; segments are never changed.)

The manifest holds the station, the sitting's start (server time), the monitoring flags (from the
station's ``flag_started`` / ``flag_ended`` events, ``jobs/manifests.py``) and ``ended_early``,
every segment with its chain link, and each question file with its size and ``offset`` (server
time of its first frame), so a player puts a flag at ``flag.started_at - offset``. It never holds
the candidate's name, ticket number or ID number.

Progress (objects and bytes done / total, manifest included) is written to the attempt every few
objects for the staff attempt page. After the attempt is synced, the sitting's documents are
written again (``jobs/sitting_sync.py``).
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.jobs import manifests
from edge_server.jobs.context import app_context
from edge_server.jobs.documents import document_bytes
from edge_server.jobs.media import join_questions
from edge_server.jobs.sitting_sync import write_sitting_documents
from edge_server.layout import attempt_prefix, face_try_key, manifest_key, question_key, review_frame_key, segment_key
from edge_server.models import Attempt, Event, FaceTry, Review, Segment, SegmentStatus, Station, SyncStatus
from edge_server.retention import removed_by_retention
from edge_server.services import frames
from edge_server.services.messages import attempt_history
from edge_server.storage import CentralStorage, open_storage, sha256_file
from edge_server.work_queue import enqueue_sitting_sync
from examkiosk_wire import central

logger = logging.getLogger(__name__)

COMMIT_EVERY_OBJECTS = 5  # progress is committed after this many objects ...
COMMIT_EVERY_SECONDS = 2.0  # ... or when an object ends this long after the last commit


@dataclass(frozen=True)
class Upload:
    """One object to store: a file on the edge with its verified SHA-256."""

    key: str
    path: Path
    sha256: str
    size: int


class Progress:
    """Objects and bytes done / total of one run, on the attempt's row.

    The storage reports each increment of an object's bytes (``add_bytes``, in this thread); the
    row is committed when a few objects are done, or when some seconds passed since the last commit
    (so one large file shows its bytes moving), never per increment.
    """

    def __init__(self, session: Session, attempt: Attempt, objects: int, size: int):
        self.session, self.attempt = session, attempt
        self._objects, self._bytes, self._in_flight = 0, 0, 0
        self._committed_at, self._since_commit = time.monotonic(), 0
        attempt.sync_objects_done, attempt.sync_objects_total = 0, objects
        attempt.sync_bytes_done, attempt.sync_bytes_total = 0, size
        session.commit()

    def add_bytes(self, count: int) -> None:
        self._in_flight += count
        if time.monotonic() - self._committed_at >= COMMIT_EVERY_SECONDS:
            self.commit()

    def object_done(self, size: int) -> None:
        """One more object stored and confirmed: its size counts exactly, whatever increments came before."""
        self._objects += 1
        self._bytes += size
        self._in_flight = 0
        self._since_commit += 1
        if self._since_commit >= COMMIT_EVERY_OBJECTS or time.monotonic() - self._committed_at >= COMMIT_EVERY_SECONDS:
            self.commit()

    def commit(self) -> None:
        self.attempt.sync_objects_done = self._objects
        self.attempt.sync_bytes_done = min(self._bytes + self._in_flight, self.attempt.sync_bytes_total)
        self.session.commit()
        self._committed_at, self._since_commit = time.monotonic(), 0


def _segment_objects(attempt: Attempt, segments: list[Segment], recordings_dir: Path, prefix: str,
                     signers: dict[str, str | None]) -> tuple[list[central.SegmentObject], list[Upload]]:
    """Every verified segment, to be stored with the checksum it was verified with (the storage
    refuses a file that no longer matches it), and the public key of the station that signed it
    (``signers``: station id -> key; a moved attempt's chain holds two stations' links)."""
    objects, uploads = [], []
    for seg in segments:
        source = recordings_dir / attempt.id / seg.name
        if not seg.sha256_actual:
            raise RuntimeError(f"segment {seg.name} is verified but has no checksum")
        upload = Upload(segment_key(prefix, seg.name), source, seg.sha256_actual, source.stat().st_size)
        uploads.append(upload)
        objects.append(central.SegmentObject(
            key=upload.key, sha256=upload.sha256, size=upload.size, camera=seg.camera, seq=seg.seq,
            question=seg.question, started_at=seg.started_at, ended_at=seg.ended_at,
            chain=central.Chain(prev=seg.prev_hash, entry=seg.entry_hash, sig=seg.signature,
                                key=signers.get(seg.station_id))))
    return objects, uploads


def _question_objects(files: list[dict[str, Any]], prefix: str) -> tuple[list[central.QuestionObject], list[Upload]]:
    """The joined per-question MP4s, with their size and the server time of their first frame."""
    objects, uploads = [], []
    for joined in files:
        path = Path(joined["path"])
        upload = Upload(question_key(prefix, path.name), path, joined["sha256"], joined["size"])
        uploads.append(upload)
        objects.append(central.QuestionObject(
            key=upload.key, sha256=upload.sha256, size=upload.size, camera=joined["camera"],
            question=joined["question"], duration=joined["duration"], expected_duration=joined["expected"],
            segments=joined["segment_names"], complete=joined["complete"], offset=joined["offset"]))
    return objects, uploads


def _face_login(session: Session, data_dir: Path, attempt: Attempt, prefix: str
                ) -> tuple[central.FaceLogin, list[Upload]]:
    """The frames face login was decided on (every try, and the manual review's), for the reviewers.

    They belong to the attempt and go with it; a frame whose file is missing is listed without a key.
    """
    tries, reviews, uploads = [], [], []
    for number, face_try in enumerate(session.scalars(
            select(FaceTry).where(FaceTry.attempt_id == attempt.id).order_by(FaceTry.id)), start=1):
        entry: dict[str, Any] = {"try": number, "at": face_try.at.isoformat(), "distance": face_try.distance,
                                 "matched": face_try.matched, "sha256": face_try.frame_sha256, "key": None}
        path = frames.face_try_frame_path(data_dir, attempt.id, face_try.frame_sha256) if face_try.frame_sha256 else None
        if path is not None and path.is_file():
            entry["key"] = face_try_key(prefix, number)
            uploads.append(Upload(entry["key"], path, face_try.frame_sha256, path.stat().st_size))
        tries.append(central.FaceFrame.model_validate(entry))
    for review in session.scalars(select(Review).where(Review.attempt_id == attempt.id).order_by(Review.id)):
        entry = {"status": str(review.status), "reason": review.reason or "", "best_distance": review.best_distance,
                 "key": None, "sha256": None}
        path = frames.review_frame_path(data_dir, review.id)
        if path.is_file():
            entry["sha256"], entry["key"] = sha256_file(path), review_frame_key(prefix, review.id)
            uploads.append(Upload(entry["key"], path, entry["sha256"], path.stat().st_size))
        reviews.append(central.FaceFrame.model_validate(entry))
    return central.FaceLogin(tries=tries, reviews=reviews), uploads


def _put(storage: CentralStorage, upload: Upload, progress: Progress) -> None:
    storage.put_file(upload.key, upload.path, upload.sha256, on_progress=progress.add_bytes)
    progress.object_done(upload.size)


def _copy(db: Any, settings: Any, attempt: Attempt, media: dict[str, Any]) -> dict[str, Any]:
    """Plan, store every object, then the manifest; the attempt's progress as it goes."""
    storage = open_storage(settings.storage)
    prefix = attempt_prefix(attempt)
    segments = db.session.scalars(
        select(Segment).where(Segment.attempt_id == attempt.id, Segment.status == SegmentStatus.VERIFIED)
        .order_by(Segment.camera, Segment.seq)
    ).all()
    signers = dict(db.session.execute(select(Station.id, Station.public_key).where(
        Station.id.in_({seg.station_id for seg in segments}))).all())
    objects, uploads = _segment_objects(attempt, list(segments), settings.recordings_dir, prefix, signers)
    questions, question_uploads = _question_objects(media["files"], prefix)
    face_login, frame_uploads = _face_login(db.session, settings.data_dir, attempt, prefix)
    uploads += question_uploads + frame_uploads
    station = db.session.get(Station, attempt.station_id) if attempt.station_id else None
    events = db.session.scalars(select(Event).where(
        Event.attempt_id == attempt.id, Event.kind.in_([manifests.FLAG_STARTED, manifests.FLAG_ENDED]))
        .order_by(Event.id)).all()
    flags = manifests.attempt_flags(attempt, events)
    messages = attempt_history(db.session, attempt)  # help chat and broadcasts

    def build(written_at: str | None) -> central.AttemptManifest:
        return manifests.attempt_manifest(
            attempt, station=attempt.station_id, station_key=station.public_key if station else None,
            objects=objects, questions=questions, flags=flags, media_problems=media["problems"],
            messages=messages, face_login=face_login, written_at=written_at)

    key = manifest_key(prefix)
    data, _row = document_bytes(db.session, key, build)
    progress = Progress(db.session, attempt, len(uploads) + 1, sum(u.size for u in uploads) + len(data))
    try:
        for upload in uploads:
            _put(storage, upload, progress)
        # Last: every object it lists is stored and confirmed.
        manifest_sha = storage.put_bytes(key, data, on_progress=progress.add_bytes)
        progress.object_done(len(data))
    finally:
        with contextlib.suppress(Exception):  # how far it got, also when it failed
            progress.commit()
    return {"prefix": prefix, "objects": len(objects), "uploaded": len(uploads) + 1, "manifest_sha256": manifest_sha}


def _write_sitting(db: Any, settings: Any, attempt: Attempt) -> None:
    """The sitting's documents after this attempt; if they cannot be written now, a job of their own retries."""
    sitting_id = attempt.sitting_id
    try:
        write_sitting_documents(db.session, open_storage(settings.storage), attempt.sitting)
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        logger.warning("sitting %s: documents not written after attempt %s synced (%s): queued a job",
                       sitting_id, attempt.id, exc)
        try:
            enqueue_sitting_sync(settings, sitting_id)
        except Exception as queue_exc:  # Redis away too: the next attempt's sync or the deadline job writes them
            logger.warning("sitting %s: could not queue its documents either: %s", sitting_id, queue_exc)


def sync_attempt(attempt_id: str) -> dict:
    """Safe to run twice: objects already stored with the same checksum are skipped, an unchanged
    manifest is the same bytes; an attempt whose edge copy retention removed after the sync is left
    as central storage has it.
    """
    with app_context() as (app, db, settings):
        attempt = db.session.get(Attempt, attempt_id)
        if attempt is not None and removed_by_retention(db.session, settings, attempt):
            # Central storage confirmed this copy before retention removed the edge's: keep it as it is.
            logger.info("attempt %s is synced and no longer on the edge: nothing to copy again", attempt_id)
            return {"prefix": attempt_prefix(attempt), "objects": 0, "manifest_sha256": None}
    media = join_questions(attempt_id)
    with app_context() as (app, db, settings):
        attempt = db.session.get(Attempt, attempt_id)
        if attempt is None:
            raise LookupError(f"attempt {attempt_id} does not exist")
        attempt.sync_status = SyncStatus.QUEUED  # running: retention leaves it alone until it is synced again
        db.session.commit()
        try:
            result = _copy(db, settings, attempt, media)
        except Exception as exc:
            db.session.rollback()
            attempt = db.session.get(Attempt, attempt_id)
            attempt.sync_status = SyncStatus.FAILED
            attempt.sync_error = str(exc)
            db.session.commit()
            logger.warning("sync of attempt %s failed (will retry): %s", attempt_id, exc)
            raise
        attempt.sync_status = SyncStatus.SYNCED
        attempt.synced_at = datetime.now(timezone.utc)
        attempt.sync_error = ""
        db.session.commit()
        logger.info("attempt %s synced: %d objects under %s", attempt_id, result["uploaded"], result["prefix"])
        _write_sitting(db, settings, attempt)
        return result
