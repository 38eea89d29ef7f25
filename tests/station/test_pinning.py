"""The station's HTTPS to the edge, pinned to the edge certificate's fingerprint.

The edge runs as in a centre: gunicorn serving HTTPS with the certificate ``flask tls-certificate``
(here ``edge_fingerprint``) made. The station's API client and its tus uploader talk to it only
while the certificate is the pinned one.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from edge_server import create_app
from edge_server.config import EdgeSettings, load_settings
from edge_server.daemon.announce import edge_fingerprint
from edge_server.extensions import db
from edge_server.models import Segment, SegmentStatus
from provisioning.demo import write_toml
from station.journal import Journal
from station.link import EdgeClient, EdgeUnavailable, EdgeUntrusted
from station.pinning import normalise_fingerprint
from station.uploader import SegmentUploader
from tests.edge_server.conftest import SECRET_KEY, clean_environment, dispose_app, run_migrations
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.services import EdgeWebProc, free_port, start_edge_web


@dataclass
class Edge:
    settings: EdgeSettings
    web: EdgeWebProc
    fp: str
    token: str
    attempt: str


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    tmp = tmp_path_factory.mktemp("pinned-edge")
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
    fp = edge_fingerprint(settings)
    app = create_app(settings)
    try:
        with app.app_context():
            station, token = make_station(db.session, "c1", "st-tls")
            sitting = make_sitting(db.session, "c1", starts_in=-60)
            attempt = make_attempt(db.session, make_candidate(db.session, sitting), station).id
            db.session.commit()
    finally:
        dispose_app(app)
    web = start_edge_web(config, tmp / "gunicorn.log", workers=1, certfile=settings.tls_path)
    try:
        yield Edge(settings, web, fp, token, attempt)
    finally:
        web.stop()


def journal_with_segment(tmp_path: Path, attempt: str, seq: int, size: int = 300_000) -> tuple[Journal, str]:
    journal = Journal(tmp_path / "journal.db")
    name = f"{attempt}_main_{seq:05d}.mkv"
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    journal.add_segment(name=name, attempt_id=attempt, camera="main", seq=seq, question=1, path=path,
                        started_at=1_800_000_000.0 + 3 * seq, ended_at=1_800_000_003.0 + 3 * seq, size=size,
                        sha256=hashlib.sha256(data).hexdigest())
    return journal, name


def segments_on_edge(edge: Edge) -> dict[str, SegmentStatus]:
    app = create_app(edge.settings)
    try:
        with app.app_context():
            rows = db.session.scalars(select(Segment).where(Segment.attempt_id == edge.attempt)).all()
            return {row.name: row.status for row in rows}
    finally:
        dispose_app(app)


def test_the_api_and_uploads_work_over_pinned_https(edge: Edge, tmp_path: Path):
    assert edge.web.url.startswith("https://")
    # The pin as `openssl x509 -fingerprint -sha256` prints it is accepted too.
    shown = ":".join(edge.fp[i:i + 2] for i in range(0, 64, 2)).upper()
    with EdgeClient(edge.web.url, edge.token, fingerprint=shown) as client:
        assert client.schedule()["station"] == "st-tls"

    journal, name = journal_with_segment(tmp_path, edge.attempt, seq=0)
    uploader = SegmentUploader(journal, base_url=lambda: edge.web.url, token=edge.token, chunk_bytes=128 * 1024,
                               fingerprint=edge.fp)
    (seg,) = journal.pending()
    uploader.upload(edge.web.url, seg)
    assert journal.pending() == []
    assert segments_on_edge(edge)[name] == SegmentStatus.VERIFIED


def test_another_certificate_is_refused_before_anything_is_sent(edge: Edge, tmp_path: Path):
    other = "ab" * 32
    with EdgeClient(edge.web.url, edge.token, fingerprint=other) as client:
        with pytest.raises(EdgeUntrusted, match="not the pinned one"):
            client.schedule()

    journal, name = journal_with_segment(tmp_path, edge.attempt, seq=7, size=1000)
    uploader = SegmentUploader(journal, base_url=lambda: edge.web.url, token=edge.token, chunk_bytes=128 * 1024,
                               fingerprint=other)
    (seg,) = journal.pending()
    with pytest.raises(Exception, match="not the pinned one"):
        uploader.upload(edge.web.url, seg)
    assert [s.name for s in journal.pending()] == [name]  # kept for a trusted edge
    assert name not in segments_on_edge(edge)  # the creation request never reached the edge


def test_without_a_pin_https_needs_a_ca_and_fails_closed(edge: Edge):
    with EdgeClient(edge.web.url, edge.token) as client:
        with pytest.raises(EdgeUnavailable, match="SSLError"):
            client.schedule()


def test_fingerprints_are_normalised_or_refused():
    fp = "AB:" * 31 + "CD"
    assert normalise_fingerprint(fp) == "ab" * 31 + "cd"
    for bad in ("", "ab" * 31, "zz" * 32, "ab" * 33):
        with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
            normalise_fingerprint(bad)
