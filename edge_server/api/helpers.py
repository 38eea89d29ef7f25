"""Small helpers shared by the API routes: auth, JSON bodies, time."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import wraps
from typing import Any, Callable

from flask import current_app, g, request

from edge_server.config import EdgeSettings
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.services import stations


def settings() -> EdgeSettings:
    return current_app.extensions["examkiosk.settings"]


def station_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.station = stations.authenticate(db.session, request.headers.get("Authorization"))
        return view(*args, **kwargs)

    return wrapper


def json_body(*required: str) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and request.content_length:
        raise EdgeError("the body is not valid JSON", code="bad_json")
    body = body or {}
    if not isinstance(body, dict):
        raise EdgeError("the body must be a JSON object", code="bad_json")
    missing = [k for k in required if k not in body]
    if missing:
        raise EdgeError(f"missing field(s): {', '.join(missing)}", code="missing_field")
    return body


def now() -> datetime:
    return datetime.now(timezone.utc)


def epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def server_time() -> float:
    return time.time()
