"""The edge's identity: its TLS certificate, generated once at setup, and the fingerprint every station pins.

One PEM file (mode 0600) holds an ECDSA P-256 private key and a self-signed certificate valid for
ten years; gunicorn serves HTTPS with it (``--certfile`` alone: the key is read from the same file).
The edge's fingerprint is the SHA-256 of the certificate (DER), the figure browsers and
``openssl x509 -noout -fingerprint -sha256`` show. It is announced over zeroconf (TXT ``fp``),
its first group is embedded in enrolment codes, and stations pin it: a server whose certificate
has another fingerprint is refused on every connection, whatever it announces.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_server.config import EdgeSettings
from examkiosk_wire.files import write_private
from examkiosk_wire.pinning import certificate_fingerprint

logger = logging.getLogger(__name__)

VALID_DAYS = 3650


def _names(hostnames: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for name in dict.fromkeys(h for h in hostnames if h):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    return names


def make_certificate(common_name: str, hostnames: list[str]) -> bytes:
    """A new key and self-signed certificate, as one PEM (key first)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "examkiosk"),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_names(hostnames)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def ensure_certificate(path: Path, common_name: str, hostnames: list[str] | None = None) -> Path:
    """Create the edge's key + certificate file (mode 0600) unless it exists; return its path.

    Safe when the web app and the daemon start together: the file appears whole or not at all,
    and the first one to link it wins.
    """
    path = Path(path)
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            logger.warning("TLS key file %s had mode %o; setting 0600", path, mode)
            os.chmod(path, 0o600)
        return path
    names = [socket.gethostname(), "localhost", "127.0.0.1", *(hostnames or [])]
    try:
        write_private(path, make_certificate(common_name, names), replace=False)
    except FileExistsError:
        return path  # another process made it first: use theirs
    logger.info("created the edge's TLS certificate %s (fingerprint %s)", path, certificate_fingerprint(path))
    return path


def edge_fingerprint(settings: EdgeSettings) -> str:
    """SHA-256 hex of the edge's TLS certificate, which is created at first use."""
    host = urlsplit(settings.public_url).hostname
    path = ensure_certificate(settings.tls_path, f"examkiosk edge {settings.centre}", [host] if host else [])
    return certificate_fingerprint(path)


def announced_mqtt_host(host: str) -> str:
    """The broker's host as stations should read it: the edge's own login usually goes to the broker
    on loopback, which to a station means itself, so that becomes "" (the announcement's address)."""
    address = ip_or_none(host)
    loopback = host == "localhost" or (address is not None and ipaddress.ip_address(address).is_loopback)
    return "" if loopback else host


def station_mqtt(settings: EdgeSettings) -> dict[str, object]:
    """Where stations reach the broker: its TLS listener when there is one (same as in the announcement)."""
    mqtt = settings.mqtt
    return {"host": announced_mqtt_host(mqtt.host), "port": mqtt.tls_port or mqtt.port, "tls": bool(mqtt.tls_port)}


def ip_or_none(value: str | None) -> str | None:
    """``value`` as a normalised IP address (brackets of an IPv6 host dropped); None for a name."""
    try:
        return str(ipaddress.ip_address((value or "").strip("[]")))
    except ValueError:
        return None
