"""MQTT bridge: station status and events from Mosquitto into the edge database.

Subscribes as the edge user to ``examkiosk/<centre>/station/+/status``, ``.../event`` and
``.../snapshot``. A status message updates the station row (``services.stations.record_status``)
and is passed on to the live dashboards (``services.live``, Redis pub/sub); an event is logged
with ``source="mqtt"``; a snapshot (a small JPEG) replaces the station's latest one on disk
(``services.snapshots``) and the dashboards are told. Each message is its own transaction; a bad
message is logged and skipped. Messages are handled on paho's network thread, one at a time.
"""
from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from edge_server.app import create_app
from edge_server.config import EdgeSettings
from edge_server.extensions import db
from edge_server.models import Attempt, Station
from edge_server.services import attempts as attempt_service
from edge_server.services import live, snapshots
from edge_server.services import stations as station_service
from edge_server.services.push import edge_client
from examkiosk_wire import topics
from examkiosk_wire.topics import StationEvent, StationStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BridgedEvent:
    station: str
    kind: str
    attempt: str | None
    ts: float


def _when(ts: float, fallback: datetime) -> datetime:
    if ts and ts > 0:
        try:
            return datetime.fromtimestamp(ts, timezone.utc)
        except (OverflowError, OSError, ValueError):
            pass
    return fallback


class MqttBridge:
    """The edge's MQTT subscriber; ``start()`` connects in the background, ``stop()`` disconnects."""

    def __init__(self, settings: EdgeSettings, app: Flask | None = None, *, keepalive: int = 30,
                 recent_events: int = 500):
        if app is None:
            app = create_app(settings)
        self.settings = settings
        self.app = app
        self.centre = settings.centre
        self.keepalive = keepalive
        self.events: collections.deque[BridgedEvent] = collections.deque(maxlen=recent_events)
        self.counts: collections.Counter[str] = collections.Counter()
        self._unknown_warned: set[str] = set()
        self._was_connected = False
        self._stopping = False
        self._subscribed = threading.Event()
        self.live = live.LivePublisher(settings.redis_url, self.centre)

        client = edge_client(settings, client_id=f"examkiosk-edge-{self.centre}")
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client

    # --- lifecycle ---
    def start(self) -> None:
        self._stopping = False
        mqtt = self.settings.mqtt
        self.client.connect_async(mqtt.host, mqtt.port, keepalive=self.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        self.live.close()

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    # --- paho callbacks ---
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        mqtt = self.settings.mqtt
        if reason_code.is_failure:
            logger.warning("MQTT broker %s:%d refused the edge user %r: %s", mqtt.host, mqtt.port,
                           mqtt.username, reason_code)
            return
        logger.info("MQTT %s to %s:%d", "reconnected" if self._was_connected else "connected", mqtt.host, mqtt.port)
        self._was_connected = True
        client.subscribe([(topics.status_wildcard(self.centre), 1), (topics.event_wildcard(self.centre), 1),
                          (topics.snapshot_wildcard(self.centre), 0)])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: list[Any], properties: Any) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            logger.error("the broker refused the edge's subscriptions: %s (check the ACL)", ", ".join(failed))
            return
        self._subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._subscribed.clear()
        if not self._stopping:
            logger.warning("MQTT connection lost (%s); paho reconnects", reason_code)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        logger.warning("MQTT broker %s:%d unreachable; retrying", self.settings.mqtt.host, self.settings.mqtt.port)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            self.handle(message.topic, message.payload, retained=bool(message.retain))
        except Exception:  # never let one message kill paho's thread
            self.counts["failed"] += 1
            logger.exception("could not handle the message on %s", message.topic)

    # --- handling (callable without a broker) ---
    def handle(self, topic: str, payload: bytes | str, *, retained: bool = False) -> bool:
        """Store one message; False if it was skipped."""
        parsed = topics.parse_station_topic(topic)
        if parsed is None or parsed[0] != self.centre:
            logger.warning("ignoring a message on %s", topic)
            self.counts["skipped"] += 1
            return False
        _, station_id, kind = parsed
        try:
            if kind == "status":
                ok = self._status(station_id, StationStatus.from_json(payload), retained)
            elif kind == "event":
                ok = self._event(station_id, StationEvent.from_json(payload))
            elif kind == "snapshot":
                ok = self._snapshot(station_id, payload if isinstance(payload, bytes) else payload.encode())
            else:
                ok = False
        except ValueError as exc:
            logger.warning("bad %s message from station %s: %s", kind, station_id, exc)
            ok = False
        self.counts[kind if ok else "skipped"] += 1
        return ok

    def _status(self, station_id: str, status: StationStatus, retained: bool) -> bool:
        if status.station != station_id:
            raise ValueError(f"status names station {status.station!r} on the topic of {station_id!r}")
        now = datetime.now(timezone.utc)
        # A retained status is as old as the station says; a live one is seen now.
        seen_at = _when(status.ts, now) if retained else now
        with self.app.app_context():
            try:
                known = station_service.record_status(db.session, station_id, status.to_dict(), min(seen_at, now))
                if not known:
                    db.session.rollback()
                    self._warn_unknown(station_id)
                    return False
                db.session.commit()
                tile = live.station_tile(
                    db.session.get(Station, station_id), now,
                    stale_after=timedelta(seconds=self.settings.dashboard.stale_seconds),
                    snapshot_at=snapshots.taken_at(self.settings.snapshots_dir, station_id))
            except SQLAlchemyError:
                db.session.rollback()
                raise
            finally:
                db.session.remove()
        self.live.tile(tile)
        logger.debug("status of %s: online=%s state=%s", station_id, status.online, status.state)
        return True

    def _event(self, station_id: str, event: StationEvent) -> bool:
        now = datetime.now(timezone.utc)
        with self.app.app_context():
            try:
                if db.session.get(Station, station_id) is None:
                    self._warn_unknown(station_id)
                    return False
                payload = dict(event.payload)
                attempt_id = event.attempt
                if attempt_id is not None and db.session.get(Attempt, attempt_id) is None:
                    payload.setdefault("attempt", attempt_id)  # keep what the station said
                    attempt_id = None
                attempt_service.log_event(db.session, kind=event.kind, station_id=station_id, attempt_id=attempt_id,
                                          payload=payload, source="mqtt", at=_when(event.ts, now))
                db.session.commit()
            except SQLAlchemyError:
                db.session.rollback()
                raise
            finally:
                db.session.remove()
        self.events.append(BridgedEvent(station=station_id, kind=event.kind, attempt=event.attempt, ts=event.ts))
        return True

    def _snapshot(self, station_id: str, data: bytes) -> bool:
        snapshots.check_jpeg(data)  # ValueError: skipped as a bad message
        with self.app.app_context():
            try:
                station = db.session.get(Station, station_id)
                usable = station is not None and station.revoked_at is None
            finally:
                db.session.remove()
        if not usable:
            self._warn_unknown(station_id)
            return False
        self.live.snapshot(station_id, snapshots.store(self.settings.snapshots_dir, station_id, data))
        return True

    def _warn_unknown(self, station_id: str) -> None:
        if station_id not in self._unknown_warned:
            self._unknown_warned.add(station_id)
            logger.warning("message from unknown station %s ignored (not enrolled at centre %s)", station_id,
                           self.centre)
