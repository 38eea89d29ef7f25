"""What every central-storage backend offers the edge (``CentralStorage``), its error, and the checks they share.

Backends: ``DirectoryStorage`` and ``open_storage`` in ``edge_server.storage``, ``S3Storage`` in
``edge_server.s3_storage``.
"""
from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from examkiosk_wire.central import check_key

BLOCK = 1 << 20
Progress = Callable[[int], None] | None


class StorageError(Exception):
    """Central storage did not take or confirm an object; the message names the key and the cause."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_key(key: str) -> str:
    try:
        return check_key(key)
    except ValueError as exc:
        raise StorageError(str(exc)) from exc


def source_size(key: str, source: Path) -> int:
    try:
        return source.stat().st_size
    except OSError as exc:
        raise StorageError(f"{key}: cannot read the source {source}: {exc}") from exc


def source_changed(key: str, source: Path | str, expected: str, actual: str) -> StorageError:
    return StorageError(f"{key}: the source {source} does not match its checksum (expected SHA-256 {expected}, "
                        f"read {actual}); nothing was stored")


class CentralStorage(ABC):
    """Where an edge's attempts go. ``on_progress(n)``, when given, is called in the caller's
    thread with each increment of the object's bytes now in central storage (sent and accepted,
    or found there already), so the increments of one object add up to its size."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes_sent = 0  # bytes of object bodies (and parts) the store accepted: the uplink traffic
        self.bytes_read_back = 0  # bytes read back to confirm (or compare) an object
        self.objects_sent = 0
        self.objects_skipped = 0  # already stored with the same size and checksum

    def _count(self, sent: int = 0, read_back: int = 0, objects_sent: int = 0, skipped: int = 0) -> None:
        with self._lock:
            self.bytes_sent += sent
            self.bytes_read_back += read_back
            self.objects_sent += objects_sent
            self.objects_skipped += skipped

    @abstractmethod
    def put_file(self, key: str, source: Path, sha256: str, on_progress: Progress = None) -> None:
        """Store ``source`` under ``key`` unless an object with that size and checksum is there
        already. A source whose bytes do not hash to ``sha256`` is not stored (StorageError)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, on_progress: Progress = None) -> str:
        """Store bytes (unless stored already); returns their SHA-256."""

    @abstractmethod
    def checksum(self, key: str) -> str | None:
        """SHA-256 of the stored object read back in full, or None if absent."""

    def stored_sha256(self, key: str) -> str | None:
        """The SHA-256 the store vouches for (cheap where it can: S3 answers from ``HEAD``), or None if absent."""
        return self.checksum(key)
