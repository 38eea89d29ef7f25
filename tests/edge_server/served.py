"""An edge as a centre runs it, for tests that talk to it over real sockets: a migrated SQLite
database, the web app under gunicorn from its config file (optionally HTTPS with the edge's own
certificate), one station with its token and one open attempt."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from edge_server import create_app
from edge_server.config import EdgeSettings, load_settings
from edge_server.extensions import db
from edge_server.identity import edge_fingerprint
from edge_server.models import Segment
from examkiosk_wire.pinning import pinned_session
from provisioning.toml_file import write_toml
from tests.edge_server.conftest import SECRET_KEY, clean_environment, dispose_app, run_migrations
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.services import EdgeWebProc, free_port, start_edge_web


@dataclass
class ServedEdge:
    settings: EdgeSettings
    web: EdgeWebProc
    token: str
    attempt: str
    fp: str | None  # the certificate's fingerprint when it serves HTTPS

    def offset(self, upload_url: str | None) -> int:
        """The server's offset of an upload, asked directly (not through any proxy)."""
        if not upload_url:
            return 0
        path = upload_url.split("/api/v1/uploads/", 1)[1]
        resp = pinned_session(self.fp).head(
            f"{self.web.url}/api/v1/uploads/{path}", timeout=10,
            headers={"Authorization": f"Bearer {self.token}", "Tus-Resumable": "1.0.0"})
        return int(resp.headers["Upload-Offset"]) if resp.status_code == 200 else 0

    def segments(self) -> dict[str, Segment]:
        """The attempt's segment rows, by name (detached)."""
        app = create_app(self.settings)
        try:
            with app.app_context():
                rows = db.session.scalars(select(Segment).where(Segment.attempt_id == self.attempt)).all()
                for row in rows:
                    db.session.expunge(row)
                return {row.name: row for row in rows}
        finally:
            dispose_app(app)


@contextlib.contextmanager
def served_edge(tmp: Path, station_id: str, *, tls: bool = False, workers: int = 2) -> Iterator[ServedEdge]:
    config = tmp / "edge.toml"
    database_url = f"sqlite:///{tmp / 'edge.db'}"
    write_toml(config, {
        "secret_key": SECRET_KEY, "database_url": database_url, "data_dir": str(tmp / "data"),
        "redis_url": f"redis://127.0.0.1:{free_port()}/0", "discovery": {"enabled": False},
        "storage": {"directory": str(tmp / "central")},
    })
    run_migrations(database_url, tmp / "data")
    with clean_environment():
        settings = load_settings(config)
    fp = edge_fingerprint(settings) if tls else None
    app = create_app(settings)
    try:
        with app.app_context():
            station, token = make_station(db.session, "c1", station_id)
            sitting = make_sitting(db.session, "c1", starts_in=-60)
            attempt = make_attempt(db.session, make_candidate(db.session, sitting), station).id
            db.session.commit()
    finally:
        dispose_app(app)
    web = start_edge_web(config, tmp / "gunicorn.log", workers=workers, certfile=settings.tls_path if tls else None)
    try:
        yield ServedEdge(settings, web, token, attempt, fp)
    finally:
        web.stop()
