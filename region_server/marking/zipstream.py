"""A ZIP archive written as a stream of byte chunks, never held whole in memory.

The stdlib ``zipfile`` writes to a non-seekable stream by putting each member's sizes and CRC in
a data descriptor after its data; here the stream is a sink that the generator empties after every
write, so memory holds one chunk at a time. Media is stored as it is (it is already compressed);
text members are deflated. Every member's SHA-256 and size are computed on the way through.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

Chunks = Callable[[], Iterable[bytes]]


@dataclass(frozen=True)
class Member:
    """One file of the archive: its path inside it and a callable giving its bytes in chunks."""

    path: str
    chunks: Chunks
    compress: bool = False


@dataclass
class Written:
    path: str
    size: int
    sha256: str


class _Sink(io.RawIOBase):
    """A write-only, non-seekable stream whose bytes are taken out by ``drain``."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _info(path: str, compress: bool, when: datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def stream_zip(members: Iterable[Member], written: list[Written] | None = None,
               now: datetime | None = None) -> Iterator[bytes]:
    """The archive of ``members``, in chunks. ``written`` (if given) gets each member's size and
    SHA-256 as it is finished, so a last member can list the ones before it."""
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for member in members:
            digest, size = hashlib.sha256(), 0
            with archive.open(_info(member.path, member.compress, when), "w", force_zip64=True) as out:
                for chunk in member.chunks():
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                    data = sink.drain()
                    if data:
                        yield data
            if written is not None:
                written.append(Written(member.path, size, digest.hexdigest()))
            data = sink.drain()
            if data:
                yield data
    tail = sink.drain()
    if tail:
        yield tail
