"""Staff and proctor pages under /staff."""
from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="../templates")

from edge_server.staff import (
    candidate_import,  # noqa: E402,F401  (CSV + photo ZIP import)
    live,  # noqa: E402,F401  (the dashboard's live stream and snapshots)
    messages,  # noqa: E402,F401  (help chat and broadcasts)
    papers,  # noqa: E402,F401  (sealed paper import)
    provisioning,  # noqa: E402,F401  (after routes: it uses its helpers)
    routes,  # noqa: E402,F401
    sittings,  # noqa: E402,F401  (sittings, seat map)
    station_admin,  # noqa: E402,F401  (rename and seat on the Stations page)
)
