"""The edge session: find the edge (discovery, unless the config names it), sync the clock, register
the station's key, connect MQTT (status, events, commands), then keep the clock honest."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from examkiosk_wire.chain import StationKey
from examkiosk_wire.discovery import EdgeNotFound, discover_edge
from examkiosk_wire.topics import StationCommand
from station.config import StationSettings
from station.link import Clock, EdgeClient, EdgeRejected, EdgeUnavailable, EdgeUntrusted, StatusPublisher

logger = logging.getLogger(__name__)

RETRY_SECONDS = 3.0
CLOCK_SYNC_SECONDS = 30.0
# While the drift is not known yet or the estimate is loose, sync this often.
CLOCK_SYNC_FAST_SECONDS = 5.0
CLOCK_LOOSE_SECONDS = 0.005
# What "the edge is not reachable yet" means: it was not found, or did not answer.
NOT_REACHABLE = (EdgeUnavailable, EdgeNotFound, ConnectionError, TimeoutError)


class EdgeSession:
    def __init__(self, settings: StationSettings, *, clock: Clock, key: StationKey, stop: threading.Event,
                 on_command: Callable[[StationCommand], None], on_connected: Callable[[], None] = lambda: None):
        self.settings = settings
        self.clock = clock
        self._key = key
        self._stop = stop
        self._on_command = on_command
        self._on_connected = on_connected
        self.client: EdgeClient | None = None
        self.publisher: StatusPublisher | None = None
        self.link_ok = False
        self._warned_plain_http = False
        self._thread: threading.Thread | None = None

    @property
    def mqtt_up(self) -> bool:
        return self.publisher is not None and self.publisher.connected

    def set_link(self, ok: bool) -> None:
        self.link_ok = ok

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edge-link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.connect()
                break
            except EdgeUntrusted as exc:
                logger.error("the edge's certificate is not the enrolled one: %s", exc)
            except NOT_REACHABLE as exc:
                logger.warning("edge not reachable yet: %s", exc)
            except EdgeRejected as exc:
                logger.error("the edge refused this station: %s", exc)
            except Exception:
                logger.exception("connecting to the edge failed")
            self.link_ok = False
            self._stop.wait(RETRY_SECONDS)
        # Keep the clock honest while running.
        while not self._stop.wait(self._next_sync()):
            try:
                self.clock.sync(self.client)
                self.link_ok = True
            except EdgeUnavailable:
                self.link_ok = False

    def _next_sync(self) -> float:
        """Seconds to the next clock sync: often until the drift is fitted and the estimate is tight."""
        loose = self.clock.drift_ppm is None or (self.clock.uncertainty or 1.0) > CLOCK_LOOSE_SECONDS
        return CLOCK_SYNC_FAST_SECONDS if loose else CLOCK_SYNC_SECONDS

    def connect(self) -> None:
        edge, mqtt = self.settings.edge, self.settings.mqtt
        api, mqtt_host, mqtt_port, mqtt_tls = edge.api, mqtt.host, mqtt.port, mqtt.tls
        if not api or not mqtt_host:
            service = discover_edge(centre=self.settings.centre, fp=edge.fingerprint or None,
                                    timeout=edge.discovery_timeout, interfaces=edge.discovery_interfaces or None)
            logger.info("found edge %s at %s (mqtt %s:%s)", service.name, service.api, service.mqtt_host,
                        service.mqtt_port)
            api = api or service.api
            if not mqtt_host:
                mqtt_host, mqtt_port, mqtt_tls = service.mqtt_host, service.mqtt_port, service.mqtt_tls
        if api.startswith("http://") and not self._warned_plain_http:
            self._warned_plain_http = True
            logger.warning("the edge at %s is plain HTTP: its identity is not checked (enrolled "
                           "fingerprint %s…)", api, (edge.fingerprint or "none")[:16])
        client = EdgeClient(api, edge.token, fingerprint=edge.fingerprint or None)
        self.clock.sync(client)
        client.register_key(self._key.public_b64)
        self.client = client
        self.link_ok = True
        logger.info("edge %s: clock offset %.1f ms ± %.1f ms", api, self.clock.offset * 1000,
                    (self.clock.uncertainty or 0.0) * 1000)
        if mqtt.username:
            self.publisher = StatusPublisher(mqtt_host, mqtt_port, mqtt.username, mqtt.password,
                                             self.settings.centre, self.settings.station_id, clock=self.clock,
                                             on_command=self._on_command, tls=mqtt_tls,
                                             fingerprint=edge.fingerprint or None)
            self.publisher.start()
        self._on_connected()
