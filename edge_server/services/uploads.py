"""Recording segments received over tus 1.0 (core, creation, checksum, termination).

The part file on disk is the truth for the offset; the database mirrors it. A segment is
``verified`` only when the SHA-256 of the whole file equals the one the station declared.
"""
from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy.orm import Session

from edge_server.errors import Conflict, EdgeError, NotFound
from edge_server.models import Attempt, Segment, SegmentStatus, Station, utcnow
from edge_server.services import attempts as attempt_service

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,termination"
CHECKSUM_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ChecksumMismatch(EdgeError):
    status = 460
    code = "checksum_mismatch"


class TooLarge(EdgeError):
    status = 413
    code = "too_large"


def parse_metadata(header: str | None) -> dict[str, str]:
    """Decode ``Upload-Metadata``: comma-separated ``key base64value`` pairs."""
    result: dict[str, str] = {}
    if not header:
        return result
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if not parts[0] or len(parts) > 2:
            raise EdgeError("Upload-Metadata is malformed", code="bad_metadata")
        key = parts[0]
        try:
            value = base64.b64decode(parts[1], validate=True).decode() if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise EdgeError(f"Upload-Metadata value of {key!r} is not base64", code="bad_metadata") from exc
        result[key] = value
    return result


def _int_or_none(value: str | None, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise EdgeError(f"{what} must be an integer", code="bad_metadata") from exc


def _float_or_none(value: str | None, what: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise EdgeError(f"{what} must be a number", code="bad_metadata") from exc


def create_upload(session: Session, station: Station, *, length_header: str | None, metadata_header: str | None,
                  max_upload_bytes: int, uploads_dir: Path) -> Segment:
    """POST: register a segment and create its empty part file."""
    if length_header is None:
        raise EdgeError("Upload-Length is required (deferred length is not supported)", code="length_required")
    length = _int_or_none(length_header, "Upload-Length")
    if length is None or length < 0:
        raise EdgeError("Upload-Length must be a non-negative integer", code="bad_length")
    if length > max_upload_bytes:
        raise TooLarge(f"Upload-Length {length} exceeds the maximum of {max_upload_bytes} bytes")
    meta = parse_metadata(metadata_header)
    for key in ("attempt", "name", "sha256"):
        if not meta.get(key):
            raise EdgeError(f"Upload-Metadata must carry {key!r}", code="bad_metadata")
    if not SAFE_NAME.match(meta["name"]) or ".." in meta["name"]:
        raise EdgeError("segment name has characters that are not allowed", code="bad_name")
    sha = meta["sha256"].lower()
    if not SHA256_HEX.match(sha):
        raise EdgeError("sha256 must be 64 hex digits", code="bad_metadata")
    attempt = attempt_service.get_attempt(session, station, meta["attempt"])
    chain = _checked_chain_fields(station, meta, length, sha)
    existing = session.query(Segment).filter_by(attempt_id=attempt.id, name=meta["name"]).one_or_none()
    if existing is not None:
        if existing.status == SegmentStatus.VERIFIED:
            if existing.sha256_declared == sha:
                return existing
            raise Conflict("a verified segment with this name already exists", code="segment_exists")
        # A retry of an unfinished or corrupt upload starts over.
        _part_path(uploads_dir, existing).unlink(missing_ok=True)
        session.delete(existing)
        session.flush()
    segment = Segment(
        attempt_id=attempt.id,
        station_id=station.id,
        name=meta["name"],
        camera=meta.get("camera", "main") or "main",
        seq=_int_or_none(meta.get("seq"), "seq") or 0,
        question=_int_or_none(meta.get("question"), "question"),
        started_at=_float_or_none(meta.get("started_at"), "started_at"),
        ended_at=_float_or_none(meta.get("ended_at"), "ended_at"),
        length=length,
        sha256_declared=sha,
        **chain,
    )
    session.add(segment)
    session.flush()
    uploads_dir.mkdir(parents=True, exist_ok=True)
    _part_path(uploads_dir, segment).touch()
    return segment


def _checked_chain_fields(station: Station, meta: dict[str, str], length: int, sha: str) -> dict[str, str]:
    """A station with a registered key must send each segment as a correctly signed chain entry."""
    from station.chain import ChainEntry, verify

    if station.public_key is None:
        return {"prev_hash": meta.get("prev", ""), "entry_hash": meta.get("entry", ""), "signature": meta.get("sig", "")}
    if not meta.get("entry") or not meta.get("sig"):
        raise EdgeError("this station signs its segments: Upload-Metadata must carry entry and sig",
                        code="segment_unsigned")
    entry = ChainEntry(
        attempt=meta["attempt"], camera=meta.get("camera", "main") or "main",
        seq=_int_or_none(meta.get("seq"), "seq") or 0, name=meta["name"],
        question=_int_or_none(meta.get("question"), "question"),
        started_at=_float_or_none(meta.get("started_at"), "started_at") or 0.0,
        ended_at=_float_or_none(meta.get("ended_at"), "ended_at") or 0.0,
        size=length, sha256=sha, prev=meta.get("prev", ""),
    )
    if entry.digest() != meta["entry"]:
        raise EdgeError("the chain entry does not match the segment's metadata", code="chain_entry_mismatch")
    if not verify(station.public_key, meta["entry"], meta["sig"]):
        raise EdgeError("the chain entry's signature is not the station's", code="chain_signature_invalid")
    return {"prev_hash": entry.prev, "entry_hash": meta["entry"], "signature": meta["sig"]}


def get_upload(session: Session, station: Station, upload_id: str) -> Segment:
    segment = session.get(Segment, upload_id)
    if segment is None or segment.station_id != station.id:
        raise NotFound("no such upload", code="upload_unknown")
    return segment


def _part_path(uploads_dir: Path, segment: Segment) -> Path:
    return uploads_dir / f"{segment.id}.part"


def final_path(recordings_dir: Path, segment: Segment) -> Path:
    return recordings_dir / segment.attempt_id / segment.name


@contextmanager
def _locked(uploads_dir: Path, segment: Segment) -> Iterator[None]:
    """One writer per upload across gunicorn workers."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    with open(uploads_dir / f"{segment.id}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def current_offset(uploads_dir: Path, segment: Segment) -> int:
    if segment.status != SegmentStatus.UPLOADING:
        return segment.length if segment.status == SegmentStatus.VERIFIED else segment.offset
    part = _part_path(uploads_dir, segment)
    return part.stat().st_size if part.exists() else 0


def check_chunk_checksum(header: str | None, chunk: bytes) -> None:
    if not header:
        return
    parts = header.strip().split(" ")
    if len(parts) != 2 or parts[0] not in CHECKSUM_ALGORITHMS:
        raise EdgeError("Upload-Checksum must be '<algorithm> <base64 digest>' with sha256, sha1 or md5",
                        code="bad_checksum_header")
    try:
        expected = base64.b64decode(parts[1], validate=True)
    except binascii.Error as exc:
        raise EdgeError("Upload-Checksum digest is not base64", code="bad_checksum_header") from exc
    if CHECKSUM_ALGORITHMS[parts[0]](chunk).digest() != expected:
        raise ChecksumMismatch("the chunk does not match its Upload-Checksum; it was not stored")


def append_chunk(session: Session, segment: Segment, *, offset_header: str | None, checksum_header: str | None,
                 chunk: bytes, uploads_dir: Path, recordings_dir: Path) -> Segment:
    """PATCH: append one chunk at the offset the client claims, then verify when complete."""
    offset = _int_or_none(offset_header, "Upload-Offset")
    if offset is None or offset < 0:
        raise EdgeError("Upload-Offset is required", code="bad_offset")
    if segment.status == SegmentStatus.VERIFIED:
        raise Conflict("this upload is complete and verified", code="upload_complete")
    if segment.status == SegmentStatus.CORRUPT:
        raise ChecksumMismatch("this upload failed verification; create it again", code="segment_corrupt")
    with _locked(uploads_dir, segment):
        part = _part_path(uploads_dir, segment)
        on_disk = part.stat().st_size if part.exists() else 0
        if offset != on_disk:
            segment.offset = on_disk
            raise Conflict(f"Upload-Offset {offset} does not match the server's offset {on_disk}",
                           code="offset_mismatch")
        if offset + len(chunk) > segment.length:
            raise TooLarge(f"chunk would exceed Upload-Length {segment.length}")
        check_chunk_checksum(checksum_header, chunk)
        with open(part, "ab") as fh:
            fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        segment.offset = offset + len(chunk)
        if segment.offset == segment.length:
            _verify(session, segment, part, recordings_dir)
    return segment


def _verify(session: Session, segment: Segment, part: Path, recordings_dir: Path) -> None:
    digest = hashlib.sha256()
    with open(part, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    segment.sha256_actual = digest.hexdigest()
    if segment.sha256_actual != segment.sha256_declared:
        segment.status = SegmentStatus.CORRUPT
        attempt_service.log_event(session, kind="segment_corrupt", station_id=segment.station_id,
                                  attempt_id=segment.attempt_id,
                                  payload={"segment": segment.name, "declared": segment.sha256_declared,
                                           "actual": segment.sha256_actual})
        session.flush()
        raise ChecksumMismatch(f"segment {segment.name} does not match its declared SHA-256; it is not verified",
                               code="segment_checksum_mismatch")
    target = final_path(recordings_dir, segment)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    segment.status = SegmentStatus.VERIFIED
    segment.verified_at = utcnow()


def terminate(session: Session, segment: Segment, uploads_dir: Path) -> None:
    """DELETE: drop an unfinished upload. A verified segment is never deleted this way."""
    if segment.status == SegmentStatus.VERIFIED:
        raise Conflict("a verified segment cannot be deleted", code="upload_verified")
    with _locked(uploads_dir, segment):
        _part_path(uploads_dir, segment).unlink(missing_ok=True)
    (uploads_dir / f"{segment.id}.lock").unlink(missing_ok=True)
    session.delete(segment)


def attempt_of(session: Session, segment: Segment) -> Attempt:
    attempt = session.get(Attempt, segment.attempt_id)
    assert attempt is not None
    return attempt
