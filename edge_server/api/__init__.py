"""Station API under /api/v1: every call carries the station's bearer token (but ``/enrol``, see enrol.py)."""
from flask import Blueprint

from examkiosk_wire.api import API_PREFIX

bp = Blueprint("api", __name__, url_prefix=API_PREFIX)

from edge_server.api import enrol, messages, papers, routes, uploads  # noqa: E402,F401
