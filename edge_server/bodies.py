"""Request bodies at the edge of the program: JSON parsed strictly into the model a view declares."""
from __future__ import annotations

from typing import TypeVar

from flask import request

from edge_server.errors import EdgeError
from examkiosk_wire.bodies import Body, BodyError, parse_body

# The largest JSON body a station sends: a face frame (a JPEG of at most 2 MiB) in base64.
MAX_JSON_BYTES = 3 * 1024 * 1024

M = TypeVar("M", bound=Body)


def parse_json_body(model: type[M]) -> M:
    """The request's JSON body as ``model`` (strict); anything else is a 4xx ``{"error", "code"}``."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise EdgeError(f"the body may have at most {MAX_JSON_BYTES} bytes", code="too_large", status=413)
    try:
        return parse_body(model, request.get_data(cache=False), max_bytes=MAX_JSON_BYTES)
    except BodyError as exc:
        raise EdgeError(exc.message, code=exc.code, status=exc.status) from None
