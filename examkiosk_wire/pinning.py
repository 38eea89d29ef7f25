"""HTTPS and MQTT over TLS to the edge, trusted by the pinned certificate fingerprint alone.

The edge's certificate is self-signed (``edge_server.tls``); no CA vouches for it. A station
trusts exactly the certificate whose SHA-256 it was enrolled with: urllib3 compares the
fingerprint of the certificate the server presents during every TLS handshake, before a byte of
the request (and so the station's token) is sent. Host names are not checked: the pin is
stronger than a name, and stations reach the edge by the address zeroconf gives.

The broker's TLS listener presents the same certificate; ``pinned_tls_context`` makes paho check
it the same way, after the handshake and before the CONNECT packet (with the station's password).

Plain ``http://`` URLs still work (tests and development run the edge without TLS), but nothing
then proves whom the station talks to; the agent logs a warning once.
"""
from __future__ import annotations

import hashlib
import logging
import re
import ssl
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)

FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")


class UntrustedServer(requests.exceptions.SSLError):
    """The server's certificate is not the pinned one."""


def normalise_fingerprint(fp: str) -> str:
    """``AB:CD:…`` or ``abcd…`` to 64 lower-case hex digits; ValueError otherwise."""
    clean = fp.replace(":", "").strip().lower()
    if not FINGERPRINT_RE.match(clean):
        raise ValueError(f"not a SHA-256 fingerprint: {fp!r}")
    return clean


def fingerprint_of_der(der: bytes) -> str:
    """The pin of a certificate: SHA-256 (hex, lower case) of its DER encoding."""
    return hashlib.sha256(der).hexdigest()


def certificate_fingerprint(path: Path | str) -> str:
    """The pin of the PEM certificate in ``path`` (what ``openssl x509 -fingerprint -sha256`` shows)."""
    certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return fingerprint_of_der(certificate.public_bytes(serialization.Encoding.DER))


class PinnedAdapter(HTTPAdapter):
    """Verifies HTTPS peers by their certificate's SHA-256 instead of a CA chain."""

    def __init__(self, fingerprint: str, **kwargs: Any) -> None:
        self.fingerprint = normalise_fingerprint(fingerprint)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self.fingerprint
        super().init_poolmanager(*args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = False  # no CA chain: the fingerprint check in the handshake replaces it
        try:
            return super().send(request, **kwargs)
        except requests.exceptions.SSLError as exc:
            if "Fingerprints did not match" in str(exc):
                raise UntrustedServer(
                    f"{request.url}: the server's certificate is not the pinned one "
                    f"(pinned {self.fingerprint[:16]}…); refusing to talk to it", request=request) from exc
            raise


def pin(session: requests.Session, fingerprint: str | None) -> requests.Session:
    """Mount the pin on ``session`` for every https:// URL (no pin: CA verification as usual)."""
    if fingerprint:
        session.mount("https://", PinnedAdapter(fingerprint))
    return session


def pinned_session(fingerprint: str | None) -> requests.Session:
    return pin(requests.Session(), fingerprint)


class UntrustedBroker(ssl.SSLError):
    """The MQTT broker's certificate is not the pinned one (an OSError: paho retries, never sends CONNECT)."""


class _PinnedSSLSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        pinned = getattr(self.context, "fingerprint", None)
        if pinned is None:
            return
        der = self.getpeercert(binary_form=True) or b""
        if hashlib.sha256(der).hexdigest() != pinned:
            peer = self.getpeername()
            self.close()
            logger.error("MQTT broker %s:%s presents a certificate that is not the pinned one (pinned %s…); "
                         "refusing to log in to it", peer[0], peer[1], pinned[:16])
            raise UntrustedBroker(f"the MQTT broker's certificate is not the pinned one (pinned {pinned[:16]}…)")


class PinnedContext(ssl.SSLContext):
    """A client context that trusts the one certificate whose SHA-256 is ``fingerprint`` (checked by
    the socket right after the handshake); without a fingerprint it checks nothing."""

    sslsocket_class = _PinnedSSLSocket
    fingerprint: str | None


def pinned_tls_context(fingerprint: str | None) -> ssl.SSLContext:
    context = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # the pin replaces names; stations reach the edge by address
    context.verify_mode = ssl.CERT_NONE  # no CA chain for a self-signed certificate: the pin replaces it
    context.fingerprint = normalise_fingerprint(fingerprint) if fingerprint else None
    return context
