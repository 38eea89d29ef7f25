"""The centre's edge server: the Flask app (``create_app`` in :mod:`edge_server.app`), its station API,
staff pages, the RQ jobs and the daemon. Unit files and the demo run it as
``edge_server:create_app()``."""
from edge_server.app import create_app

__all__ = ["create_app"]
