"""The candidate import's RQ job: descriptors of the uploaded photos (``services/candidate_import.py``); queued by ``work_queue.enqueue_import_analysis``."""
from __future__ import annotations

import logging

from edge_server.jobs.context import app_context
from edge_server.models import CandidateImport, ImportStatus
from edge_server.services import candidate_import

logger = logging.getLogger(__name__)

def analyse_import(import_id: str) -> dict:
    """Safe to run twice: rows already analysed are skipped."""
    with app_context() as (_app, db, settings):
        imp = db.session.get(CandidateImport, import_id)
        if imp is None or imp.status != ImportStatus.ANALYSING:
            return {"import": import_id, "skipped": True}
        candidate_import.analyse(db.session, imp, settings.data_dir)
        logger.info("import %s: %d photos analysed", import_id, imp.done)
        return candidate_import.summary(imp)
