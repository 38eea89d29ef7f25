"""An application context for job functions, built once per worker process."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from edge_server.app import create_app
from edge_server.auth import settings
from edge_server.extensions import db

_app = None


@contextmanager
def app_context() -> Iterator[tuple]:
    global _app
    if _app is None:
        _app = create_app()
    with _app.app_context():
        try:
            yield _app, db, settings(_app)
        finally:
            db.session.remove()
