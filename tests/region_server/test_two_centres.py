"""The proof: two edge servers of two centres (their own databases, SQLite and PostgreSQL, and data
directories) sync real attempts with the edge's own sync job into the SAME central storage (a Ceph
RADOS Gateway bucket, and a directory); the regional server, reading only central storage, indexes and
verifies both centres' attempts; a segment changed, one deleted and one added in the bucket are each
named by the next verification; a centre that syncs later appears on the next pass, nothing else touched."""
from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from edge_server import create_app as create_edge_app
from edge_server.extensions import db as edge_db
from edge_server.jobs import context as edge_job_context
from edge_server.jobs.sync import sync_attempt
from edge_server.models import Attempt as EdgeAttempt
from edge_server.models import Segment, SegmentStatus, SyncStatus
from edge_server.models import Sitting as EdgeSitting
from examkiosk_wire.central import segment_key
from examkiosk_wire.chain import GENESIS, ChainEntry, StationKey
from region_server.extensions import db
from region_server.models import Attempt, ChainVerdict, Problem, ProblemKind
from tests.edge_server.conftest import dispose_app as dispose_edge_app
from tests.edge_server.conftest import make_settings as edge_settings
from tests.edge_server.conftest import run_migrations as migrate_edge
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.region_server.helpers import drop_pg_database, index_all, pg_admin, pg_url, verify_all

SEGMENTS = 4  # per attempt: main and side, two each


@dataclass
class Edge:
    centre: str
    app: Any
    settings: Any


@dataclass
class Synced:
    centre: str
    attempt_id: str
    prefix: str
    segment_keys: list[str]


