"""A sitting's two documents in central storage: ``sitting.json`` and ``lots.json`` (idempotent).

``<centre>/<sitting>/sitting.json`` (``central.SittingManifest``): the sitting's timing, how many
candidates this centre expected and how many never opened an attempt (counted, never named), and per
lot how far it got (started, finished, ended early and why, complete at the edge, synced).
``<centre>/<sitting>/lots.json`` (``central.LotMap``): lot -> ticket number, which only the regional
admin's results use; ``sitting.json`` holds no name, ticket number or ID number.

They are written after each attempt of the sitting syncs (``jobs/sync.py``) and by the job
:func:`sync_sitting`, which the daemon queues when the sitting's lot deadline passes (every lot is
drawn then). Unchanged content is not written again (``jobs/documents.py``). An attempt without a
lot yet is not listed (its lot is drawn at the latest at the deadline, and the documents follow).
"""
from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge_server.jobs import manifests
from edge_server.jobs.context import app_context
from edge_server.jobs.documents import write_document
from edge_server.layout import lots_key, sitting_manifest_key
from edge_server.models import Attempt, Candidate, Sitting, SyncStatus
from edge_server.storage import CentralStorage, open_storage

logger = logging.getLogger(__name__)


def write_sitting_documents(session: Session, storage: CentralStorage, sitting: Sitting) -> dict[str, str]:
    """Build and store the sitting's manifest and lot map; their SHA-256 by key. The caller commits."""
    attempts = session.scalars(select(Attempt).where(Attempt.sitting_id == sitting.id).order_by(Attempt.lot)).all()
    expected = session.scalar(select(func.count()).select_from(Candidate)
                              .where(Candidate.sitting_id == sitting.id, Candidate.centre_id == sitting.centre_id)) or 0
    opened = {a.candidate_id for a in attempts}
    lots = [manifests.lot_state(a, complete_at_edge=a.upload_complete_at is not None,
                                synced=a.sync_status == SyncStatus.SYNCED)
            for a in attempts if a.lot is not None]
    centre, sitting_id = sitting.centre_id, sitting.id
    written = {
        sitting_manifest_key(centre, sitting_id): write_document(
            session, storage, sitting_manifest_key(centre, sitting_id),
            lambda at: manifests.sitting_manifest(sitting, expected=expected, absent=max(0, expected - len(opened)),
                                                  lots=lots, written_at=at)),
        lots_key(centre, sitting_id): write_document(
            session, storage, lots_key(centre, sitting_id),
            lambda at: manifests.lot_map(sitting, [(a.lot, a.candidate) for a in attempts if a.lot is not None])),
    }
    logger.info("sitting %s: %d lots of %d expected written to central storage", sitting_id, len(lots), expected)
    return written


def sync_sitting(sitting_id: str) -> dict[str, str]:
    """The RQ job: write the sitting's documents now; safe to run twice (unchanged: nothing rewritten)."""
    with app_context() as (app, db, settings):
        sitting = db.session.get(Sitting, sitting_id)
        if sitting is None:
            raise LookupError(f"sitting {sitting_id} does not exist")
        written = write_sitting_documents(db.session, open_storage(settings.storage), sitting)
        db.session.commit()
        return written
