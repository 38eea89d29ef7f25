"""The dashboard's live feed: ``GET /staff/api/stream`` (server-sent events) and camera snapshots.

The stream subscribes to the centre's Redis channel (``services.live``) before it reads the
stations, so no change falls between the first full set of tiles and the updates. It holds no
database session while it runs, ends after ``dashboard.stream_seconds`` (the browser reconnects)
and answers 503 when Redis is away: the page then polls ``/staff/api/stations`` until the stream
is back. Each web worker serves at most ``dashboard.max_streams`` streams at once: one more is
answered 503 ``live_busy`` and that page polls too (trying the stream again every 30 s).
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone

from flask import Response, abort, current_app, jsonify, send_file
from sqlalchemy import select

from edge_server import auth
from edge_server.auth import ALL_STAFF, current_centre, staff
from edge_server.extensions import db
from edge_server.models import Station
from edge_server.services import live, snapshots
from edge_server.staff.blueprint import bp

logger = logging.getLogger(__name__)


class StreamSlots:
    """How many live streams this worker process serves now, at most ``limit``."""

    def __init__(self, limit: int):
        self.limit, self.open = limit, 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open = max(0, self.open - 1)


def _stream_slots(limit: int) -> StreamSlots:
    return current_app.extensions.setdefault("examkiosk.stream_slots", StreamSlots(limit))


@bp.get("/api/stream")
@staff(*ALL_STAFF)
def live_stream():
    from redis import Redis
    from redis.exceptions import RedisError

    settings = auth.settings()
    centre = current_centre()
    slots = _stream_slots(settings.dashboard.max_streams)
    if not slots.take():
        logger.warning("live stream refused: %d streams open in this worker (dashboard.max_streams); the page polls",
                       slots.open)
        return jsonify(error="实时推送连接已满，本页每 2 秒刷新 · Too many live dashboards open: this page refreshes "
                             "every 2 s", code="live_busy"), 503
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=settings.dashboard.heartbeat_seconds + 5)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)

    def release() -> None:  # no stream after all
        pubsub.close()
        redis.close()
        slots.give_back()

    try:
        pubsub.subscribe(live.channel(centre))
    except RedisError as exc:
        release()
        logger.warning("live stream unavailable (Redis: %s); the dashboard polls", exc)
        return jsonify(error="实时推送暂不可用 · Live updates unavailable", code="live_unavailable"), 503
    try:
        now = datetime.now(timezone.utc)
        stations = db.session.scalars(select(Station).where(Station.centre_id == centre).order_by(Station.id)).all()
        tiles = {s.id: live.tile_of(auth.settings(), s, now) for s in stations}
    except BaseException:
        release()
        raise
    db.session.remove()  # the stream runs for minutes: no connection held

    def get_message(timeout: float):
        message = pubsub.get_message(timeout=timeout)
        if message is None or message.get("type") != "message":
            return None
        try:
            return json.loads(message["data"])
        except (TypeError, ValueError):
            logger.warning("ignoring a malformed live message")
            return None

    def events():
        try:
            yield from live.stream_events(get_message, tiles, stream_seconds=settings.dashboard.stream_seconds,
                                          heartbeat_seconds=settings.dashboard.heartbeat_seconds,
                                          stale_seconds=settings.dashboard.stale_seconds)
        except RedisError as exc:  # Redis went away: end; the browser reconnects (or falls back to polling)
            logger.warning("live stream ended: %s", exc)
        finally:
            pubsub.close()
            redis.close()

    response = Response(events(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.call_on_close(slots.give_back)  # when the server closes it: stream ended or browser gone
    return response


@bp.get("/stations/<station_id>/snapshot.jpg")
@staff(*ALL_STAFF)
def station_snapshot(station_id: str):
    """The station's latest camera snapshot (the URL carries ``?v=<time>``, so it may be cached)."""
    station = db.session.get(Station, station_id)
    if station is None or station.centre_id != current_centre():
        abort(404)
    path = snapshots.snapshot_path(auth.settings().snapshots_dir, station.id)
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype="image/jpeg", max_age=0)
    response.headers["Cache-Control"] = "private, max-age=60"
    return response