@pytest.fixture
def edges(tmp_path: Path, central, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Edge]]:
    """Centre ``north`` on SQLite, centre ``south`` on PostgreSQL, both writing to the test's central storage."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    storage = {k: str(v) for k, v in central.storage.items()}
    pg_name = f"ek_edge_{uuid.uuid4().hex}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{pg_name}"')
    made: dict[str, Edge] = {}
    try:
        for centre, url in (("north", f"sqlite:///{tmp_path / 'north.db'}"), ("south", pg_url(pg_name))):
            data_dir = tmp_path / f"edge-{centre}"
            migrate_edge(url, data_dir)
            settings = edge_settings(url, data_dir, centre=centre, centre_name=f"Centre {centre}", storage=storage)
            made[centre] = Edge(centre, create_edge_app(settings), settings)
        yield made
    finally:
        for edge in made.values():
            dispose_edge_app(edge.app)
        drop_pg_database(pg_name)


def record_signed_attempt(edge: Edge, station_key: StationKey, lot: int) -> str:
    """A finished attempt with verified segments on the edge's disk, chained and signed by its station."""
    now = datetime.now(timezone.utc)
    with edge.app.app_context():
        session = edge_db.session
        station, _ = make_station(session, edge.centre)
        station.public_key = station_key.public_b64
        sitting = session.get(EdgeSitting, f"{edge.centre}-am") or make_sitting(session, edge.centre,
                                                                                 f"{edge.centre}-am", starts_in=-900)
        attempt = make_attempt(session, make_candidate(session, sitting), station, lot=lot)
        attempt.finished_at = attempt.upload_complete_at = now
        prev = {"main": GENESIS, "side": GENESIS}
        names = []
        for seq in range(SEGMENTS):
            camera, camera_seq = ("main", seq // 2) if seq % 2 == 0 else ("side", seq // 2)
            name = f"{attempt.id}_{camera}_{camera_seq:05d}.mkv"
            data = os.urandom(30_000 + 101 * seq)
            path = edge.settings.recordings_dir / attempt.id / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            started = 1_000.0 + 10 * camera_seq
            entry = ChainEntry(attempt=attempt.id, camera=camera, seq=camera_seq, name=name, question=1,
                               started_at=started, ended_at=started + 10, size=len(data), sha256=digest,
                               prev=prev[camera])
            session.add(Segment(attempt_id=attempt.id, station_id=station.id, name=name, camera=camera,
                                seq=camera_seq, question=1, started_at=started, ended_at=started + 10,
                                length=len(data), offset=len(data), sha256_declared=digest, sha256_actual=digest,
                                status=SegmentStatus.VERIFIED, verified_at=now, prev_hash=prev[camera],
                                entry_hash=entry.digest(), signature=station_key.sign(entry.digest())))
            prev[camera] = entry.digest()
            names.append(name)
        attempt.expected_segments = sorted(names)
        session.commit()
        return attempt.id


def sync(edge: Edge, attempt_id: str, monkeypatch: pytest.MonkeyPatch) -> Synced:
    """The edge's own sync job, run in this process with the edge's app."""
    monkeypatch.setattr(edge_job_context, "_app", edge.app)
    result = sync_attempt(attempt_id)
    monkeypatch.setattr(edge_job_context, "_app", None)
    with edge.app.app_context():
        assert edge_db.session.get(EdgeAttempt, attempt_id).sync_status == SyncStatus.SYNCED
        names = sorted(edge_db.session.scalars(select(Segment.name).where(Segment.attempt_id == attempt_id)))
    prefix = result["prefix"]
    return Synced(edge.centre, attempt_id, prefix, [segment_key(prefix, n) for n in names])


def _verifications(app) -> dict[str, tuple[str, str]]:
    with app.app_context():
        return {a.prefix: (str(a.verification), str(a.chain_verdict)) for a in db.session.scalars(select(Attempt))}


def _open(app) -> set[tuple[str, str]]:
    with app.app_context():
        return {(p.kind, p.key) for p in db.session.scalars(select(Problem).where(Problem.resolved_at.is_(None)))}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("central", ["s3", "directory"], indirect=True)
def test_two_centres_sync_to_one_store_and_the_region_verifies_and_names_tampering(
        app, central, edges, station_key, tmp_path, monkeypatch):
    north, south = edges["north"], edges["south"]
    south_key = StationKey.load_or_create(tmp_path / "south-station.pem")
    n1 = sync(north, record_signed_attempt(north, station_key, 1), monkeypatch)
    n2 = sync(north, record_signed_attempt(north, station_key, 2), monkeypatch)
    s1_id = record_signed_attempt(south, south_key, 1)  # recorded, not synced yet: the south is offline

    first = index_all(app)
    assert first.centres == ["north"]
    verified = ("verified", str(ChainVerdict.OK))
    verify_all(app)
    assert _verifications(app) == {n1.prefix: verified, n2.prefix: verified}

    s1 = sync(south, s1_id, monkeypatch)  # a week later
    second = index_all(app)
    assert second.centres == ["north", "south"] and len(second.attempts) == 1  # only the new one read
    verify_all(app)
    assert _verifications(app) == {n1.prefix: verified, n2.prefix: verified, s1.prefix: verified}
    assert _open(app) == set()

    changed, deleted = n1.segment_keys[0], n2.segment_keys[1]
    body = bytearray(central.writer.read(changed))
    body[1000] ^= 0x01
    if central.backend == "s3":
        central.writer.put(changed, bytes(body), sha256_meta=False)
    else:
        central.writer.put(changed, bytes(body))
    central.writer.delete(deleted)
    added = s1.segment_keys[-1].replace("_00001.mkv", "_00002.mkv")
    central.writer.put(added, os.urandom(30_000))

    index_all(app)  # nothing changed in any manifest: nothing to index again
    found = _open(app)
    assert found == set()
    verify_all(app)
    assert _verifications(app) == {n1.prefix: ("damaged", "broken"), n2.prefix: ("damaged", "broken"),
                      s1.prefix: ("damaged", "broken")}
    found = _open(app)
    assert (ProblemKind.SHA_MISMATCH, changed) in found and (ProblemKind.CHAIN, changed) in found
    assert (ProblemKind.MISSING_OBJECT, deleted) in found and (ProblemKind.CHAIN, deleted) in found
    assert (ProblemKind.INSERTED_OBJECT, added) in found and (ProblemKind.CHAIN, added) in found
    assert {key for _kind, key in found} == {changed, deleted, added}
