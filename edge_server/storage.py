"""Central storage backends: a mounted directory (default) or any S3-compatible endpoint.

``put`` is idempotent and confirms every object by reading its checksum back.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath

from edge_server.config import StorageSection


class StorageError(Exception):
    pass


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or any(p in ("..", ".", "") for p in parts):
        raise StorageError(f"bad object key {key!r}")
    return key


class CentralStorage(ABC):
    @abstractmethod
    def put_file(self, key: str, source: Path, sha256: str) -> None:
        """Store ``source`` under ``key`` unless an object with that checksum is there already."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> str:
        """Store bytes; returns their SHA-256."""

    @abstractmethod
    def checksum(self, key: str) -> str | None:
        """SHA-256 of the stored object read back, or None if absent."""


class DirectoryStorage(CentralStorage):
    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def checksum(self, key: str) -> str | None:
        path = self._path(key)
        return sha256_file(path) if path.exists() else None

    def _write(self, key: str, writer) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as fh:
                writer(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot write {key} under {self.root}: {exc}") from exc

    def put_file(self, key: str, source: Path, sha256: str) -> None:
        if self.checksum(key) == sha256:
            return
        def copy(fh):
            with open(source, "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 20)
        self._write(key, copy)
        if self.checksum(key) != sha256:
            raise StorageError(f"{key}: checksum read back from central storage does not match")

    def put_bytes(self, key: str, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if self.checksum(key) != sha:
            self._write(key, lambda fh: fh.write(data))
            if self.checksum(key) != sha:
                raise StorageError(f"{key}: checksum read back from central storage does not match")
        return sha


class S3Storage(CentralStorage):
    """Any S3 endpoint through boto3 (imported lazily: only needed when configured)."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, region: str | None = None):
        import boto3

        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def checksum(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=_check_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise StorageError(f"cannot read {key}: {exc}") from exc
        digest = hashlib.sha256()
        for block in obj["Body"].iter_chunks(1 << 20):
            digest.update(block)
        return digest.hexdigest()

    def put_file(self, key: str, source: Path, sha256: str) -> None:
        if self.checksum(key) == sha256:
            return
        try:
            self.client.upload_file(str(source), self.bucket, _check_key(key), ExtraArgs={"Metadata": {"sha256": sha256}})
        except Exception as exc:
            raise StorageError(f"cannot write {key}: {exc}") from exc
        if self.checksum(key) != sha256:
            raise StorageError(f"{key}: checksum read back from central storage does not match")

    def put_bytes(self, key: str, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if self.checksum(key) != sha:
            try:
                self.client.put_object(Bucket=self.bucket, Key=_check_key(key), Body=data)
            except Exception as exc:
                raise StorageError(f"cannot write {key}: {exc}") from exc
            if self.checksum(key) != sha:
                raise StorageError(f"{key}: checksum read back from central storage does not match")
        return sha


def open_storage(section: StorageSection) -> CentralStorage:
    if section.backend == "s3":
        assert section.s3_bucket
        return S3Storage(section.s3_bucket, section.s3_endpoint_url, section.s3_region)
    return DirectoryStorage(section.directory)
