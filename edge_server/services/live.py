"""Live station tiles for the dashboard, carried from the MQTT bridge to the web over Redis pub/sub.

The bridge runs in the edge daemon, the dashboard's SSE stream in gunicorn: after each station
change the daemon (or a staff action in the web) publishes a JSON message on the centre's
channel, and every open stream relays it to its browser. Messages::

    {"type": "tile", "tile": {...station_tile...}}           a station's status changed
    {"type": "snapshot", "station": "st-01", "at": 1.7e9}     a new camera snapshot arrived

Tiles carry the lot number, never the candidate's name (the dashboard is a wall view).
``stream_events`` is the stream's loop with its I/O passed in, so it is tested without a socket.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from edge_server.config import EdgeSettings
from edge_server.models import Station
from edge_server.services import snapshots

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(seconds=10)
# What the browser waits before it reconnects a dropped stream (the SSE ``retry`` field).
RETRY_MS = 2000


def channel(centre: str) -> str:
    return f"examkiosk:{centre}:live"


def station_tile(station: Station, now: datetime, *, stale_after: timedelta = STALE_AFTER,
                 snapshot_at: float | None = None) -> dict[str, Any]:
    """What the dashboard shows of one station (and nothing about the candidate but the lot)."""
    status = station.last_status or {}
    fresh = station.last_seen_at is not None and now - station.last_seen_at < stale_after
    return {
        "id": station.id,
        "name": station.name,
        "seat": station.seat,
        "revoked": station.revoked_at is not None,
        "online": bool(station.online and fresh),
        "state": status.get("state"),
        "lot": status.get("lot"),
        "question": status.get("question"),
        "time_left": status.get("time_left"),
        "mic_level": status.get("mic_level"),
        "backlog": status.get("backlog"),
        "disk_free_mb": status.get("disk_free_mb"),
        "clock_offset_ms": status.get("clock_offset_ms"),
        "clock_uncertainty_ms": status.get("clock_uncertainty_ms"),
        "flags": status.get("flags") or [],
        "version": status.get("version") or None,
        "config": status.get("config") or None,
        "last_seen": station.last_seen_at.isoformat() if station.last_seen_at else None,
        "seen_ts": station.last_seen_at.timestamp() if station.last_seen_at else None,
        "status_ts": status.get("ts") or None,  # when the station published it (its estimate of edge time)
        "snapshot_at": snapshot_at,
    }


def went_stale(tiles: dict[str, dict[str, Any]], now_ts: float, stale_seconds: float) -> list[dict[str, Any]]:
    """Tiles shown online whose last status is ``stale_seconds`` old: marked offline (in ``tiles`` too)."""
    changed = []
    for station_id, tile in tiles.items():
        seen = tile.get("seen_ts")
        if tile.get("online") and seen is not None and now_ts - seen >= stale_seconds:
            tile = dict(tile, online=False)
            tiles[station_id] = tile
            changed.append(tile)
    return changed


def sse(event: str, data: Any) -> str:
    """One server-sent event (``data`` as one line of JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def apply(tiles: dict[str, dict[str, Any]], message: dict[str, Any]) -> tuple[str, Any] | None:
    """Fold one pub/sub message into ``tiles``; the (event, data) to send, or None to drop it."""
    kind = message.get("type")
    if kind == "tile" and isinstance(message.get("tile"), dict) and isinstance(message["tile"].get("id"), str):
        tile = message["tile"]
        tiles[tile["id"]] = tile
        return "tile", tile
    if kind == "snapshot" and isinstance(message.get("station"), str):
        tile = tiles.get(message["station"])
        if tile is None:
            return None  # not a station of ours (or not yet enrolled when the stream began)
        tiles[message["station"]] = dict(tile, snapshot_at=message.get("at"))
        return "snapshot", {"station": message["station"], "at": message.get("at")}
    if kind == "bridge":  # the bridge's backlog: shown as a banner while it is late
        return "bridge", {"late": bool(message.get("late")), "pending": message.get("pending"),
                          "waited_s": message.get("waited_s")}
    return None


def stream_events(get_message: Callable[[float], dict[str, Any] | None], tiles: dict[str, dict[str, Any]], *,
                  stream_seconds: float, heartbeat_seconds: float, stale_seconds: float,
                  clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                  wait: float = 1.0) -> Iterator[str]:
    """The SSE stream: the full set of tiles, then each change, stale stations, heartbeats; ends after
    ``stream_seconds`` with a ``bye`` event (the browser reconnects and gets a fresh snapshot).

    ``get_message(timeout)`` returns a decoded pub/sub message or None after ``timeout`` seconds.
    """
    started = clock()
    yield f"retry: {RETRY_MS}\n\n"
    went_stale(tiles, wall(), stale_seconds)
    yield sse("stations", {"stations": sorted(tiles.values(), key=lambda t: t["id"]), "server_time": wall()})
    last_sent = clock()
    while (left := stream_seconds - (clock() - started)) > 0:
        message = get_message(min(wait, left))
        out = apply(tiles, message) if message is not None else None
        if out is not None:
            yield sse(*out)
            last_sent = clock()
        for tile in went_stale(tiles, wall(), stale_seconds):
            yield sse("tile", tile)
            last_sent = clock()
        if clock() - last_sent >= heartbeat_seconds:
            yield sse("heartbeat", {"server_time": wall()})
            last_sent = clock()
    yield sse("bye", {"reconnect_ms": RETRY_MS})


class LivePublisher:
    """Publishes live messages on the centre's channel; Redis being away costs a warning, not a crash."""

    def __init__(self, redis_url: str, centre: str):
        from redis import Redis

        self.channel = channel(centre)
        self._redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self._failing = False

    def publish(self, message: dict[str, Any]) -> bool:
        return self.publish_many([message])

    def publish_many(self, messages: list[dict[str, Any]]) -> bool:
        from redis.exceptions import RedisError

        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(self.channel, json.dumps(message, separators=(",", ":")))
                pipe.execute()
        except RedisError as exc:
            if not self._failing:
                logger.warning("live dashboard updates not published (Redis: %s); dashboards poll meanwhile", exc)
            self._failing = True
            return False
        if self._failing:
            logger.info("live dashboard updates published again")
        self._failing = False
        return True

    def tile(self, tile: dict[str, Any]) -> bool:
        return self.publish({"type": "tile", "tile": tile})

    def tiles(self, tiles: list[dict[str, Any]]) -> bool:
        """Several tiles, one message each, sent in one round trip (a pipeline)."""
        if not tiles:
            return True
        return self.publish_many([{"type": "tile", "tile": tile} for tile in tiles])

    def snapshot(self, station_id: str, at: float) -> bool:
        return self.publish({"type": "snapshot", "station": station_id, "at": at})

    def close(self) -> None:
        self._redis.close()


def tile_of(settings: EdgeSettings, station: Station, now: datetime) -> dict[str, Any]:
    """The station's tile with the edge's staleness rule and its latest snapshot's time."""
    return station_tile(station, now, stale_after=timedelta(seconds=settings.dashboard.stale_seconds),
                        snapshot_at=snapshots.taken_at(settings.snapshots_dir, station.id))


def publish_tile(settings: EdgeSettings, station: Station, now: datetime) -> None:
    """Tell the open live dashboards about a station a staff action changed."""
    publisher = LivePublisher(settings.redis_url, station.centre_id)
    try:
        publisher.tile(tile_of(settings, station, now))
    finally:
        publisher.close()
