"""The station's link to the edge server: discovery, the HTTP API client, the clock, MQTT status.

- :func:`discover_edge` browses ``_examkiosk._tcp.local.`` and accepts only the edge whose
  fingerprint the station was enrolled with.
- :class:`EdgeClient` calls the station API under ``<base_url>/api/v1`` with the station's
  bearer token and turns transport and HTTP failures into :class:`EdgeUnavailable` (try again
  later) or :class:`EdgeRejected` (the edge said no; carries the edge's error code).
- :class:`Clock` keeps the station's offset to the edge's clock, which is the exam's clock.
- :class:`StatusPublisher` keeps the retained status topic up to date over MQTT, with a retained
  last will that marks the station offline if it dies.
"""
from __future__ import annotations

import base64
import dataclasses
import logging
import threading
import time
from typing import Any, Callable
from urllib.parse import quote

import requests

from examkiosk_wire import topics
from examkiosk_wire.api import API_PREFIX
from examkiosk_wire.pinning import UntrustedServer, pinned_session
from examkiosk_wire.topics import StationEvent, StationStatus
from examkiosk_wire.version import package_version

logger = logging.getLogger(__name__)



class LinkError(Exception):
    """The station cannot do what it asked of the edge."""


class EdgeUnavailable(LinkError):
    """The edge could not be reached or failed (connection error, timeout, 5xx): retry later."""


class EdgeUntrusted(EdgeUnavailable):
    """The server's TLS certificate is not the pinned one: the station will not talk to it."""


class EdgeRejected(LinkError):
    """The edge refused the request (4xx) with its ``{"error", "code"}`` answer."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


# --- HTTP API -----------------------------------------------------------------------------------

class EdgeClient:
    """The station API of one edge server. Every call carries the station's bearer token."""

    # Pauses before each repeat of a call that is safe to repeat (``idempotent=True``), when the edge
    # did not answer or failed: a candidate at the kiosk should not see a passing stall of the edge
    # or a kept-alive connection the edge closed just as the request went out.
    RETRY_PAUSES = (0.5, 1.5)

    def __init__(self, base_url: str, token: str, timeout: float = 5.0, *, fingerprint: str | None = None):
        """``fingerprint``: the edge certificate's SHA-256 the station pins for https:// (``examkiosk_wire.pinning``)."""
        base = base_url.rstrip("/")
        if base.endswith(API_PREFIX):
            base = base[: -len(API_PREFIX)]
        self.base_url = base
        self.api_url = base + API_PREFIX
        self.timeout = timeout
        self.session = pinned_session(fingerprint)
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = f"examkiosk-station/{package_version()}"

    @property
    def uploads_url(self) -> str:
        """The tus creation endpoint."""
        return self.api_url + "/uploads/"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "EdgeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, idempotent: bool = False) -> Any:
        """One API call; ``idempotent`` ones are repeated (``RETRY_PAUSES``) while the edge is unavailable."""
        pauses = list(self.RETRY_PAUSES) if idempotent else []
        while True:
            try:
                return self._request_once(method, path, json=json)
            except EdgeUntrusted:
                raise
            except EdgeUnavailable as exc:
                if not pauses:
                    raise
                logger.info("%s; trying again", exc)
                time.sleep(pauses.pop(0))

    def _request_once(self, method: str, path: str, *, json: Any = None) -> Any:
        url = f"{self.api_url}/{path.lstrip('/')}"
        try:
            resp = self.session.request(method, url, json=json, timeout=self.timeout)
        except UntrustedServer as exc:
            raise EdgeUntrusted(str(exc)) from exc
        except requests.RequestException as exc:
            raise EdgeUnavailable(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise EdgeUnavailable(f"{method} {url}: the edge answered {resp.status_code}")
        if resp.status_code >= 400:
            code, message = f"http_{resp.status_code}", resp.text[:200].strip() or resp.reason or ""
            try:
                body = resp.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                code = str(body.get("code") or code)
                message = str(body.get("error") or message)
            raise EdgeRejected(resp.status_code, code, message)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise EdgeUnavailable(f"{method} {url}: the edge answered something that is not JSON") from exc

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, json: Any = None, *, idempotent: bool = False) -> Any:
        return self.request("POST", path, json=json, idempotent=idempotent)

    # The station API (edge_server/api/routes.py).
    def time(self) -> float:
        return float(self.get("/time")["server_time"])

    def schedule(self) -> dict[str, Any]:
        return self.get("/schedule")

    def candidate(self, ticket_no: str) -> dict[str, Any]:
        return self.get(f"/candidates/{quote(ticket_no, safe='')}")

    def open_attempt(self, ticket_no: str) -> dict[str, Any]:
        """The candidate's attempt; the edge returns the same one when asked again."""
        return self.post("/attempts", {"ticket_no": ticket_no}, idempotent=True)

    def attempt(self, attempt_id: str) -> dict[str, Any]:
        return self.get(f"/attempts/{quote(attempt_id, safe='')}")

    def register_key(self, public_key_b64: str) -> dict[str, Any]:
        """Register the station's Ed25519 chain-signing key (idempotent for the same key)."""
        return self.post("/station-key", {"public_key": public_key_b64})

    def face_try(self, attempt_id: str, *, matched: bool, distance: float | None = None,
                 liveness: str | None = None, frame_jpeg: bytes | None = None) -> dict[str, Any]:
        """Log one face try with its distance, the liveness outcome and the frame it was decided on."""
        body: dict[str, Any] = {"matched": matched, "distance": distance, "liveness": liveness}
        if frame_jpeg:
            body["frame_jpeg"] = base64.b64encode(frame_jpeg).decode()
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/face-tries", body)

    def request_review(self, attempt_id: str, best_distance: float | None = None,
                       frame_jpeg: bytes | None = None) -> dict[str, Any]:
        """Ask for a manual review; the best captured frame goes with it for the proctor."""
        body: dict[str, Any] = {"best_distance": best_distance}
        if frame_jpeg:
            body["frame_jpeg"] = base64.b64encode(frame_jpeg).decode()
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/review", body)

    def redeem_fallback_code(self, attempt_id: str, code: str) -> dict[str, Any]:
        """A proctor's one-time code instead of the review; EdgeRejected carries why it was refused."""
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/fallback-code", {"code": code})

    def review(self, attempt_id: str) -> dict[str, Any]:
        return self.get(f"/attempts/{quote(attempt_id, safe='')}/review")

    def draw_lot(self, attempt_id: str) -> dict[str, Any]:
        """The attempt's lot number; once drawn, the edge answers the same one."""
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/lot", idempotent=True)

    def event(self, kind: str, payload: dict[str, Any] | None = None, *, attempt: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind, "payload": payload or {}}
        if attempt is not None:
            body["attempt"] = attempt
        return self.post("/events", body)

    def paper(self, sitting_id: str) -> dict[str, Any]:
        return self.get(f"/sittings/{quote(sitting_id, safe='')}/paper")

    def sealed_paper(self, sitting_id: str) -> dict[str, Any]:
        """The sitting's paper as ciphertext (any time): ciphertext, nonce, sha256."""
        return self.get(f"/sittings/{quote(sitting_id, safe='')}/paper/sealed")

    def paper_key(self, sitting_id: str) -> dict[str, Any]:
        """The paper key from the start time on; before it EdgeRejected ``paper_sealed``."""
        return self.get(f"/sittings/{quote(sitting_id, safe='')}/paper/key")

    def finish(self, attempt_id: str, segments: list[str], reason: str = "") -> dict[str, Any]:
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/finish", {"segments": segments, "reason": reason})

    def upload_status(self, attempt_id: str) -> dict[str, Any]:
        return self.get(f"/attempts/{quote(attempt_id, safe='')}/uploads")


