"""Serving a question file to the player, so that seeking anywhere in a long file is instant.

On S3 the browser is sent to a presigned URL (the object store answers its range requests
itself). From a directory the app answers ``Range: bytes=a-b`` with ``206 Partial Content`` and
reads only those bytes (``store.open_range``); ``If-None-Match`` gets ``304``.
"""
from __future__ import annotations

from flask import Response, abort, redirect, request
from werkzeug.http import parse_range_header

from region_server.errors import ObjectMissing, StoreError
from region_server.store import CentralStore

PRESIGN_SECONDS = 6 * 3600  # long enough for a reviewer's session with one file
MEDIA_TYPES = {"mp4": "video/mp4", "mkv": "video/x-matroska", "webm": "video/webm", "jpg": "image/jpeg"}


def media_type(key: str) -> str:
    return MEDIA_TYPES.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def serve(store: CentralStore, key: str) -> Response:
    """The object at ``key`` for a ``<video>``: a redirect to a presigned URL, or ranges from here."""
    url = store.presign(key, PRESIGN_SECONDS)
    if url is not None:
        response = redirect(url, code=302)
        response.headers["Cache-Control"] = "private, no-store"
        return response
    try:
        info = store.head(key)
    except StoreError:
        abort(502)
    if info is None:
        abort(404)
    etag = f'"{info.etag}"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "private, max-age=3600",
               "Last-Modified": info.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT")}
    if etag in request.headers.get("If-None-Match", ""):
        return Response(status=304, headers=headers)
    size, start, end, status = info.size, 0, info.size - 1, 200
    wanted = parse_range_header(request.headers.get("Range"))
    if wanted is not None and (request.headers.get("If-Range") in (None, etag)):
        bounds = wanted.range_for_length(size) if len(wanted.ranges) == 1 else None
        if bounds is None:
            return Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        start, end, status = bounds[0], bounds[1] - 1, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    try:
        body = store.open_range(key, start, end) if size else iter(())
    except ObjectMissing:
        abort(404)
    except StoreError:
        abort(502)
    return Response(body, status=status, mimetype=media_type(key), headers=headers, direct_passthrough=True)
