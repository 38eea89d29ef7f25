"""Which audience one web instance serves (``[edge] serve``): stations, staff, or both.

A centre runs the app twice under gunicorn (systemd/examkiosk-edge-api.service for the stations,
examkiosk-edge-web.service for staff), so a flood of staff sign-ins, each an argon2 hash, or
a wall of live dashboards holding threads never delays a station's API call or upload. Each
instance answers what is not its audience's with a JSON 404 before Flask sees the request: no
session, no CSRF check, no database.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from examkiosk_wire.api import API_PREFIX

STATION_PREFIX = API_PREFIX
BOTH = ("/healthz",)


def serves(serve: str, path: str) -> bool:
    """Whether an instance set to ``serve`` ("all", "stations", "staff") answers ``path``."""
    if serve == "all" or path in BOTH:
        return True
    for_stations = path == STATION_PREFIX or path.startswith(STATION_PREFIX + "/")
    return for_stations if serve == "stations" else not for_stations


class AudienceGate:
    """WSGI middleware in front of the app: the paths of the other audience are a JSON 404."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], serve: str):
        self.wsgi_app, self.serve = wsgi_app, serve
        other = "staff pages" if serve == "stations" else "the station API"
        self._body = json.dumps({"error": f"not found ({other} is served by another instance)",
                                 "code": "not_found"}).encode()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if serves(self.serve, environ.get("PATH_INFO") or "/"):
            return self.wsgi_app(environ, start_response)
        start_response("404 NOT FOUND", [("Content-Type", "application/json"),
                                         ("Content-Length", str(len(self._body)))])
        return [self._body]
