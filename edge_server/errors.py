"""Domain errors of the edge server. The API turns them into ``{"error", "code"}`` JSON."""
from __future__ import annotations


class EdgeError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class NotFound(EdgeError):
    status = 404
    code = "not_found"


class Unauthorized(EdgeError):
    status = 401
    code = "unauthorized"


class Forbidden(EdgeError):
    status = 403
    code = "forbidden"


class Conflict(EdgeError):
    status = 409
    code = "conflict"


class TooEarly(EdgeError):
    status = 403
    code = "too_early"


class Closed(EdgeError):
    status = 403
    code = "closed"
