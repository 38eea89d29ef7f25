"""Zeroconf announcement of the edge server and its identity (``edge_server.identity``).

The edge registers ``<instance>._examkiosk._tcp.local.`` with TXT ``centre``, ``api`` (the
public base URL), ``mqtt`` (``host:port``), ``fp`` and ``v``. ``fp`` is the SHA-256 (hex) of the
edge's TLS certificate (``edge_server.identity``); a station enrolled with that fingerprint ignores
every other announcement, and pins it on every HTTPS connection, so copying the TXT record
does not make a rogue server trusted.

``python -m edge_server.daemon.announce`` runs the announcement alone until SIGTERM/SIGINT.
"""
from __future__ import annotations

import logging
import re
import socket
import sys
import threading
from urllib.parse import urlsplit

from edge_server.config import ConfigError, EdgeSettings, load_settings
from edge_server.identity import edge_fingerprint, ip_or_none, station_mqtt
from examkiosk_wire import discovery
from examkiosk_wire.discovery import SERVICE_TYPE
from examkiosk_wire.program import program_parser, run_program
from examkiosk_wire.version import package_version

logger = logging.getLogger(__name__)


def instance_name(settings: EdgeSettings) -> str:
    name = settings.discovery.instance_name or f"examkiosk-{settings.centre}"
    return re.sub(r"[^A-Za-z0-9 ._-]", "-", name)[:63]


def txt_record(settings: EdgeSettings, fp: str) -> dict[str, str]:
    mqtt = station_mqtt(settings)
    return discovery.txt_record(centre=settings.centre, api=settings.public_url, mqtt_host=str(mqtt["host"]),
                                mqtt_port=int(mqtt["port"]), fp=fp, version=package_version(),
                                mqtt_tls=bool(mqtt["tls"]))


def service_addresses(settings: EdgeSettings) -> list[str]:
    """Addresses for the A/AAAA records: the configured interfaces, the API host, or every address."""
    found = [a for a in (ip_or_none(i) for i in settings.discovery.interfaces) if a]
    if found:
        return found
    host = ip_or_none(urlsplit(settings.public_url).hostname)
    if host and host not in ("0.0.0.0", "::"):
        return [host]
    import ifaddr

    addresses = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                addresses.append(ip.ip)
    return addresses or ["127.0.0.1"]


def api_port(settings: EdgeSettings) -> int:
    parts = urlsplit(settings.public_url)
    return parts.port or (443 if parts.scheme == "https" else 80)


class Announcer:
    """Registers the edge on zeroconf; :meth:`stop` unregisters and closes."""

    def __init__(self, settings: EdgeSettings):
        self.settings = settings
        self.fp = edge_fingerprint(settings)
        self._zc = None
        self._info = None

    def start(self) -> None:
        from zeroconf import InterfaceChoice, ServiceInfo, Zeroconf

        settings = self.settings
        name = instance_name(settings)
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            port=api_port(settings),
            properties=txt_record(settings, self.fp),
            server=f"{re.sub(r'[^A-Za-z0-9-]', '-', socket.gethostname())}.local.",
            parsed_addresses=service_addresses(settings),
        )
        zc = Zeroconf(interfaces=settings.discovery.interfaces or InterfaceChoice.All)
        try:
            zc.register_service(info, allow_name_change=True)
        except BaseException:
            zc.close()
            raise
        self._zc, self._info = zc, info
        logger.info("announced %s (centre %s, api %s, mqtt %s:%d, fp %s…)", info.name, settings.centre,
                    settings.public_url, settings.mqtt.host, settings.mqtt.port, self.fp[:16])

    def stop(self) -> None:
        zc, info = self._zc, self._info
        self._zc = self._info = None
        if zc is None:
            return
        try:
            if info is not None:
                zc.unregister_service(info)
        except Exception as exc:  # shutting down anyway
            logger.warning("could not unregister %s: %s", info.name if info else "?", exc)
        finally:
            zc.close()
        logger.info("announcement withdrawn")


def run(settings: EdgeSettings, stop: threading.Event) -> None:
    """Announce until ``stop`` is set; unregister in ``finally``."""
    announcer = Announcer(settings)
    announcer.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        announcer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = program_parser("python -m edge_server.daemon.announce", "Announce the edge over zeroconf until SIGTERM.")
    return run_program(parser, load_settings, lambda settings, _args, stop: run(settings, stop),
                       config_error=ConfigError, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
