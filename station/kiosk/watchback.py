"""The kiosk's watch-back routes (回看): what to play and show, and the films themselves.

``GET /api/watchback`` prepares the current mock attempt's films on the station (the port remuxes
its segments) and answers the films' URLs, the chapters and the check's figures; a formal attempt
is refused (403 ``not_mock``), an attempt not over yet too (409 ``not_done``), and a recording
whose files retention deleted is 410 ``recording_deleted``: the page shows a message then, not a
broken player. ``GET /watchback/<camera>.mp4`` serves a prepared film with HTTP ranges (the
browser seeks with them), never cached by the browser. 完成 is the ``next_candidate`` action,
which also removes the films (``station.runtime.kiosk_port``).
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, send_file

from station.capture.audio import LEVEL_FLOOR_DB
from station.kiosk.port import KioskPort
from station.playback.errors import WatchbackUnavailable
from station.playback.view import Watchback

logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


def film_url(camera: str, token: str) -> str:
    return f"/watchback/{camera}.mp4?v={token}"


def dbfs(level: float) -> float:
    """A level of ``station.capture.audio.level`` (0..1) back on the dBFS scale it maps."""
    return round(LEVEL_FLOOR_DB * (1.0 - level), 1)


def watchback_json(shown: Watchback) -> dict[str, Any]:
    """What the page needs to play a watch-back and show its check."""
    fig = shown.figures
    return {
        "attempt": shown.attempt,
        "films": [{"camera": f.camera, "url": film_url(f.camera, shown.token), "seconds": f.seconds,
                   "offset": f.offset, "audio": f.audio, "missing": f.missing} for f in shown.films],
        "chapters": [{"question": c.question, "at": c.at, "seconds": c.seconds, "expected": c.expected}
                     for c in shown.chapters],
        "check": {
            "recorded_seconds": fig.recorded_seconds, "expected_seconds": fig.expected_seconds,
            "waiting_seconds": fig.waiting_seconds,
            "loudest_level": None if fig.loudest_level is None else round(fig.loudest_level, 3),
            "loudest_dbfs": None if fig.loudest_level is None else dbfs(fig.loudest_level),
            "verified": fig.verified, "expected_segments": fig.expected_segments,
            "segments": fig.segments, "missing": fig.missing,
        },
    }


def refused(exc: WatchbackUnavailable):
    return jsonify(error=exc.message, code=exc.code), exc.status, NO_STORE


def add_watchback_routes(app: Flask, station: KioskPort) -> None:
    """The watch-back's routes on the kiosk ``app``."""

    @app.get("/api/watchback")
    def watchback():
        try:
            shown = station.watchback()
        except WatchbackUnavailable as exc:
            logger.info("watch-back refused: %s (%s)", exc.message, exc.code)
            return refused(exc)
        return jsonify(watchback_json(shown)), 200, NO_STORE

    @app.get("/watchback/<camera>.mp4")
    def film(camera: str):
        try:
            shown = station.watchback_film(camera)
            response = send_file(shown.path, mimetype="video/mp4", conditional=True, etag=True, max_age=0)
        except WatchbackUnavailable as exc:
            return refused(exc)
        except OSError:  # removed meanwhile (完成 was pressed)
            return refused(WatchbackUnavailable("not_prepared", "no such film of this watch-back", 404))
        response.headers.update(NO_STORE)
        return response
