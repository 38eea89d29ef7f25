"""Retention of recordings on the edge.

A file on the edge (a verified segment under ``recordings/<attempt>/``, or a per-question file
under ``joined/<attempt>/``) is deleted only when central storage has confirmed its copy: the
attempt's sync job finished (``synced_at``) and, at the moment of deletion, the checksum read back
from central storage equals the file's. Then ``[retention] keep_hours`` must also have passed
since the sync. Unfinished uploads (``uploads/*.part``), unverified segments, files of an attempt
that is not synced (or whose sync is queued or running again) are never deleted, however old.

``due`` and ``confirmed`` are the policy (pure functions); ``edge_files`` and ``sweep`` do the
I/O. The edge daemon's scheduler calls ``sweep`` every ``[retention] sweep_seconds``.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.config import EdgeSettings
from edge_server.layout import JOINED_DIR, JOINED_SUFFIX, attempt_prefix, joined_dir, question_key, segment_key
from edge_server.models import Attempt, Segment, SegmentStatus, SyncStatus
from edge_server.storage import CentralStorage, StorageError, sha256_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeFile:
    path: Path
    key: str  # the object key of its copy in central storage
    sha256: str | None  # the checksum it was verified with; None: read it from the file
    verified: bool  # a segment whose SHA-256 matched, or a per-question file the edge made from such
    synced_at: datetime | None  # when the sync confirmed the attempt's copy; None: not (or not yet again)


def due(files: Iterable[EdgeFile], now: datetime, keep: timedelta) -> list[EdgeFile]:
    """The files retention may delete at ``now``, once central storage confirms their checksum."""
    return [f for f in files if f.verified and f.synced_at is not None and now - f.synced_at >= keep]


def confirmed(expected: str | None, read_back: str | None) -> bool:
    """Central storage confirms a file when the checksum it reads back is the file's."""
    return bool(expected) and read_back == expected


def edge_files(session: Session, settings: EdgeSettings, syncing: Callable[[str], bool] = lambda a: False
               ) -> list[EdgeFile]:
    """Every recording file on the edge, with what the policy needs to know of it.

    ``syncing(attempt_id)``: the attempt's sync job is queued or running, so its last
    confirmation no longer counts.
    """
    files: list[EdgeFile] = []
    roots = [settings.recordings_dir, settings.data_dir / JOINED_DIR]
    attempt_ids = sorted({p.name for root in roots if root.is_dir() for p in root.iterdir() if p.is_dir()})
    for attempt_id in attempt_ids:
        attempt = session.get(Attempt, attempt_id)
        if attempt is None:
            continue  # not ours to judge: never deleted
        synced_at = attempt.synced_at
        if attempt.sync_status != SyncStatus.SYNCED or syncing(attempt_id):
            synced_at = None
        prefix = attempt_prefix(attempt)
        rows = {s.name: s for s in session.scalars(select(Segment).where(Segment.attempt_id == attempt_id))}
        for path in sorted((settings.recordings_dir / attempt_id).glob("*")):
            row = rows.get(path.name)
            verified = row is not None and row.status == SegmentStatus.VERIFIED
            # A segment verified after the sync is not in that copy.
            in_copy = (verified and synced_at is not None and row.verified_at is not None
                       and row.verified_at <= synced_at)
            files.append(EdgeFile(path, segment_key(prefix, path.name), row.sha256_actual if row else None,
                                  verified, synced_at if in_copy else None))
        for path in sorted((joined_dir(settings.data_dir, attempt_id)).glob("*")):
            # MP4 now; Matroska joined by an older version is confirmed the same way. Never a ``.part``.
            if path.suffix in (JOINED_SUFFIX, ".mkv") and not path.name.startswith("."):
                files.append(EdgeFile(path, question_key(prefix, path.name), None, True, synced_at))
    return files


def sweep(session: Session, settings: EdgeSettings, storage: CentralStorage, now: datetime | None = None,
          syncing: Callable[[str], bool] = lambda a: False) -> dict[str, int]:
    """Delete what the policy and central storage allow; counts of deleted and unconfirmed files."""
    now = now or datetime.now(timezone.utc)
    deleted = unconfirmed = 0
    for f in due(edge_files(session, settings, syncing), now, timedelta(hours=settings.retention.keep_hours)):
        try:
            expected = f.sha256 or sha256_file(f.path)
            read_back = storage.checksum(f.key)
        except (OSError, StorageError) as exc:
            logger.warning("retention: keeping %s: cannot compare it with central storage: %s", f.path, exc)
            unconfirmed += 1
            continue
        if not confirmed(expected, read_back):
            logger.warning("retention: keeping %s: central storage %s", f.path,
                           "does not have it" if read_back is None else "holds other bytes")
            unconfirmed += 1
            continue
        f.path.unlink(missing_ok=True)
        deleted += 1
        with contextlib.suppress(OSError):  # the attempt's folder goes with its last file
            f.path.parent.rmdir()
    if deleted or unconfirmed:
        logger.info("retention: deleted %d files confirmed by central storage, kept %d unconfirmed",
                    deleted, unconfirmed)
    return {"deleted": deleted, "unconfirmed": unconfirmed}


def removed_by_retention(session: Session, settings: EdgeSettings, attempt: Attempt) -> bool:
    """A synced attempt of which a verified segment is no longer on the edge: nothing to sync again."""
    if attempt.sync_status != SyncStatus.SYNCED:
        return False
    names = session.scalars(select(Segment.name).where(Segment.attempt_id == attempt.id,
                                                       Segment.status == SegmentStatus.VERIFIED)).all()
    return any(not (settings.recordings_dir / attempt.id / name).exists() for name in names)
