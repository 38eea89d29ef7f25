"""Storage fixtures: an ``S3Storage`` on the session's Ceph RADOS Gateway, a fresh bucket each test."""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from edge_server.config import StorageSection
from edge_server.storage import S3Storage, open_storage
from tests.s3server import CephS3

MIB = 1024 * 1024
PART = 5 * MIB  # S3's smallest part: the tests' multipart files stay small


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def write_file(path: Path, size: int, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload(size, seed))
    return path


@dataclass
class Calls:
    """The S3 operations a client made, in order (botocore's ``before-call`` events)."""

    names: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, model, **kwargs) -> None:
        with self.lock:
            self.names.append(model.name)

    def take(self) -> list[str]:
        with self.lock:
            names, self.names = self.names, []
        return names


def watch(storage: S3Storage) -> Calls:
    calls = Calls()
    storage.client.meta.events.register("before-call.s3", calls.record)
    return calls


def storage_section(ceph_s3: CephS3, bucket: str, tmp_path: Path, **values) -> StorageSection:
    """Settings as an edge's TOML has them: the access key, and the secret in a file of its own."""
    settings = {"backend": "s3", "s3_endpoint_url": ceph_s3.endpoint, "s3_bucket": bucket,
                "s3_region": ceph_s3.region, "s3_access_key": ceph_s3.access_key,
                "s3_secret_key_file": ceph_s3.write_secret(tmp_path / "s3-secret"),
                "s3_multipart_threshold": PART, "s3_part_size": PART, "s3_concurrency": 3}
    return StorageSection(**{**settings, **values})


@pytest.fixture
def bucket(ceph_s3: CephS3) -> str:
    return ceph_s3.bucket()


@pytest.fixture
def s3(ceph_s3: CephS3, bucket: str, tmp_path: Path) -> S3Storage:
    storage = open_storage(storage_section(ceph_s3, bucket, tmp_path))
    assert isinstance(storage, S3Storage)
    return storage


@pytest.fixture
def progress() -> tuple[list[int], Callable[[int], None]]:
    seen: list[int] = []
    return seen, seen.append
