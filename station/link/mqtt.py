"""The station's MQTT side: its retained status (with a retained last will that marks it offline
if it dies), its events and snapshots, and the commands the edge sends down; paho reconnects."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from examkiosk_wire import topics
from examkiosk_wire.pinning import pinned_tls_context
from examkiosk_wire.topics import StationEvent, StationStatus
from examkiosk_wire.version import package_version
from station.link.clock import Clock

logger = logging.getLogger(__name__)


class StatusPublisher:
    """Publishes the station's retained status and its events; paho reconnects by itself."""

    def __init__(self, host: str, port: int, username: str, password: str, centre: str, station_id: str, *,
                 clock: Clock | None = None, keepalive: int = 15, version: str | None = None,
                 on_command: Callable[[topics.StationCommand], None] | None = None, tls: bool = False,
                 fingerprint: str | None = None):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.host, self.port = host, port
        self.centre, self.station_id = centre, station_id
        self.status_topic = topics.status_topic(centre, station_id)
        self.event_topic = topics.event_topic(centre, station_id)
        self.cmd_topic = topics.cmd_topic(centre, station_id)
        self.snapshot_topic = topics.snapshot_topic(centre, station_id)
        self.on_command = on_command
        self.keepalive = keepalive
        self.version = version if version is not None else package_version()
        self._clock = clock
        self._lock = threading.Lock()
        self._last: StationStatus | None = None
        self._was_connected = False
        self._stopping = False
        self._connected_event = threading.Event()

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"station-{centre}-{station_id}",
                             protocol=mqtt.MQTTv5)
        client.username_pw_set(username, password)
        if tls:  # the broker's TLS listener, pinned like the API: nothing is sent to another certificate
            client.tls_set_context(pinned_tls_context(fingerprint))
            client.tls_insecure_set(True)  # no host name check: the pin replaces it
            if not fingerprint:
                logger.warning("MQTT over TLS to %s:%d without a pinned fingerprint: the broker's identity "
                               "is not checked", host, port)
        elif fingerprint:
            logger.warning("MQTT to %s:%d is not encrypted: the station's login and commands cross the LAN "
                           "in clear", host, port)
        client.will_set(self.status_topic, StationStatus.offline(station_id, version=self.version).to_json(),
                        qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        self._client = client

    def _now(self) -> float:
        return self._clock.now() if self._clock is not None else time.time()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            logger.warning("MQTT broker %s:%d refused station %s: %s", self.host, self.port, self.station_id,
                           reason_code)
            return
        logger.info("MQTT %s to %s:%d", "reconnected" if self._was_connected else "connected", self.host,
                    self.port)
        self._was_connected = True
        if self.on_command is not None:
            client.subscribe(self.cmd_topic, qos=1)  # again after every reconnect (clean session)
        self._connected_event.set()
        with self._lock:
            last = self._last
        if last is not None:  # the will may have marked us offline meanwhile
            client.publish(self.status_topic, dataclasses.replace(last, online=True, ts=self._now()).to_json(),
                           qos=1, retain=True)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected_event.clear()
        if not self._stopping:
            logger.warning("MQTT connection to %s:%d lost (%s); paho reconnects", self.host, self.port,
                           reason_code)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        logger.warning("MQTT broker %s:%d unreachable; retrying", self.host, self.port)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic != self.cmd_topic or self.on_command is None:
            return
        try:
            command = topics.StationCommand.from_json(message.payload)
        except ValueError as exc:
            logger.warning("ignoring a malformed command on %s: %s", message.topic, exc)
            return
        try:
            self.on_command(command)
        except Exception:
            logger.exception("command %s failed", command.kind)

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected_event.wait(timeout)

    def start(self) -> None:
        self._stopping = False
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self._client.loop_start()

    def publish_status(self, status: StationStatus) -> Any:
        """Retained, QoS 1; remembered and re-sent after every reconnect. Returns paho's MQTTMessageInfo."""
        if status.station != self.station_id:
            raise ValueError(f"status of {status.station!r} given to the publisher of {self.station_id!r}")
        with self._lock:
            self._last = status
        return self._client.publish(self.status_topic, status.to_json(), qos=1, retain=True)

    def publish_snapshot(self, jpeg: bytes) -> Any:
        """A camera snapshot for the dashboard: QoS 0, not retained (a lost one is replaced in seconds)."""
        return self._client.publish(self.snapshot_topic, jpeg, qos=0, retain=False)

    def publish_event(self, kind: str, payload: dict[str, Any] | None = None, *, attempt: str | None = None) -> Any:
        """QoS 1 on the event topic, stamped with server time if a clock was given."""
        event = StationEvent(kind=kind, payload=dict(payload or {}), attempt=attempt, ts=self._now())
        return self._client.publish(self.event_topic, event.to_json(), qos=1)

    def stop(self, timeout: float = 2.0) -> None:
        """Say goodbye (retained offline status), then disconnect."""
        self._stopping = True
        with self._lock:
            last = self._last
        offline = (dataclasses.replace(last, online=False, ts=self._now()) if last is not None
                   else StationStatus.offline(self.station_id, version=self.version, ts=self._now()))
        try:
            if self._client.is_connected():
                info = self._client.publish(self.status_topic, offline.to_json(), qos=1, retain=True)
                info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            logger.warning("could not publish the offline status: %s", exc)
        finally:
            self._client.disconnect()
            self._client.loop_stop()
