"""The candidate import's RQ job: descriptors of the uploaded photos (services/candidate_import.py)."""
from __future__ import annotations

import logging

from rq import Retry
from rq.job import Job

from edge_server.config import EdgeSettings
from edge_server.jobs import queue
from edge_server.jobs.context import app_context

logger = logging.getLogger(__name__)

IMPORT_RETRY = Retry(max=3, interval=[5, 30, 120])


def analyse_import(import_id: str) -> dict:
    """Safe to run twice: rows already analysed are skipped."""
    from edge_server.models import CandidateImport, ImportStatus
    from edge_server.services import candidate_import

    with app_context() as (_app, db, settings):
        imp = db.session.get(CandidateImport, import_id)
        if imp is None or imp.status != ImportStatus.ANALYSING:
            return {"import": import_id, "skipped": True}
        candidate_import.analyse(db.session, imp, settings.data_dir)
        logger.info("import %s: %d photos analysed", import_id, imp.done)
        return candidate_import.summary(imp)


def enqueue_import_analysis(settings: EdgeSettings, import_id: str) -> Job:
    return queue(settings).enqueue(analyse_import, import_id, job_id=f"import-{import_id}", retry=IMPORT_RETRY,
                                   job_timeout=3600, failure_ttl=7 * 24 * 3600)
