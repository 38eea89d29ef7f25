"""HTTPS to the edge, trusted by the pinned certificate fingerprint alone.

The edge's certificate is self-signed (``edge_server.tls``); no CA vouches for it. A station
trusts exactly the certificate whose SHA-256 it was enrolled with: urllib3 compares the
fingerprint of the certificate the server presents during every TLS handshake, before a byte of
the request (and so the station's token) is sent. Host names are not checked: the pin is
stronger than a name, and stations reach the edge by the address zeroconf gives.

Plain ``http://`` URLs still work (tests and development run the edge without TLS), but nothing
then proves whom the station talks to; the agent logs a warning once.
"""
from __future__ import annotations

import re
from typing import Any

import requests
from requests.adapters import HTTPAdapter

FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")


class UntrustedServer(requests.exceptions.SSLError):
    """The server's certificate is not the pinned one."""


def normalise_fingerprint(fp: str) -> str:
    """``AB:CD:…`` or ``abcd…`` to 64 lower-case hex digits; ValueError otherwise."""
    clean = fp.replace(":", "").strip().lower()
    if not FINGERPRINT_RE.match(clean):
        raise ValueError(f"not a SHA-256 fingerprint: {fp!r}")
    return clean


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
