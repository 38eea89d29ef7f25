"""Domain errors of the regional server."""
from __future__ import annotations


class RegionError(Exception):
    """A refusal with a message a person can read (Chinese first, English second where shown)."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class StoreError(Exception):
    """Central storage could not be read (the message names the key)."""


class ObjectMissing(StoreError):
    """The object is not in central storage."""
