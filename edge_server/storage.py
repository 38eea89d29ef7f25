"""Central storage backends: a mounted directory (default, here) or any S3-compatible endpoint
(``edge_server.s3_storage``), chosen by ``open_storage`` from ``[storage]``.

Every ``put`` is idempotent (an object already stored with the same size and SHA-256 is left
alone), refuses a source whose bytes do not hash to the SHA-256 it is given, and is confirmed
before it returns without reading the object back where the store can vouch for it. The
directory hashes the bytes while it copies them, writes a temporary file, ``fsync``s it, checks
its size, renames it into place and ``fsync``s the directory. Each backend counts
``bytes_sent`` and ``bytes_read_back``.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from edge_server.central_storage import (
    BLOCK,
    CentralStorage,
    Progress,
    StorageError,
    checked_key,
    sha256_file,
    source_changed,
    source_size,
)
from edge_server.config import StorageSection
from edge_server.s3_storage import S3Storage

__all__ = ["CentralStorage", "DirectoryStorage", "S3Storage", "StorageError", "open_storage", "sha256_file"]


class DirectoryStorage(CentralStorage):
    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / checked_key(key)

    def checksum(self, key: str) -> str | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            sha = sha256_file(path)
        except OSError as exc:
            raise StorageError(f"cannot read {key} under {self.root}: {exc}") from exc
        self._count(read_back=path.stat().st_size)
        return sha

    def _holds(self, key: str, size: int, sha256: str) -> bool:
        """The stored file has this size and checksum (hashed only when the size matches)."""
        path = self._path(key)
        try:
            if not path.is_file() or path.stat().st_size != size:
                return False
        except OSError:
            return False
        return self.checksum(key) == sha256

    def _write(self, key: str, blocks: Iterable[bytes], sha256: str, source: Path | str, on_progress: Progress) -> None:
        """Write ``blocks`` to a temporary file, hashing them; in place only if they hash to ``sha256``."""
        path = self._path(key)
        tmp = path.with_name(path.name + ".tmp")
        digest, written = hashlib.sha256(), 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                for block in blocks:
                    fh.write(block)
                    digest.update(block)
                    written += len(block)
                fh.flush()
                os.fsync(fh.fileno())
                on_disk = os.fstat(fh.fileno()).st_size
            if on_disk != written:
                raise StorageError(f"{key}: {on_disk} bytes on disk under {self.root} after writing {written}")
            if digest.hexdigest() != sha256:
                raise source_changed(key, source, sha256, digest.hexdigest())
            os.replace(tmp, path)
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageError(f"cannot write {key} under {self.root}: {exc}") from exc
        except StorageError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._count(sent=written, objects_sent=1)
        if on_progress is not None and written:
            on_progress(written)

    def put_file(self, key: str, source: Path, sha256: str, on_progress: Progress = None) -> None:
        size = source_size(key, source)
        if self._holds(key, size, sha256):
            self._count(skipped=1)
            if on_progress is not None and size:
                on_progress(size)
            return

        def blocks() -> Iterator[bytes]:
            with open(source, "rb") as src:
                yield from iter(lambda: src.read(BLOCK), b"")

        self._write(key, blocks(), sha256, source, on_progress)

    def put_bytes(self, key: str, data: bytes, on_progress: Progress = None) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if self._holds(key, len(data), sha):
            self._count(skipped=1)
            if on_progress is not None and data:
                on_progress(len(data))
        else:
            self._write(key, [data], sha, "(bytes)", on_progress)
        return sha


def open_storage(section: StorageSection) -> CentralStorage:
    if section.backend == "s3":
        assert section.s3_bucket
        try:
            secret = section.s3_secret_key()
        except ValueError as exc:
            raise StorageError(str(exc)) from exc
        return S3Storage(section.s3_bucket, section.s3_endpoint_url, section.s3_region,
                         access_key=section.s3_access_key, secret_key=secret,
                         multipart_threshold=section.s3_multipart_threshold, part_size=section.s3_part_size,
                         concurrency=section.s3_concurrency)
    return DirectoryStorage(section.directory)
