"""tus 1.0 endpoints for recording segments (core + creation + checksum + termination)."""
from __future__ import annotations

import logging

from flask import Response, g, request, url_for

from edge_server.api import bp
from edge_server.api.helpers import settings, station_required
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.models import Attempt
from edge_server.services import attempts as attempt_service
from edge_server.services import uploads as tus

logger = logging.getLogger(__name__)


def _tus_headers(resp: Response) -> Response:
    resp.headers["Tus-Resumable"] = tus.TUS_VERSION
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.after_request
def _add_tus_resumable(resp: Response) -> Response:
    if request.path.startswith("/api/v1/uploads"):
        resp.headers["Tus-Resumable"] = tus.TUS_VERSION
    return resp


def _check_version() -> None:
    version = request.headers.get("Tus-Resumable")
    if version != tus.TUS_VERSION:
        raise EdgeError(f"Tus-Resumable must be {tus.TUS_VERSION}", code="tus_version", status=412)


@bp.route("/uploads/", methods=["OPTIONS"])
def uploads_options():
    resp = Response(status=204)
    resp.headers["Tus-Version"] = tus.TUS_VERSION
    resp.headers["Tus-Extension"] = tus.TUS_EXTENSIONS
    resp.headers["Tus-Max-Size"] = str(settings().max_upload_bytes)
    resp.headers["Tus-Checksum-Algorithm"] = ",".join(tus.CHECKSUM_ALGORITHMS)
    return _tus_headers(resp)


@bp.post("/uploads/")
@station_required
def create_upload():
    _check_version()
    cfg = settings()
    segment = tus.create_upload(
        db.session, g.station,
        length_header=request.headers.get("Upload-Length"),
        metadata_header=request.headers.get("Upload-Metadata"),
        max_upload_bytes=cfg.max_upload_bytes,
        uploads_dir=cfg.uploads_dir,
    )
    db.session.commit()
    resp = Response(status=201)
    resp.headers["Location"] = url_for("api.upload_head", upload_id=segment.id)
    resp.headers["Upload-Offset"] = str(tus.current_offset(cfg.uploads_dir, segment))
    return _tus_headers(resp)


@bp.route("/uploads/<upload_id>", methods=["HEAD"])
@station_required
def upload_head(upload_id: str):
    _check_version()
    segment = tus.get_upload(db.session, g.station, upload_id)
    resp = Response(status=200)
    resp.headers["Upload-Offset"] = str(tus.current_offset(settings().uploads_dir, segment))
    resp.headers["Upload-Length"] = str(segment.length)
    resp.headers["Upload-Status"] = str(segment.status)
    return _tus_headers(resp)


@bp.route("/uploads/<upload_id>", methods=["PATCH"])
@station_required
def upload_patch(upload_id: str):
    _check_version()
    cfg = settings()
    if request.mimetype != "application/offset+octet-stream":
        raise EdgeError("Content-Type must be application/offset+octet-stream", code="bad_content_type", status=415)
    if request.content_length is not None and request.content_length > cfg.max_chunk_bytes:
        raise tus.TooLarge(f"a chunk may carry at most {cfg.max_chunk_bytes} bytes; "
                           f"this one has {request.content_length}", code="chunk_too_large")
    segment = tus.get_upload(db.session, g.station, upload_id)
    chunk = request.stream.read(cfg.max_chunk_bytes + 1)
    if len(chunk) > cfg.max_chunk_bytes:
        raise tus.TooLarge(f"a chunk may carry at most {cfg.max_chunk_bytes} bytes", code="chunk_too_large")
    try:
        tus.append_chunk(
            db.session, segment,
            offset_header=request.headers.get("Upload-Offset"),
            checksum_header=request.headers.get("Upload-Checksum"),
            chunk=chunk, uploads_dir=cfg.uploads_dir, recordings_dir=cfg.recordings_dir,
        )
    except tus.ChecksumMismatch:
        db.session.commit()  # keep the segment's corrupt status and the event
        raise
    attempt = tus.attempt_of(db.session, segment)
    enqueue_sync_if_complete(attempt)
    db.session.commit()
    resp = Response(status=204)
    resp.headers["Upload-Offset"] = str(segment.offset)
    return _tus_headers(resp)


@bp.route("/uploads/<upload_id>", methods=["DELETE"])
@station_required
def upload_delete(upload_id: str):
    _check_version()
    segment = tus.get_upload(db.session, g.station, upload_id)
    tus.terminate(db.session, segment, settings().uploads_dir)
    db.session.commit()
    return _tus_headers(Response(status=204))


def enqueue_sync_if_complete(attempt: Attempt) -> None:
    """When the last expected segment is verified, queue the copy to central storage."""
    if attempt_service.mark_complete_if_done(db.session, attempt):
        from edge_server.jobs import enqueue_sync

        try:
            enqueue_sync(settings(), attempt.id)
            attempt.sync_status = "queued"
        except Exception as exc:  # Redis down: the daemon's sweep queues it later
            logger.warning("could not queue sync of attempt %s: %s", attempt.id, exc)
