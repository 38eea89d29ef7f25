"""MQTT bridge: station status and events from Mosquitto into the edge database.

Subscribes as the edge user to ``examkiosk/<centre>/station/+/status``, ``.../event`` and
``.../snapshot``. Messages are handled on paho's network thread, one at a time, without touching
the database: a status replaces the station's unwritten one in the ``Inbox`` (status is state, not
history), an event is queued, a snapshot (a small JPEG) replaces the station's latest one on disk
(``services.snapshots``, never the database) and the dashboards are told at once. Every
``[bridge] flush_seconds`` the flusher thread writes what waits in one transaction
(``writer.BatchWriter``: the stations' rows, the events chained into the audit log with
``source="mqtt"``) and then passes the new tiles to the live dashboards (``services.live``, Redis
pub/sub, one pipeline). A message waiting longer than ``late_seconds`` shows as a banner on the
dashboards; ``lag`` holds the recent receive-to-commit times. A bad message is logged and skipped;
a batch the database refuses waits for the next flush; ``stop()`` writes what is left.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Flask
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import SQLAlchemyError

from edge_server.app import create_app
from edge_server.config import EdgeSettings
from edge_server.daemon.inbox import Inbox, PendingEvent, PendingStatus
from edge_server.daemon.lag import LagWindow
from edge_server.daemon.writer import BatchWriter
from edge_server.extensions import db
from edge_server.models import Station
from edge_server.services import live, snapshots
from edge_server.services.push import edge_client
from examkiosk_wire import topics
from examkiosk_wire.topics import StationEvent, StationStatus

logger = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS = 3600


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
        self.inbox = Inbox()
        self.writer = BatchWriter(app, settings)
        self.lag = LagWindow()
        self._stations: dict[str, bool] = {}  # station id -> usable (not revoked), of those seen
        self._late = False
        self._writing: tuple[int, float | None] = (0, None)  # the batch being written: (messages, oldest)
        self._reported_at = 0.0
        self._flush_stop = threading.Event()
        self._flusher: threading.Thread | None = None

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
        self._flush_stop.clear()
        self._flusher = threading.Thread(target=self._flush_loop, name="bridge-flush", daemon=True)
        self._flusher.start()
        # A session the broker keeps for SESSION_EXPIRY_SECONDS after the bridge goes (a restart of
        # the daemon): the events stations send meanwhile wait in it instead of being dropped.
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        self.client.connect_async(mqtt.host, mqtt.port, keepalive=self.keepalive, clean_start=False,
                                  properties=properties)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect, then write what is still waiting."""
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        self._flush_stop.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        else:
            self.flush()
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
        # Statuses at QoS 0: the broker does not queue them for an absent bridge (a newer one comes
        # each second, and subscribing again on every connect delivers each station's retained
        # one); events at QoS 1, queued by the broker in the bridge's session while it is away.
        client.subscribe([(topics.status_wildcard(self.centre), 0), (topics.event_wildcard(self.centre), 1),
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
        if time.monotonic() - self._reported_at >= 1.0:
            self._report_backlog()
        return ok

    def _status(self, station_id: str, status: StationStatus, retained: bool) -> bool:
        if status.station != station_id:
            raise ValueError(f"status names station {status.station!r} on the topic of {station_id!r}")
        if self._usable(station_id) is None:
            return False
        now = datetime.now(timezone.utc)
        # A retained status is as old as the station says; a live one is seen now.
        seen_at = _when(status.ts, now) if retained else now
        self.inbox.put_status(PendingStatus(station_id, status.to_dict(), min(seen_at, now), time.monotonic()))
        logger.debug("status of %s: online=%s state=%s", station_id, status.online, status.state)
        return True

    def _event(self, station_id: str, event: StationEvent) -> bool:
        if self._usable(station_id) is None:
            return False
        now = datetime.now(timezone.utc)
        self.inbox.put_event(PendingEvent(station_id, event.kind, event.attempt, dict(event.payload),
                                          _when(event.ts, now), time.monotonic()))
        return True

    def _snapshot(self, station_id: str, data: bytes) -> bool:
        snapshots.check_jpeg(data)  # ValueError: skipped as a bad message
        if not self._usable(station_id):
            return False
        self.live.snapshot(station_id, snapshots.store(self.settings.snapshots_dir, station_id, data))
        return True

    def _usable(self, station_id: str) -> bool | None:
        """True for an enrolled station, False for a revoked one, None (warned once) for one the
        database does not hold. Known stations are remembered (each flush refreshes them), so a
        message costs no query; an unknown one is looked up each time."""
        usable = self._stations.get(station_id)
        if usable is None:
            with self.app.app_context():
                try:
                    station = db.session.get(Station, station_id)
                    usable = None if station is None else station.revoked_at is None
                finally:
                    db.session.remove()
            if usable is None:
                self._warn_unknown(station_id)
                return None
            self._stations[station_id] = usable
        return usable

    # --- writing (the flusher thread; ``flush`` is callable without it) ---
    def _flush_loop(self) -> None:
        while not self._flush_stop.wait(self.settings.bridge.flush_seconds):
            try:
                self.flush()
            except Exception:  # the next flush tries again with what is waiting
                logger.exception("bridge flush failed")
        self.flush()

    def flush(self) -> int:
        """Write what is waiting; the number of messages stored. If the database refuses, the batch
        stays in the inbox for the next flush (and the backlog shows on the dashboards)."""
        batch = self.inbox.take()
        written = None
        if batch:
            self._writing = (len(batch.received_times()), batch.oldest)
            try:
                written = self.writer.write(batch)
            except (SQLAlchemyError, RuntimeError) as exc:  # RuntimeError: the audit chain's tail kept moving
                self.inbox.put_back(batch)
                logger.warning("bridge: %d messages not written yet (database: %s)", len(batch.received_times()), exc)
            finally:
                self._writing = (0, None)
        if written is not None:
            done = time.monotonic()
            self.lag.add([(done - t) * 1000 for t in batch.received_times()])
            self.counts["coalesced"] += batch.replaced
            for station_id in written.unknown:
                self._stations.pop(station_id, None)
                self._warn_unknown(station_id)
            self._stations.update(written.usable)
            self.live.tiles(written.tiles)
            self.events.extend(BridgedEvent(e.station, e.kind, e.attempt, e.at.timestamp()) for e in written.events)
        self._report_backlog()
        return 0 if written is None else len(written.tiles) + len(written.events)

    def backlog(self) -> tuple[int, float]:
        """(messages not yet written, seconds the oldest has waited), the batch being written included."""
        count, oldest = self.inbox.pending()
        writing, writing_oldest = self._writing
        times = [t for t in (oldest, writing_oldest) if t is not None]
        return count + writing, time.monotonic() - min(times) if times else 0.0

    def _report_backlog(self) -> None:
        """Tell the dashboards while messages wait longer than ``[bridge] late_seconds``, and once
        when the backlog is gone. Called after each flush and, at most once a second, as messages
        arrive (so a write stuck in the database shows too)."""
        self._reported_at = time.monotonic()
        count, waited = self.backlog()
        late = waited >= self.settings.bridge.late_seconds
        if late or self._late:
            self.live.publish({"type": "bridge", "late": late, "pending": count, "waited_s": round(waited, 1)})
        if late and not self._late:
            logger.warning("bridge: %d messages waiting, the oldest for %.1f s", count, waited)
        elif self._late and not late:
            logger.info("bridge: backlog gone")
        self._late = late

    def _warn_unknown(self, station_id: str) -> None:
        if station_id not in self._unknown_warned:
            self._unknown_warned.add(station_id)
            logger.warning("message from unknown station %s ignored (not enrolled at centre %s)", station_id,
                           self.centre)
