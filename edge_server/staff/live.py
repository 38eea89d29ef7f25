"""The dashboard's live feed: ``GET /staff/api/stream`` (server-sent events) and camera snapshots.

The stream subscribes to the centre's Redis channel (``services.live``) before it reads the
stations, so no change falls between the first full set of tiles and the updates. It holds no
database session while it runs, ends after ``dashboard.stream_seconds`` (the browser reconnects)
and answers 503 when Redis is away: the page then polls ``/staff/api/stations`` until the stream
is back.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from flask import Response, abort, jsonify, send_file
from flask_login import login_required
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Station
from edge_server.services import live, snapshots
from edge_server.staff import bp
from edge_server.staff.routes import _centre, _settings, station_tile

logger = logging.getLogger(__name__)


@bp.get("/api/stream")
@login_required
def live_stream():
    from redis import Redis
    from redis.exceptions import RedisError

    settings = _settings()
    centre = _centre()
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=settings.dashboard.heartbeat_seconds + 5)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(live.channel(centre))
    except RedisError as exc:
        pubsub.close()
        redis.close()
        logger.warning("live stream unavailable (Redis: %s); the dashboard polls", exc)
        return jsonify(error="实时推送暂不可用 · Live updates unavailable", code="live_unavailable"), 503
    now = datetime.now(timezone.utc)
    stations = db.session.scalars(select(Station).where(Station.centre_id == centre).order_by(Station.id)).all()
    tiles = {s.id: station_tile(s, now) for s in stations}
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

    return Response(events(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@bp.get("/stations/<station_id>/snapshot.jpg")
@login_required
def station_snapshot(station_id: str):
    """The station's latest camera snapshot (the URL carries ``?v=<time>``, so it may be cached)."""
    station = db.session.get(Station, station_id)
    if station is None or station.centre_id != _centre():
        abort(404)
    path = snapshots.snapshot_path(_settings().snapshots_dir, station.id)
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype="image/jpeg", max_age=0)
    response.headers["Cache-Control"] = "private, max-age=60"
    return response
