"""Staff and proctor pages under /staff: importing this package registers every page on ``bp``."""
from edge_server.staff import (
    candidate_import,  # noqa: F401  (CSV + photo ZIP import)
    live,  # noqa: F401  (the dashboard's live stream and snapshots)
    messages,  # noqa: F401  (help chat and broadcasts)
    papers,  # noqa: F401  (sealed paper import)
    provisioning,  # noqa: F401  (the Stations page and enrolment codes)
    routes,  # noqa: F401
    sittings,  # noqa: F401  (sittings, seat map)
    station_admin,  # noqa: F401  (rename and seat on the Stations page)
)
from edge_server.staff.blueprint import bp

__all__ = ["bp"]
