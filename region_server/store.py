"""The read side of central storage: a mounted directory or an S3 bucket, never written by the region.

Both backends answer the same calls:

- ``centres()`` the top-level prefixes (S3: ``Delimiter="/"``; directory: its subdirectories);
- ``list(prefix, start_after=None)`` every key under ``prefix`` in key order, after ``start_after``,
  as ``Listed(key, etag, size, last_modified)`` (ListObjectsV2 pages on S3);
- ``head(key)`` an ``ObjectInfo`` or None, ``get(key)`` the bytes, ``iter_chunks(key)`` the bytes in
  pieces, ``open_range(key, start, end)`` bytes ``start..end`` (inclusive) in pieces;
- ``presign(key, seconds)`` a URL a browser can read for S3, None for the directory.

Every key passes ``examkiosk_wire.central.check_key``; the directory backend refuses any path that
resolves outside its root (``..``, symlinks).
"""
from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from flask import Flask, current_app

from examkiosk_wire.central import SHA256_META, check_key
from region_server.config import SETTINGS_EXTENSION, StorageSection
from region_server.errors import ObjectMissing, StoreError

CHUNK = 1 << 20
STORE_EXTENSION = "examkiosk.region.store"


@dataclass(frozen=True)
class Listed:
    key: str
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: datetime
    sha256: str | None = None  # the writer's x-amz-meta-sha256, where the store keeps metadata


def _key(key: str) -> str:
    try:
        return check_key(key)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


class CentralStore(ABC):
    @abstractmethod
    def centres(self) -> list[str]:
        """The top-level prefixes (centre ids), sorted."""

    @abstractmethod
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[Listed]:
        """Every key that starts with ``prefix``, in key order, after ``start_after``."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """The object's size, ETag and time, or None if it is not there."""

    @abstractmethod
    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (inclusive) of the object, in pieces."""

    def iter_chunks(self, key: str, chunk: int = CHUNK) -> Iterator[bytes]:
        """The whole object, in pieces."""
        info = self.head(key)
        if info is None:
            raise ObjectMissing(f"{key} is not in central storage")
        if info.size == 0:
            return iter(())
        return self.open_range(key, 0, info.size - 1)

    def get(self, key: str) -> bytes:
        """The whole object (for manifests and frames: small objects)."""
        return b"".join(self.iter_chunks(key))

    def presign(self, key: str, seconds: int) -> str | None:
        """A URL a browser may GET for ``seconds``; None where the store has none (the directory)."""
        return None


class DirectoryStore(CentralStore):
    """A directory the edges' central storage is mounted at (read only)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._real_root = self.root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / _key(key)).resolve()
        if not path.is_relative_to(self._real_root):
            raise StoreError(f"{key} resolves outside the storage directory")
        return path

    def centres(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)
                          and not e.name.startswith("."))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list {self.root}: {exc}") from exc

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[Listed]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self._path(base) if base else self._real_root
        keys = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self._real_root)
            for name in filenames:
                if name.endswith(".tmp") or name.startswith("."):
                    continue  # a writer's file in progress
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append(key)
        keys.sort(key=lambda k: k.encode())  # S3's order: UTF-8 bytes
        for key in keys:
            try:
                stat = os.stat(self._real_root / key)
            except FileNotFoundError:
                continue  # removed while listing
            yield Listed(key, _dir_etag(stat), stat.st_size, _mtime(stat))

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot stat {key}: {exc}") from exc
        if not path.is_file():
            return None
        return ObjectInfo(key, _dir_etag(stat), stat.st_size, _mtime(stat))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectMissing(f"{key} is not in central storage") from None
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc

    def iter_chunks(self, key: str, chunk: int = CHUNK) -> Iterator[bytes]:
        return self.open_range(key, 0, (1 << 62) - 1)

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        path = self._path(key)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            raise ObjectMissing(f"{key} is not in central storage") from None
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc
        return _read_range(fh, start, end)


def _read_range(fh, start: int, end: int) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        left = end - start + 1
        while left > 0:
            block = fh.read(min(CHUNK, left))
            if not block:
                break
            left -= len(block)
            yield block


