"""tus 1.0 endpoints for recording segments (core + creation + checksum + termination)."""
from __future__ import annotations

import logging

from flask import Response, g, request, url_for

from edge_server.api.blueprint import bp
from edge_server.auth import public, settings, station
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.models import SegmentStatus
from edge_server.services import attempts as attempt_service
from edge_server.services import uploads as tus
from examkiosk_wire.api import API_PREFIX, TUS_VERSION

logger = logging.getLogger(__name__)


def _tus_headers(resp: Response) -> Response:
    resp.headers["Tus-Resumable"] = TUS_VERSION
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.after_request
def _add_tus_resumable(resp: Response) -> Response:
    if request.path.startswith(f"{API_PREFIX}/uploads"):
        resp.headers["Tus-Resumable"] = TUS_VERSION
    return resp


def _check_version() -> None:
    version = request.headers.get("Tus-Resumable")
    if version != TUS_VERSION:
        raise EdgeError(f"Tus-Resumable must be {TUS_VERSION}", code="tus_version", status=412)


@bp.route("/uploads/", methods=["OPTIONS"])
@public
def uploads_options():
    resp = Response(status=204)
    resp.headers["Tus-Version"] = TUS_VERSION
    resp.headers["Tus-Extension"] = tus.TUS_EXTENSIONS
    resp.headers["Tus-Max-Size"] = str(min(settings().max_upload_bytes, tus.MAX_COLUMN_INT))
    resp.headers["Tus-Checksum-Algorithm"] = ",".join(tus.CHECKSUM_ALGORITHMS)
    return _tus_headers(resp)


@bp.post("/uploads/")
@station
def create_upload():
    _check_version()
    cfg = settings()
    creation = tus.parse_creation(request.headers.get("Upload-Length"), request.headers.get("Upload-Metadata"),
                                  max_upload_bytes=cfg.max_upload_bytes)
    with tus.create_upload(db.session, g.station, creation, uploads_dir=cfg.uploads_dir) as segment:
        db.session.commit()
        upload_id, offset = segment.id, tus.current_offset(cfg.uploads_dir, segment)
    resp = Response(status=201)
    resp.headers["Location"] = url_for("api.upload_head", upload_id=upload_id)
    resp.headers["Upload-Offset"] = str(offset)
    return _tus_headers(resp)


@bp.route("/uploads/<upload_id>", methods=["HEAD"])
@station
def upload_head(upload_id: str):
    _check_version()
    uploads_dir = settings().uploads_dir
    with tus.locked_upload(db.session, g.station, upload_id, uploads_dir) as segment:
        resp = Response(status=200)
        resp.headers["Upload-Offset"] = str(tus.current_offset(uploads_dir, segment))
        resp.headers["Upload-Length"] = str(segment.length)
        resp.headers["Upload-Status"] = str(segment.status)
    return _tus_headers(resp)


@bp.route("/uploads/<upload_id>", methods=["PATCH"])
@station
def upload_patch(upload_id: str):
    _check_version()
    cfg = settings()
    if request.mimetype != "application/offset+octet-stream":
        raise EdgeError("Content-Type must be application/offset+octet-stream", code="bad_content_type", status=415)
    offset = tus.parse_offset(request.headers.get("Upload-Offset"))
    checksum = tus.parse_checksum(request.headers.get("Upload-Checksum"))
    if request.content_length is not None and request.content_length > cfg.max_chunk_bytes:
        raise tus.TooLarge(f"a chunk may carry at most {cfg.max_chunk_bytes} bytes; "
                           f"this one has {request.content_length}", code="chunk_too_large")
    # The body is read before the lock is taken: a slow sender holds up no one else.
    chunk = request.stream.read(cfg.max_chunk_bytes + 1)
    if len(chunk) > cfg.max_chunk_bytes:
        raise tus.TooLarge(f"a chunk may carry at most {cfg.max_chunk_bytes} bytes", code="chunk_too_large")
    with tus.locked_upload(db.session, g.station, upload_id, cfg.uploads_dir) as segment:
        try:
            tus.append_chunk(db.session, segment, offset=offset, checksum=checksum, chunk=chunk,
                             uploads_dir=cfg.uploads_dir, recordings_dir=cfg.recordings_dir)
        except tus.ChecksumMismatch:
            db.session.commit()  # keep the segment's corrupt status and the event
            raise
        new_offset = segment.offset
        if segment.status == SegmentStatus.VERIFIED:  # only a verified segment can complete the attempt
            attempt_service.queue_sync_if_complete(db.session, settings(), tus.attempt_of(db.session, segment))
        db.session.commit()
    resp = Response(status=204)
    resp.headers["Upload-Offset"] = str(new_offset)
    return _tus_headers(resp)


@bp.route("/uploads/<upload_id>", methods=["DELETE"])
@station
def upload_delete(upload_id: str):
    _check_version()
    uploads_dir = settings().uploads_dir
    with tus.locked_upload(db.session, g.station, upload_id, uploads_dir) as segment:
        tus.terminate(db.session, segment, uploads_dir)
        db.session.commit()
    return _tus_headers(Response(status=204))
