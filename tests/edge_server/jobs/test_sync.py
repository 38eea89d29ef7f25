"""The sync job end to end: real Redis, a real RQ worker, both databases, directory and S3 storage
(the Ceph RADOS Gateway of the session, ``ceph_s3``).

The job opens its own app context from the configuration file named by ``EXAMKIOSK_EDGE_CONFIG``,
as it does under ``examkiosk-edge-worker``; the test writes that file and runs a burst
``SimpleWorker`` in this process on the same queue.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from edge_server import create_app
from edge_server.config import EdgeSettings, load_settings
from edge_server.extensions import db
from edge_server.jobs import context
from edge_server.models import Attempt, Segment, SegmentStatus, SyncStatus
from edge_server.work_queue import SYNC_RETRY, enqueue_sync
from examkiosk_wire import central
from provisioning.toml_file import write_toml
from tests.edge_server.conftest import SECRET_KEY, dispose_app
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station

CENTRE = "c1"
LOT = 7
CANDIDATE_NAME = "张伟"
TICKET_NO = "20249876"
ID_NUMBER = "110101199003074514"


# --- the edge as the worker sees it -------------------------------------------------------------

@dataclass
class SyncEdge:
    """Config file, database and queue shared by the test and the job it runs."""

    tmp_path: Path
    config_path: Path
    values: dict[str, Any]
    settings: EdgeSettings
    app: Any  # the test's own app, for fixtures and assertions
    redis: Redis
    queue: Queue
    workers: list[SimpleWorker] = field(default_factory=list)

    def configure(self, **sections: dict[str, Any]) -> EdgeSettings:
        """Rewrite the config file (e.g. ``storage={...}``); the next job builds a fresh app from it."""
        self.values.update(sections)
        write_toml(self.config_path, self.values)
        forget_job_app()
        self.settings = load_settings(self.config_path)
        return self.settings

    def run_worker(self) -> None:
        """A burst worker: runs what is queued now, not what is scheduled for a retry."""
        worker = SimpleWorker([self.queue], connection=self.redis)
        self.workers.append(worker)
        worker.work(burst=True, with_scheduler=False)

    def job(self, attempt_id: str) -> Job:
        return Job.fetch(f"sync-{attempt_id}", connection=self.redis)

    def attempt(self, attempt_id: str) -> Attempt:
        with self.app.app_context():
            attempt = db.session.get(Attempt, attempt_id)
            db.session.expunge(attempt)
            return attempt


def forget_job_app() -> None:
    """Drop the app the job context built, so the next job reads the config file again."""
    if context._app is not None:
        dispose_app(context._app)
        context._app = None


@pytest.fixture
def edge(db_url: str, tmp_path: Path, redis_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncEdge]:
    for key in list(os.environ):
        if (key.startswith("EXAMKIOSK_") and key != "EXAMKIOSK_TEST_POSTGRES_URL") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    config_path = tmp_path / "edge.toml"
    monkeypatch.setenv("EXAMKIOSK_EDGE_CONFIG", str(config_path))
    monkeypatch.setattr(context, "_app", None)
    values: dict[str, Any] = {
        "secret_key": SECRET_KEY,
        "database_url": db_url,
        "data_dir": str(tmp_path / "data"),
        "redis_url": redis_server.url,
        # The Redis server lives for the session: a queue of the test's own.
        "queue_name": f"test-sync-{uuid.uuid4().hex[:12]}",
        "testing": True,
        "discovery": {"enabled": False},
        "storage": {"directory": str(tmp_path / "central")},
    }
    write_toml(config_path, values)
    settings = load_settings(config_path)
    app = create_app(settings)
    redis = Redis.from_url(redis_server.url)
    edge = SyncEdge(tmp_path, config_path, values, settings, app, redis, Queue(settings.queue_name, connection=redis))
    try:
        yield edge
    finally:
        forget_job_app()
        dispose_app(app)
        redis.close()


# --- test data ----------------------------------------------------------------------------------

@dataclass
class Recorded:
    attempt_id: str
    sitting_id: str
    files: dict[str, bytes]  # segment name -> bytes on the edge

    @property
    def prefix(self) -> str:
        return f"{CENTRE}/{self.sitting_id}/lot-{LOT:03d}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/segments/{name}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_recorded_attempt(edge: SyncEdge, segments: int = 3) -> Recorded:
    """A finished attempt with a lot and ``segments`` verified segments on disk, as uploads leave them."""
    now = datetime.now(timezone.utc)
    with edge.app.app_context():
        station, _ = make_station(db.session, CENTRE)
        sitting = make_sitting(db.session, CENTRE, starts_in=-900)
        candidate = make_candidate(db.session, sitting, name=CANDIDATE_NAME, ticket_no=TICKET_NO,
                                   id_number=ID_NUMBER)
        attempt = make_attempt(db.session, candidate, station, lot=LOT)
        attempt.finished_at = now
        attempt.upload_complete_at = now
        files: dict[str, bytes] = {}
        for seq in range(segments):
            camera = "main" if seq % 2 == 0 else "side"
            name = f"{attempt.id}_{camera}_{seq:05d}.mkv"
            data = os.urandom(40_000 + 997 * seq)
            path = edge.settings.recordings_dir / attempt.id / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            digest = sha256(data)
            db.session.add(Segment(
                attempt_id=attempt.id, station_id=station.id, name=name, camera=camera, seq=seq,
                question=seq // 2 + 1, started_at=3.0 * seq, ended_at=3.0 * (seq + 1), length=len(data),
                offset=len(data), sha256_declared=digest, sha256_actual=digest, status=SegmentStatus.VERIFIED,
                verified_at=now,
            ))
            files[name] = data
        attempt.expected_segments = sorted(files)
        db.session.commit()
        return Recorded(attempt.id, sitting.id, files)


def assert_central_copy(read: Callable[[str], bytes | None], recorded: Recorded) -> dict:
    """Every segment under the lot with its bytes, and a manifest whose checksums match what is stored."""
    for name, data in recorded.files.items():
        assert read(recorded.key(name)) == data, name
    raw = read(f"{recorded.prefix}/manifest.json")
    assert raw is not None, "no manifest.json"
    manifest = json.loads(raw)
    parsed = central.parse_attempt_manifest(f"{recorded.prefix}/manifest.json", raw)  # what the region reads
    assert parsed.attempt == recorded.attempt_id and len(parsed.objects) == len(recorded.files)
    assert manifest["centre"] == CENTRE and manifest["sitting"] == recorded.sitting_id
    assert manifest["lot"] == LOT and manifest["attempt"] == recorded.attempt_id
    assert {o["key"] for o in manifest["objects"]} == {recorded.key(n) for n in recorded.files}
    for obj in manifest["objects"]:
        stored = read(obj["key"])
        assert stored is not None and sha256(stored) == obj["sha256"], obj["key"]
        assert obj["size"] == len(stored)
    text = raw.decode()
    for secret in (CANDIDATE_NAME, TICKET_NO, ID_NUMBER):
        assert secret not in text, f"manifest leaks {secret!r}"
    return manifest


def read_directory(root: Path) -> Callable[[str], bytes | None]:
    def read(key: str) -> bytes | None:
        path = root / key
        return path.read_bytes() if path.is_file() else None
    return read


# --- directory storage --------------------------------------------------------------------------

def test_sync_copies_segments_and_manifest(edge: SyncEdge):
    recorded = make_recorded_attempt(edge, segments=3)

    job = enqueue_sync(edge.settings, recorded.attempt_id)
    assert job.id == f"sync-{recorded.attempt_id}"
    edge.run_worker()

    job = edge.job(recorded.attempt_id)
    assert job.get_status() == "finished", job.latest_result()
    assert job.return_value()["objects"] == 3
    assert_central_copy(read_directory(edge.settings.storage.directory), recorded)
    attempt = edge.attempt(recorded.attempt_id)
    assert attempt.sync_status == SyncStatus.SYNCED
    assert attempt.synced_at is not None and attempt.sync_error == ""


def test_sync_is_idempotent_and_queued_once(edge: SyncEdge):
    recorded = make_recorded_attempt(edge, segments=3)

    enqueue_sync(edge.settings, recorded.attempt_id)
    enqueue_sync(edge.settings, recorded.attempt_id)
    assert edge.queue.job_ids == [f"sync-{recorded.attempt_id}"]
    edge.run_worker()
    assert edge.job(recorded.attempt_id).get_status() == "finished"

    root = edge.settings.storage.directory
    manifest_path = root / recorded.prefix / "manifest.json"
    manifest_bytes = manifest_path.read_bytes()
    mtimes = {name: (root / recorded.key(name)).stat().st_mtime_ns for name in recorded.files}
    first_synced_at = edge.attempt(recorded.attempt_id).synced_at

    enqueue_sync(edge.settings, recorded.attempt_id)
    edge.run_worker()

    assert edge.job(recorded.attempt_id).get_status() == "finished"
    assert {name: (root / recorded.key(name)).stat().st_mtime_ns for name in recorded.files} == mtimes
    assert manifest_path.read_bytes() == manifest_bytes
    assert sorted(p.name for p in (root / recorded.prefix / "segments").iterdir()) == sorted(recorded.files)
    attempt = edge.attempt(recorded.attempt_id)
    assert attempt.sync_status == SyncStatus.SYNCED and attempt.synced_at >= first_synced_at


def test_unwritable_storage_fails_and_retries(edge: SyncEdge):
    recorded = make_recorded_attempt(edge, segments=2)
    blocker = edge.tmp_path / "blocker"
    blocker.write_text("a file where central storage should be a directory\n")
    edge.configure(storage={"directory": str(blocker / "central")})

    enqueue_sync(edge.settings, recorded.attempt_id)
    edge.run_worker()

    job = edge.job(recorded.attempt_id)
    assert job.get_status() == "scheduled"
    assert job.retries_left == SYNC_RETRY.max - 1
    assert job.id in edge.queue.scheduled_job_registry
    attempt = edge.attempt(recorded.attempt_id)
    assert attempt.sync_status == SyncStatus.FAILED
    assert "cannot write" in attempt.sync_error and str(blocker) in attempt.sync_error

    # The mount is fixed; the retry comes due (what RQ's scheduler does at that time).
    edge.configure(storage={"directory": str(edge.tmp_path / "central")})
    edge.queue.scheduled_job_registry.requeue(job)
    edge.run_worker()

    job = edge.job(recorded.attempt_id)
    assert job.get_status() == "finished"
    assert job.retries_left == SYNC_RETRY.max - 1
    assert_central_copy(read_directory(edge.settings.storage.directory), recorded)
    attempt = edge.attempt(recorded.attempt_id)
    assert attempt.sync_status == SyncStatus.SYNCED and attempt.sync_error == ""


def test_sync_again_after_retention_leaves_the_central_copy_alone(edge: SyncEdge):
    from edge_server import retention
    from edge_server.storage import open_storage

    recorded = make_recorded_attempt(edge, segments=3)
    enqueue_sync(edge.settings, recorded.attempt_id)
    edge.run_worker()
    root = edge.settings.storage.directory
    manifest = (root / recorded.prefix / "manifest.json").read_bytes()
    synced_at = edge.attempt(recorded.attempt_id).synced_at

    # Retention (keep 0) removes the edge's copy once central storage confirms it.
    edge.configure(retention={"keep_hours": 0})
    with edge.app.app_context():
        done = retention.sweep(db.session, edge.settings, open_storage(edge.settings.storage))
    assert done["deleted"] == 3 and not (edge.settings.recordings_dir / recorded.attempt_id).exists()

    # A sync queued again finds nothing to do, and leaves central storage as it was.
    enqueue_sync(edge.settings, recorded.attempt_id)
    edge.run_worker()
    assert edge.job(recorded.attempt_id).get_status() == "finished"
    assert (root / recorded.prefix / "manifest.json").read_bytes() == manifest
    assert_central_copy(read_directory(root), recorded)
    attempt = edge.attempt(recorded.attempt_id)
    assert attempt.sync_status == SyncStatus.SYNCED and attempt.synced_at == synced_at


def test_segment_changed_after_verification_is_not_copied(edge: SyncEdge, caplog: pytest.LogCaptureFixture):
    recorded = make_recorded_attempt(edge, segments=3)
    bad = sorted(recorded.files)[1]
    path = edge.settings.recordings_dir / recorded.attempt_id / bad
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    enqueue_sync(edge.settings, recorded.attempt_id)
    edge.run_worker()

    # RQ keeps no result for a run it will retry: the message is on the attempt and in the log.
    assert edge.job(recorded.attempt_id).get_status() == "scheduled"
    assert any(r.name == "edge_server.jobs.sync" and bad in r.getMessage() for r in caplog.records)
    attempt = edge.attempt(recorded.attempt_id)
    assert attempt.sync_status == SyncStatus.FAILED
    assert bad in attempt.sync_error and "checksum" in attempt.sync_error
    root = edge.settings.storage.directory
    assert not (root / recorded.key(bad)).exists()
    assert not (root / recorded.key(bad)).with_name(bad + ".tmp").exists()
    assert not (root / recorded.prefix / "manifest.json").exists()


# --- S3 storage (the Ceph RADOS Gateway the session starts) ---------------------------------------

@pytest.fixture
def s3_bucket(ceph_s3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A fresh versioned bucket (a rewrite of an object would show as a second version); no AWS
    settings from the developer's environment."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    client = ceph_s3.client()
    name = ceph_s3.bucket()
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return client, name


def test_sync_to_s3(edge: SyncEdge, s3_bucket, ceph_s3):
    from botocore.exceptions import ClientError

    client, bucket = s3_bucket
    edge.configure(storage={"backend": "s3", "s3_endpoint_url": ceph_s3.endpoint, "s3_bucket": bucket,
                            "s3_region": ceph_s3.region, "s3_access_key": ceph_s3.access_key,
                            "s3_secret_key_file": str(ceph_s3.write_secret(edge.tmp_path / "s3-secret"))})
    recorded = make_recorded_attempt(edge, segments=3)

    def read(key: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise

    enqueue_sync(edge.settings, recorded.attempt_id)
    edge.run_worker()

    job = edge.job(recorded.attempt_id)
    assert job.get_status() == "finished", job.latest_result().exc_string
    assert_central_copy(read, recorded)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=recorded.prefix + "/")
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(
        [recorded.key(n) for n in recorded.files] + [f"{recorded.prefix}/manifest.json"])
    head = client.head_object(Bucket=bucket, Key=recorded.key(sorted(recorded.files)[0]))
    assert head["Metadata"]["sha256"] == sha256(recorded.files[sorted(recorded.files)[0]])
    sitting_key = f"{CENTRE}/{recorded.sitting_id}/sitting.json"
    central.parse_sitting_manifest(sitting_key, read(sitting_key))
    assert edge.attempt(recorded.attempt_id).sync_status == SyncStatus.SYNCED

    # Again: nothing is rewritten (one version per object, the sitting's documents too), and the job still succeeds.
    def versions() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for v in client.list_object_versions(Bucket=bucket, Prefix=f"{CENTRE}/{recorded.sitting_id}/")["Versions"]:
            out.setdefault(v["Key"], []).append(v["VersionId"])
        return out

    before = versions()
    assert sitting_key in before and all(len(ids) == 1 for ids in before.values()), before
    enqueue_sync(edge.settings, recorded.attempt_id)
    edge.run_worker()
    assert edge.job(recorded.attempt_id).get_status() == "finished"
    assert versions() == before
