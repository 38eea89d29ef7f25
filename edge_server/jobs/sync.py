"""Copy an attempt's verified segments and a manifest to central storage (idempotent)."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from edge_server.jobs.context import app_context
from edge_server.jobs.media import join_questions
from edge_server.layout import (
    MANIFEST_FORMAT,
    attempt_prefix,
    face_try_key,
    manifest_key,
    question_key,
    review_frame_key,
    segment_key,
)
from edge_server.models import Attempt, FaceTry, Review, Segment, SegmentStatus, Station, SyncStatus
from edge_server.retention import removed_by_retention
from edge_server.services import frames
from edge_server.services.attempts import COMPLETED_END_REASONS
from edge_server.services.messages import attempt_history
from edge_server.storage import open_storage, sha256_file

logger = logging.getLogger(__name__)


def build_manifest(attempt: Attempt, objects: list[dict], station_key: str | None = None) -> dict:
    early = attempt.end_reason not in COMPLETED_END_REASONS
    return {
        "format": MANIFEST_FORMAT,
        "centre": attempt.sitting.centre_id,
        "sitting": attempt.sitting_id,
        "kind": str(attempt.sitting.kind),
        "scoring": str(attempt.sitting.kind) == "formal",
        "lot": attempt.lot,
        "attempt": attempt.id,
        "finished_at": attempt.finished_at.isoformat() if attempt.finished_at else None,
        "end_reason": attempt.end_reason,
        "flags": [{"kind": "ended_early", "reason": attempt.end_reason}] if early else [],
        "station_public_key": station_key,
        "objects": objects,
    }


def _face_login_frames(session, data_dir: Path, storage, attempt: Attempt, prefix: str) -> dict:
    """The frames face login was decided on (every try, and the manual review's), for the reviewers.

    They belong to the attempt and go with it; a frame whose file is missing is listed without a key.
    """
    tries = []
    for number, face_try in enumerate(session.scalars(
            select(FaceTry).where(FaceTry.attempt_id == attempt.id).order_by(FaceTry.id)), start=1):
        entry = {"try": number, "at": face_try.at.isoformat(), "distance": face_try.distance,
                 "matched": face_try.matched, "sha256": face_try.frame_sha256, "key": None}
        path = frames.face_try_frame_path(data_dir, attempt.id, face_try.frame_sha256) if face_try.frame_sha256 else None
        if path is not None and path.is_file():
            entry["key"] = face_try_key(prefix, number)
            storage.put_file(entry["key"], path, face_try.frame_sha256)
        tries.append(entry)
    reviews = []
    for review in session.scalars(select(Review).where(Review.attempt_id == attempt.id).order_by(Review.id)):
        entry = {"status": str(review.status), "reason": review.reason or "", "best_distance": review.best_distance,
                 "key": None, "sha256": None}
        path = frames.review_frame_path(data_dir, review.id)
        if path.is_file():
            entry["sha256"] = sha256_file(path)
            entry["key"] = review_frame_key(prefix, review.id)
            storage.put_file(entry["key"], path, entry["sha256"])
        reviews.append(entry)
    return {"tries": tries, "reviews": reviews}


def sync_attempt(attempt_id: str) -> dict:
    """Safe to run twice: objects already stored with the same checksum are skipped; an attempt
    whose edge copy retention removed after the sync is left as central storage has it.

    First the per-question files are joined (without re-encoding) and checked; they go to central
    storage with the segments, and the manifest lists them and any media problem found.
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
        storage = open_storage(settings.storage)
        prefix = attempt_prefix(attempt)
        segments = db.session.scalars(
            select(Segment).where(Segment.attempt_id == attempt.id, Segment.status == SegmentStatus.VERIFIED)
            .order_by(Segment.camera, Segment.seq)
        ).all()
        objects = []
        try:
            for seg in segments:
                source = settings.recordings_dir / attempt.id / seg.name
                if sha256_file(source) != seg.sha256_actual:
                    raise RuntimeError(f"segment {seg.name} on the edge no longer matches its verified checksum")
                key = segment_key(prefix, seg.name)
                storage.put_file(key, source, seg.sha256_actual or "")
                objects.append({"key": key, "sha256": seg.sha256_actual, "size": seg.length, "camera": seg.camera,
                                "seq": seg.seq, "question": seg.question, "started_at": seg.started_at,
                                "ended_at": seg.ended_at, "chain": {"prev": seg.prev_hash, "entry": seg.entry_hash,
                                                                    "sig": seg.signature}})
            questions = []
            for joined in media["files"]:
                path = Path(joined["path"])
                key = question_key(prefix, path.name)
                storage.put_file(key, path, joined["sha256"])
                questions.append({"key": key, "sha256": joined["sha256"], "camera": joined["camera"],
                                  "question": joined["question"], "duration": joined["duration"],
                                  "expected_duration": joined["expected"], "segments": joined["segments"],
                                  "complete": joined["complete"]})
            station = db.session.get(Station, attempt.station_id) if attempt.station_id else None
            manifest = build_manifest(attempt, objects, station.public_key if station else None)
            manifest["questions"] = questions
            manifest["media_problems"] = media["problems"]
            manifest["messages"] = attempt_history(db.session, attempt)  # help chat and broadcasts
            manifest["face_login"] = _face_login_frames(db.session, settings.data_dir, storage, attempt, prefix)
            data = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True).encode()
            manifest_sha = storage.put_bytes(manifest_key(prefix), data)
        except Exception as exc:
            attempt.sync_status = SyncStatus.FAILED
            attempt.sync_error = str(exc)
            db.session.commit()
            logger.warning("sync of attempt %s failed (will retry): %s", attempt_id, exc)
            raise
        attempt.sync_status = SyncStatus.SYNCED
        attempt.synced_at = datetime.now(timezone.utc)
        attempt.sync_error = ""
        db.session.commit()
        logger.info("attempt %s synced: %d objects under %s", attempt_id, len(objects), prefix)
        return {"prefix": prefix, "objects": len(objects), "manifest_sha256": manifest_sha}
