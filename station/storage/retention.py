"""Retention of segment files on the station.

A segment file is deleted only after the edge has verified it (the journal says when) and only
once ``[retention] keep_hours`` have passed since then; an unverified segment is never deleted,
however old. The journal row stays, with ``deleted_at``: it is a link of the signed chain.

``due`` is the policy (pure); ``sweep`` applies it to the journal and the disk. The uploader's
thread calls ``sweep`` now and then.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from station.storage.journal import Journal, JournalSegment

logger = logging.getLogger(__name__)


def due(segments: Iterable[JournalSegment], now: float, keep_seconds: float) -> list[JournalSegment]:
    """The segments whose files may be deleted at ``now``: verified at least ``keep_seconds`` ago."""
    return [s for s in segments
            if s.status == "verified" and s.verified_at is not None and s.deleted_at is None
            and now - s.verified_at >= keep_seconds]


def sweep(journal: Journal, now: float, keep_seconds: float) -> list[str]:
    """Delete the files that are due; returns their names. A file already gone counts as deleted."""
    deleted = []
    for seg in due(journal.stored(), now, keep_seconds):
        try:
            seg.path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("retention: cannot delete %s: %s", seg.path, exc)
            continue
        journal.mark_deleted(seg.name, now)
        deleted.append(seg.name)
    if deleted:
        logger.info("retention: deleted %d verified segment files (kept %.0f h)", len(deleted), keep_seconds / 3600)
    return deleted
