"""Station API under /api/v1: every call carries the station's bearer token (but ``/enrol``, see enrol.py).
Importing this package registers every route on ``bp``."""
from edge_server.api import enrol, messages, papers, routes, uploads  # noqa: F401
from edge_server.api.blueprint import bp

__all__ = ["bp"]
