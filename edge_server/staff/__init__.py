"""Staff and proctor pages under /staff."""
from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="../templates")

from edge_server.staff import routes  # noqa: E402,F401
from edge_server.staff import provisioning  # noqa: E402,F401  (after routes: it uses its helpers)
from edge_server.staff import messages  # noqa: E402,F401  (help chat and broadcasts)
from edge_server.staff import papers  # noqa: E402,F401  (sealed paper import)
from edge_server.staff import sittings  # noqa: E402,F401  (sittings, seat map)
from edge_server.staff import candidate_import  # noqa: E402,F401  (CSV + photo ZIP import)
from edge_server.staff import live  # noqa: E402,F401  (the dashboard's live stream and snapshots)
from edge_server.staff import station_admin  # noqa: E402,F401  (rename and seat on the Stations page)
