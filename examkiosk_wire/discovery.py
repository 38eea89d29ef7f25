"""How an edge server announces itself over zeroconf and how a station reads the announcement.

Service type ``_examkiosk._tcp.local.``; TXT keys: ``centre``, ``api`` (base URL), ``mqtt``
(host:port, an empty host meaning the announcement's own address), ``fp`` (SHA-256 of the edge's
TLS certificate), ``v`` (software version) and ``mqtt_tls=1`` when the broker port is its TLS
listener. A station only talks to the server whose ``fp`` it was enrolled with.
"""
from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

SERVICE_TYPE = "_examkiosk._tcp.local."


class EdgeNotFound(Exception):
    """No (acceptable) edge server answered the discovery; ``ignored`` maps each refused one to why."""

    def __init__(self, message: str, ignored: dict[str, str] | None = None):
        super().__init__(message)
        self.ignored = dict(ignored or {})


def txt_record(*, centre: str, api: str, mqtt_host: str, mqtt_port: int, fp: str, version: str,
               mqtt_tls: bool) -> dict[str, str]:
    """The TXT properties an edge announces (what :func:`service_from_info` reads back)."""
    record = {"centre": centre, "api": api.rstrip("/"), "mqtt": f"{mqtt_host}:{mqtt_port}", "fp": fp, "v": version}
    if mqtt_tls:
        record["mqtt_tls"] = "1"
    return record


@dataclass(frozen=True)
class EdgeService:
    """One edge server as it announces itself over zeroconf."""

    name: str
    centre: str
    api: str
    mqtt_host: str
    mqtt_port: int
    fp: str
    version: str
    mqtt_tls: bool = False  # the broker port is its TLS listener (same certificate as the API)


def _txt(properties: dict[bytes, bytes | None], key: str) -> str:
    value = properties.get(key.encode())
    return value.decode("utf-8", "replace") if value else ""


def service_from_info(info: Any) -> EdgeService:
    """An :class:`EdgeService` from a resolved zeroconf ``ServiceInfo``; ValueError if incomplete."""
    props = info.properties or {}
    centre, api, mqtt, fp = (_txt(props, k) for k in ("centre", "api", "mqtt", "fp"))
    missing = [k for k, v in (("centre", centre), ("api", api), ("mqtt", mqtt), ("fp", fp)) if not v]
    if missing:
        raise ValueError(f"TXT record lacks {', '.join(missing)}")
    host, sep, port_text = mqtt.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"TXT mqtt={mqtt!r} is not host:port")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        addresses = info.parsed_addresses()
        if not addresses:
            raise ValueError("TXT mqtt has no host and the service no address")
        host = addresses[0]
    return EdgeService(name=info.name, centre=centre, api=api.rstrip("/"), mqtt_host=host,
                       mqtt_port=int(port_text), fp=fp.lower(), version=_txt(props, "v"),
                       mqtt_tls=_txt(props, "mqtt_tls") == "1")


def discover_edge(*, centre: str | None = None, fp: str | None = None, timeout: float = 10,
                  interfaces: list[str] | None = None, fp_prefix: str | None = None) -> EdgeService:
    """Browse for the edge server; with ``fp`` only the server with that fingerprint is accepted,
    with ``fp_prefix`` (enrolment: the code's first group) only one whose fingerprint starts with it."""
    from zeroconf import InterfaceChoice, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

    want_fp = fp.lower() if fp else None
    want_prefix = fp_prefix.lower() if fp_prefix else None
    names: queue.Queue[str] = queue.Queue()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.put(name)

    ignored: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    zc = Zeroconf(interfaces=interfaces if interfaces else InterfaceChoice.All)
    browser = None
    try:
        browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                name = names.get(timeout=left)
            except queue.Empty:
                break
            info = ServiceInfo(SERVICE_TYPE, name)
            if not info.request(zc, max(100, int(min(left, 3.0) * 1000))):
                logger.debug("edge %s did not resolve yet; asking again", name)
                names.put(name)  # the browser reports a name once: keep resolving it while time is left
                time.sleep(0.1)
                continue
            try:
                service = service_from_info(info)
            except ValueError as exc:
                reason = f"unusable announcement: {exc}"
            else:
                if centre is not None and service.centre != centre:
                    reason = f"centre {service.centre!r}, not {centre!r}"
                elif want_fp is not None and service.fp != want_fp:
                    reason = f"fingerprint {service.fp[:16]}… is not the enrolled one"
                elif want_prefix is not None and not service.fp.startswith(want_prefix):
                    reason = f"fingerprint {service.fp[:16]}… does not start with {want_prefix.upper()}"
                else:
                    logger.info("found edge %s: api %s, mqtt %s:%d", name, service.api, service.mqtt_host,
                                service.mqtt_port)
                    return service
            if ignored.get(name) != reason:
                logger.warning("ignoring edge %s: %s", name, reason)
            ignored[name] = reason
    finally:
        if browser is not None:
            browser.cancel()
        zc.close()
    wanted = ", ".join(f"{k}={v}" for k, v in (("centre", centre), ("fp", want_fp and want_fp[:16] + "…"),
                                                ("fp", want_prefix and want_prefix + "…")) if v)
    seen = f"; ignored {len(ignored)}: " + "; ".join(f"{n} ({r})" for n, r in ignored.items()) if ignored else ""
    raise EdgeNotFound(f"no edge server ({SERVICE_TYPE}{', ' + wanted if wanted else ''}) answered "
                       f"within {timeout:g} s{seen}", ignored)
