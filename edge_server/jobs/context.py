"""An application context for job functions, built once per worker process."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

_app = None


@contextmanager
def app_context() -> Iterator[tuple]:
    global _app
    from edge_server import create_app, settings_of
    from edge_server.extensions import db

    if _app is None:
        _app = create_app()
    with _app.app_context():
        try:
            yield _app, db, settings_of(_app)
        finally:
            db.session.remove()
