"""What can go wrong talking to the edge: unreachable (retry later), untrusted, or refused."""
from __future__ import annotations


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