def _dir_etag(stat: os.stat_result) -> str:
    """A cheap change marker for a file (size and modification time), standing in for S3's ETag."""
    return f"{stat.st_size:x}-{stat.st_mtime_ns:x}"


def _mtime(stat: os.stat_result) -> datetime:
    return datetime.fromtimestamp(stat.st_mtime, timezone.utc)


class S3Store(CentralStore):
    """Any S3 endpoint through boto3 (imported lazily: an optional dependency, only needed when configured)."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, region: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, verify: bool | str = True,
                 client: Any = None):
        self.bucket = bucket
        if client is None:
            import boto3  # optional: only an S3 store needs it
            from botocore.config import Config  # optional, with boto3

            # Ceph 16 understands no flexible checksums: compute and check them only where required.
            config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"},
                            request_checksum_calculation="when_required",
                            response_checksum_validation="when_required", max_pool_connections=20)
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
                                  aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                  verify=verify, config=config)
        self.client = client

    def _error(self, key: str, exc: Exception) -> StoreError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectMissing(f"{key} is not in central storage")
        return StoreError(f"cannot read {key}: {exc}")

    def centres(self) -> list[str]:
        found = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Delimiter="/"):
                found += [p["Prefix"].rstrip("/") for p in page.get("CommonPrefixes", [])]
        except Exception as exc:
            raise StoreError(f"cannot list bucket {self.bucket}: {exc}") from exc
        return sorted(found)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[Listed]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            args["StartAfter"] = start_after
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**args):
                for item in page.get("Contents", []):
                    yield Listed(item["Key"], item["ETag"].strip('"'), item["Size"],
                                 item["LastModified"].astimezone(timezone.utc))
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot list {self.bucket}/{prefix}: {exc}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=_key(key))
        except StoreError:
            raise
        except Exception as exc:
            error = self._error(key, exc)
            if isinstance(error, ObjectMissing):
                return None
            raise error from exc
        return ObjectInfo(key, resp["ETag"].strip('"'), resp["ContentLength"],
                          resp["LastModified"].astimezone(timezone.utc), resp.get("Metadata", {}).get(SHA256_META))

    def _get_object(self, key: str, **args: Any) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=_key(key), **args)
        except StoreError:
            raise
        except Exception as exc:
            raise self._error(key, exc) from exc

    def get(self, key: str) -> bytes:
        """One GET (no HEAD first)."""
        return b"".join(_body_chunks(key, self._get_object(key)["Body"]))

    def iter_chunks(self, key: str, chunk: int = CHUNK) -> Iterator[bytes]:
        return _body_chunks(key, self._get_object(key)["Body"])

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=_key(key), Range=f"bytes={start}-{end}")
        except StoreError:
            raise
        except Exception as exc:
            raise self._error(key, exc) from exc
        return _body_chunks(key, resp["Body"])

    def presign(self, key: str, seconds: int) -> str | None:
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": _key(key)},
                                                  ExpiresIn=seconds)


def _body_chunks(key: str, body) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    except Exception as exc:
        raise StoreError(f"reading {key} failed: {exc}") from exc
    finally:
        body.close()


def sha256_of(chunks: Iterator[bytes]) -> tuple[str, int]:
    """SHA-256 and length of a stream of pieces."""
    digest, size = hashlib.sha256(), 0
    for block in chunks:
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def open_store(section: StorageSection) -> CentralStore:
    """The store the settings name."""
    if section.backend == "s3":
        assert section.s3_bucket
        return S3Store(section.s3_bucket, endpoint_url=section.s3_endpoint_url, region=section.s3_region,
                       access_key=section.s3_access_key, secret_key=section.secret_key(), verify=section.s3_verify)
    return DirectoryStore(section.directory)


def store_for(app: Flask | None = None) -> CentralStore:
    """The app's store, opened once per app from its settings."""
    app = app or current_app
    store = app.extensions.get(STORE_EXTENSION)
    if store is None:
        store = app.extensions[STORE_EXTENSION] = open_store(app.extensions[SETTINGS_EXTENSION].storage)
    return store
