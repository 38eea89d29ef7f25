"""Fault 3: a TCP proxy between the station's uploader and the edge cuts connections mid-chunk.

The edge web app runs under gunicorn in a process of its own; the station's ``SegmentUploader``
(journal + tuspy, SHA-256 chunk checksums) talks to it only through ``tests/faults/proxy.py``,
which resets the connection three times per segment, each time inside a request body. After each
cut the upload is tried again from its journal row, as the station's upload thread does.

Asserted: every segment ends verified on the edge with its SHA-256 (database and file), and no
cut costs more than one chunk: the request-body bytes the proxy forwarded in a failed try, less
what the server kept, are at most ``chunk_bytes``; so a segment costs at most one chunk per cut.
"""
from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from edge_server import create_app
from edge_server.config import EdgeSettings, load_settings
from edge_server.extensions import db
from edge_server.models import Segment, SegmentStatus
from provisioning.demo import write_toml
from station.journal import Journal
from station.uploader import SegmentUploader
from tests.edge_server.conftest import SECRET_KEY, clean_environment, dispose_app, run_migrations
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.faults.proxy import CuttingProxy, upload_through_cuts
from tests.services import EdgeWebProc, free_port, start_edge_web

pytestmark = pytest.mark.faults

CHUNK = 64 * 1024  # the smallest chunk the station allows: every segment is several chunks
CUTS_PER_SEGMENT = 3
# Sizes: several whole chunks, a short last chunk, exactly one chunk, and a large segment.
SIZES = [5 * CHUNK, 4 * CHUNK + 12_345, CHUNK, 9 * CHUNK + 1]
NETWORK_ERRORS = (requests.RequestException, TusCommunicationError, TusUploadFailed, OSError)


@dataclass
class Edge:
    settings: EdgeSettings
    web: EdgeWebProc
    token: str
    attempt: str

    def offset(self, upload_url: str | None) -> int:
        """The server's offset of an upload, asked directly (not through the proxy)."""
        if not upload_url:
            return 0
        path = upload_url.split("/api/v1/uploads/", 1)[1]
        resp = requests.head(f"{self.web.url}/api/v1/uploads/{path}", timeout=10,
                             headers={"Authorization": f"Bearer {self.token}", "Tus-Resumable": "1.0.0"})
        return int(resp.headers["Upload-Offset"]) if resp.status_code == 200 else 0


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    """A migrated SQLite edge with one open attempt, served by gunicorn from its config file."""
    config = tmp_path / "edge.toml"
    database_url = f"sqlite:///{tmp_path / 'edge.db'}"
    write_toml(config, {
        "secret_key": SECRET_KEY, "database_url": database_url, "data_dir": str(tmp_path / "data"),
        "redis_url": f"redis://127.0.0.1:{free_port()}/0", "discovery": {"enabled": False},
        "storage": {"directory": str(tmp_path / "central")},
    })
    run_migrations(database_url, tmp_path / "data")
    with clean_environment():
        settings = load_settings(config)
    app = create_app(settings)
    try:
        with app.app_context():
            station, token = make_station(db.session, "c1", "st-cut")
            sitting = make_sitting(db.session, "c1", starts_in=-60)
            attempt = make_attempt(db.session, make_candidate(db.session, sitting), station).id
            db.session.commit()
    finally:
        dispose_app(app)
    web = start_edge_web(config, tmp_path / "gunicorn.log")
    try:
        yield Edge(settings, web, token, attempt)
    finally:
        web.stop()


def segments_on_edge(settings: EdgeSettings, attempt: str) -> dict[str, Segment]:
    app = create_app(settings)
    try:
        with app.app_context():
            rows = db.session.scalars(select(Segment).where(Segment.attempt_id == attempt)).all()
            for row in rows:
                db.session.expunge(row)
            return {row.name: row for row in rows}
    finally:
        dispose_app(app)


def test_cuts_mid_chunk_cost_at_most_one_chunk_each(edge: Edge, tmp_path: Path):
    rng = random.Random(20261125)
    journal = Journal(tmp_path / "station" / "journal.db")
    files: dict[str, bytes] = {}
    for seq, size in enumerate(SIZES):
        name = f"{edge.attempt}_main_{seq:05d}.mkv"
        data = os.urandom(size)
        path = tmp_path / "station" / name
        path.write_bytes(data)
        journal.add_segment(name=name, attempt_id=edge.attempt, camera="main", seq=seq, question=1, path=path,
                            started_at=1_800_000_000.0 + 3 * seq, ended_at=1_800_000_003.0 + 3 * seq, size=size,
                            sha256=hashlib.sha256(data).hexdigest())
        files[name] = data

    proxy = CuttingProxy(edge.web.port)
    uploader = SegmentUploader(journal, base_url=lambda: proxy.url, token=edge.token, chunk_bytes=CHUNK)
    reports = {}
    try:
        for name, data in files.items():
            # Three cut points inside the segment's bytes, so all three happen before it is done.
            points = sorted(rng.sample(range(1, len(data)), CUTS_PER_SEGMENT))
            gaps = [b - a for a, b in zip([0, *points], points)]
            reports[name] = upload_through_cuts(proxy, uploader, journal, edge.attempt, name, gaps, edge.offset,
                                                network_errors=NETWORK_ERRORS)
    finally:
        proxy.close()
        journal.close()

    # Every segment verified on the edge, with the SHA-256 the station declared, its file intact.
    rows = segments_on_edge(edge.settings, edge.attempt)
    assert sorted(rows) == sorted(files)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        assert rows[name].status == SegmentStatus.VERIFIED, name
        assert rows[name].sha256_actual == rows[name].sha256_declared == digest
        stored = edge.settings.recordings_dir / edge.attempt / name
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest

    for name, report in reports.items():
        size = len(files[name])
        # Every planned cut happened, mid-body, and each cost one failed try.
        assert report.cuts == CUTS_PER_SEGMENT, name
        assert report.retries == CUTS_PER_SEGMENT, name
        # A cut costs at most the chunk in flight; what the server had kept is never sent again.
        assert max(report.lost_body_per_cut) <= CHUNK, (name, report.lost_body_per_cut)
        assert report.body_forwarded - size == sum(report.lost_body_per_cut)
        assert report.body_forwarded - size <= CUTS_PER_SEGMENT * CHUNK
    # The cuts really landed inside chunks: some of them cost bytes.
    assert any(lost > 0 for r in reports.values() for lost in r.lost_body_per_cut)