# --- clock --------------------------------------------------------------------------------------

class Clock:
    """The edge's clock seen from the station: NTP-style offset from API round trips."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._rtt: float | None = None
        self._synced_at: float | None = None

    def sync(self, client: EdgeClient, samples: int = 5) -> float:
        """Sample ``GET /time`` and keep the offset of the quickest round trip; returns it."""
        best: tuple[float, float] | None = None
        error: EdgeUnavailable | None = None
        for _ in range(max(1, samples)):
            wall0, mono0 = time.time(), time.monotonic()
            try:
                server = client.time()
            except EdgeUnavailable as exc:
                error = exc
                continue
            rtt = time.monotonic() - mono0
            offset = server - (wall0 + rtt / 2)  # server - (t0 + t1) / 2, on a monotonic ruler
            if best is None or rtt < best[1]:
                best = (offset, rtt)
        if best is None:
            assert error is not None
            raise error
        with self._lock:
            self._offset, self._rtt = best
            self._synced_at = time.monotonic()
        logger.info("clock offset to the edge %+.1f ms (round trip %.1f ms)", best[0] * 1000, best[1] * 1000)
        return best[0]

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    @property
    def rtt(self) -> float | None:
        with self._lock:
            return self._rtt

    @property
    def synced(self) -> bool:
        with self._lock:
            return self._synced_at is not None

    def now(self) -> float:
        """Server time, in seconds since the epoch."""
        with self._lock:
            offset = self._offset
        return time.time() + offset


# --- MQTT status --------------------------------------------------------------------------------

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
            from examkiosk_wire.pinning import pinned_tls_context

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
