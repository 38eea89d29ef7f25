"""Recording segments received over tus 1.0 (core, creation, checksum, termination).

An upload is a small state machine: ``uploading`` → ``verified`` (the SHA-256 of the whole file
equals the one the station declared; the file has moved to ``recordings/``) or ``corrupt`` (it
does not; the station creates the upload again). ``verified`` is final: no request changes a
verified segment or its file. While ``uploading``, the part file on disk is the truth for the
offset and the database mirrors it.

Every request that reads or changes an upload's state does so holding the upload's lock
(``locked_upload``): it reads the segment's row after the lock is taken and commits before it
is released, so the next holder sees what the last one did, across gunicorn workers and threads.
The lock file (``uploads/<id>.lock``) exists only while a request holds or waits for it.

The headers are parsed strictly (``parse_creation``, ``parse_offset``, ``parse_checksum``): ASCII
digits only, numbers within their columns, metadata as strict base64 of UTF-8 text; anything else
is a 400 naming what is wrong.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.errors import Conflict, EdgeError, NotFound
from edge_server.models import Attempt, Segment, SegmentStatus, Station, utcnow
from edge_server.services import attempts as attempt_service
from examkiosk_wire.chain import ChainEntry, verify

TUS_EXTENSIONS = "creation,checksum,termination"
CHECKSUM_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")  # Segment.name is String(200)
CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")  # Segment.camera is String(32)
ATTEMPT_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")  # Attempt.id is String(32)
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")  # Segment.id: models.new_id()
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SIGNATURE = re.compile(r"[A-Za-z0-9+/]{1,126}={0,2}")  # Segment.signature is String(128)
METADATA_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,64}")  # printable ASCII, no space or comma (tus)
DIGITS = re.compile(r"[0-9]+")
DECIMAL = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,3})?")
# Segment.seq, question, length and offset are INTEGER columns: 32-bit signed on PostgreSQL.
MAX_COLUMN_INT = 2**31 - 1
MAX_OFFSET = 2**63 - 1


class ChecksumMismatch(EdgeError):
    status = 460
    code = "checksum_mismatch"


class TooLarge(EdgeError):
    status = 413
    code = "too_large"


# --- strict headers -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Creation:
    """A POST's ``Upload-Length`` and ``Upload-Metadata``, checked."""

    length: int
    attempt: str
    name: str
    sha256: str
    camera: str = "main"
    seq: int = 0
    question: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    prev: str = ""
    entry: str = ""
    sig: str = ""


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


def _ascii_int(value: str, what: str, *, code: str, maximum: int) -> int:
    """A non-negative integer written in ASCII digits only (no sign, space, ``_`` or other digits)."""
    if not DIGITS.fullmatch(value):
        raise EdgeError(f"{what} must be written in the digits 0-9 only", code=code)
    if len(value) > len(str(maximum)) or int(value) > maximum:
        raise EdgeError(f"{what} must be at most {maximum}", code=code)
    return int(value)


def _finite_float(value: str, what: str) -> float:
    if not DECIMAL.fullmatch(value) or not math.isfinite(number := float(value)):
        raise EdgeError(f"{what} must be a finite decimal number", code="bad_metadata")
    return number


def _b64decode(text: str) -> bytes:
    """Strict base64 of ASCII text; a ValueError (binascii.Error, UnicodeError) for anything else."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def _plain_text(key: str, value: str) -> None:
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise EdgeError(f"Upload-Metadata value of {key!r} has control characters", code="bad_metadata")


def parse_metadata(header: str | None) -> dict[str, str]:
    """Decode ``Upload-Metadata``: comma-separated ``key base64value`` pairs of UTF-8 text.

    Strict UTF-8 never yields a lone surrogate, so none reaches the database."""
    result: dict[str, str] = {}
    if not header:
        return result
    for pair in header.split(","):
        parts = pair.strip(" ").split(" ")
        key = parts[0]
        if len(parts) > 2 or not METADATA_KEY.fullmatch(key):
            raise EdgeError("Upload-Metadata must be comma-separated 'key base64value' pairs with ASCII keys",
                            code="bad_metadata")
        if key in result:
            raise EdgeError(f"Upload-Metadata has {key!r} twice", code="bad_metadata")
        try:
            result[key] = _b64decode(parts[1] if len(parts) == 2 else "").decode("utf-8")
        except ValueError as exc:
            raise EdgeError(f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text",
                            code="bad_metadata") from exc
    return result


def parse_creation(length_header: str | None, metadata_header: str | None, *, max_upload_bytes: int) -> Creation:
    """POST's headers, or a 4xx naming the first thing wrong with them."""
    if length_header is None:
        raise EdgeError("Upload-Length is required (deferred length is not supported)", code="length_required")
    length = _ascii_int(length_header, "Upload-Length", code="bad_length", maximum=MAX_OFFSET)
    limit = min(max_upload_bytes, MAX_COLUMN_INT)
    if length > limit:
        raise TooLarge(f"Upload-Length {length} exceeds the maximum of {limit} bytes")
    meta = parse_metadata(metadata_header)
    for key in ("attempt", "name", "sha256"):
        if not meta.get(key):
            raise EdgeError(f"Upload-Metadata must carry {key!r}", code="bad_metadata")
    if not ATTEMPT_ID.fullmatch(meta["attempt"]):
        raise EdgeError("the attempt id has characters that are not allowed", code="bad_metadata")
    if not SAFE_NAME.fullmatch(meta["name"]) or ".." in meta["name"]:
        raise EdgeError("segment name has characters that are not allowed", code="bad_name")
    camera = meta.get("camera") or "main"
    if not CAMERA_NAME.fullmatch(camera) or ".." in camera:
        raise EdgeError("camera name has characters that are not allowed", code="bad_name")
    sha = meta["sha256"].lower()
    if not SHA256_HEX.fullmatch(sha):
        raise EdgeError("sha256 must be 64 hex digits", code="bad_metadata")
    ints = {key: _ascii_int(meta[key], key, code="bad_metadata", maximum=MAX_COLUMN_INT)
            for key in ("seq", "question") if meta.get(key)}
    floats = {key: _finite_float(meta[key], key) for key in ("started_at", "ended_at") if meta.get(key)}
    for key in ("prev", "entry"):
        if meta.get(key) and not SHA256_HEX.fullmatch(meta[key]):
            raise EdgeError(f"{key} must be 64 lowercase hex digits", code="bad_metadata")
    if meta.get("sig") and not SIGNATURE.fullmatch(meta["sig"]):
        raise EdgeError("sig must be a base64 signature", code="bad_metadata")
    for key, value in meta.items():  # and every value, known or not, is text without control characters
        _plain_text(key, value)
    return Creation(length=length, attempt=meta["attempt"], name=meta["name"], sha256=sha, camera=camera,
                    seq=ints.get("seq", 0), question=ints.get("question"),
                    started_at=floats.get("started_at"), ended_at=floats.get("ended_at"),
                    prev=meta.get("prev", ""), entry=meta.get("entry", ""), sig=meta.get("sig", ""))


def parse_offset(header: str | None) -> int:
    if header is None:
        raise EdgeError("Upload-Offset is required", code="bad_offset")
    return _ascii_int(header, "Upload-Offset", code="bad_offset", maximum=MAX_OFFSET)


def parse_checksum(header: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``, the digest as long as the algorithm's."""
    if header is None:
        return None
    parts = header.split(" ")
    if len(parts) != 2 or parts[0] not in CHECKSUM_ALGORITHMS:
        raise EdgeError("Upload-Checksum must be '<algorithm> <base64 digest>' with sha256, sha1 or md5",
                        code="bad_checksum_header")
    try:
        digest = _b64decode(parts[1])
    except ValueError as exc:
        raise EdgeError("Upload-Checksum digest is not base64", code="bad_checksum_header") from exc
    if len(digest) != CHECKSUM_ALGORITHMS[parts[0]]().digest_size:
        raise EdgeError(f"Upload-Checksum digest is not the length of a {parts[0]} digest",
                        code="bad_checksum_header")
    return Checksum(parts[0], digest)


# --- the upload's lock ---------------------------------------------------------------------------

def _part_path(uploads_dir: Path, segment: Segment) -> Path:
    return uploads_dir / f"{segment.id}.part"


def _lock_path(uploads_dir: Path, upload_id: str) -> Path:
    return uploads_dir / f"{upload_id}.lock"


def final_path(recordings_dir: Path, segment: Segment) -> Path:
    return recordings_dir / segment.attempt_id / segment.name


def _names(path: Path, fd: int) -> bool:
    """``path`` still names the file open as ``fd``."""
    try:
        linked = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (linked.st_dev, linked.st_ino) == (held.st_dev, held.st_ino)


@contextmanager
def _upload_lock(uploads_dir: Path, upload_id: str) -> Iterator[None]:
    """One holder per upload across gunicorn workers and threads (``flock`` on ``<id>.lock``).

    The holder removes the lock file as it leaves, while it still holds it. Whoever was waiting
    on the removed file finds that the path no longer names it and locks the file there now, so
    at any time only the holder of the file the path names is inside."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    path = _lock_path(uploads_dir, upload_id)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _names(path, fd):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the flock


def _fresh(session: Session, upload_id: str) -> Segment | None:
    """The segment's row as committed now (PostgreSQL reads at READ COMMITTED; SQLite's reads
    outside a write transaction see the last commit), not as this session saw it before."""
    return session.execute(select(Segment).where(Segment.id == upload_id)
                           .execution_options(populate_existing=True)).scalar_one_or_none()


def get_upload(session: Session, station: Station, upload_id: str) -> Segment:
    segment = session.get(Segment, upload_id) if UPLOAD_ID.fullmatch(upload_id) else None
    if segment is None or segment.station_id != station.id:
        raise NotFound("no such upload", code="upload_unknown")
    return segment


@contextmanager
def locked_upload(session: Session, station: Station, upload_id: str, uploads_dir: Path) -> Iterator[Segment]:
    """The station's upload, read after its lock is taken; the caller commits inside the block."""
    get_upload(session, station, upload_id)  # a stranger's or unknown id never touches the disk
    with _upload_lock(uploads_dir, upload_id):
        segment = _fresh(session, upload_id)
        if segment is None:  # terminated or created again while this request waited
            raise NotFound("no such upload", code="upload_unknown")
        yield segment


# --- the requests -------------------------------------------------------------------------------

@contextmanager
def create_upload(session: Session, station: Station, creation: Creation, *, uploads_dir: Path) -> Iterator[Segment]:
    """POST: register a segment and create its empty part file; the caller commits inside the block.

    The same verified segment again is that segment; an unfinished or corrupt one is replaced
    (a retry starts over), under the old upload's lock so that no PATCH of it is half-way."""
    attempt = attempt_service.get_attempt(session, station, creation.attempt, handover=True)
    chain = _checked_chain_fields(station, creation)
    for _ in range(3):
        existing = session.execute(
            select(Segment).where(Segment.attempt_id == attempt.id, Segment.name == creation.name)
            .execution_options(populate_existing=True)).scalar_one_or_none()
        if existing is None:
            yield _new_segment(session, station, attempt, creation, chain, uploads_dir)
            return
        if existing.status == SegmentStatus.VERIFIED:  # final: no lock needed to read it
            yield _same_verified(existing, creation)
            return
        with _upload_lock(uploads_dir, existing.id):
            old = _fresh(session, existing.id)
            if old is None:
                continue  # another request replaced it meanwhile: look again
            if old.status == SegmentStatus.VERIFIED:
                yield _same_verified(old, creation)
                return
            _part_path(uploads_dir, old).unlink(missing_ok=True)
            session.delete(old)
            session.flush()
            yield _new_segment(session, station, attempt, creation, chain, uploads_dir)
            return
    raise Conflict("other requests are creating this segment at the same time; ask again", code="upload_busy")


def _same_verified(segment: Segment, creation: Creation) -> Segment:
    if segment.sha256_declared == creation.sha256:
        return segment
    raise Conflict("a verified segment with this name already exists", code="segment_exists")


def _new_segment(session: Session, station: Station, attempt: Attempt, creation: Creation,
                 chain: dict[str, str], uploads_dir: Path) -> Segment:
    segment = Segment(
        attempt_id=attempt.id, station_id=station.id, name=creation.name, camera=creation.camera,
        seq=creation.seq, question=creation.question, started_at=creation.started_at,
        ended_at=creation.ended_at, length=creation.length, sha256_declared=creation.sha256, **chain,
    )
    session.add(segment)
    session.flush()
    uploads_dir.mkdir(parents=True, exist_ok=True)
    _part_path(uploads_dir, segment).touch()
    return segment


def _checked_chain_fields(station: Station, creation: Creation) -> dict[str, str]:
    """A station with a registered key must send each segment as a correctly signed chain entry."""
    if station.public_key is None:
        return {"prev_hash": creation.prev, "entry_hash": creation.entry, "signature": creation.sig}
    if not creation.entry or not creation.sig:
        raise EdgeError("this station signs its segments: Upload-Metadata must carry entry and sig",
                        code="segment_unsigned")
    entry = ChainEntry(
        attempt=creation.attempt, camera=creation.camera, seq=creation.seq, name=creation.name,
        question=creation.question, started_at=creation.started_at or 0.0, ended_at=creation.ended_at or 0.0,
        size=creation.length, sha256=creation.sha256, prev=creation.prev,
    )
    if entry.digest() != creation.entry:
        raise EdgeError("the chain entry does not match the segment's metadata", code="chain_entry_mismatch")
    if not verify(station.public_key, creation.entry, creation.sig):
        raise EdgeError("the chain entry's signature is not the station's", code="chain_signature_invalid")
    return {"prev_hash": entry.prev, "entry_hash": creation.entry, "signature": creation.sig}


def current_offset(uploads_dir: Path, segment: Segment) -> int:
    if segment.status != SegmentStatus.UPLOADING:
        return segment.length if segment.status == SegmentStatus.VERIFIED else segment.offset
    part = _part_path(uploads_dir, segment)
    return part.stat().st_size if part.exists() else 0


def append_chunk(session: Session, segment: Segment, *, offset: int, checksum: Checksum | None, chunk: bytes,
                 uploads_dir: Path, recordings_dir: Path) -> None:
    """PATCH, holding the upload's lock: append one chunk at the offset the client claims, then
    verify when complete. A verified upload takes no more bytes, whatever they are."""
    if segment.status == SegmentStatus.VERIFIED:
        raise Conflict("this upload is complete and verified", code="upload_complete")
    if segment.status == SegmentStatus.CORRUPT:
        raise ChecksumMismatch("this upload failed verification; create it again", code="segment_corrupt")
    part = _part_path(uploads_dir, segment)
    on_disk = part.stat().st_size if part.exists() else 0
    if offset != on_disk:
        raise Conflict(f"Upload-Offset {offset} does not match the server's offset {on_disk}",
                       code="offset_mismatch")
    if offset + len(chunk) > segment.length:
        raise TooLarge(f"chunk would exceed Upload-Length {segment.length}")
    chunk_digest = None
    if checksum is not None:
        chunk_digest = CHECKSUM_ALGORITHMS[checksum.algorithm](chunk).digest()
        if chunk_digest != checksum.digest:
            raise ChecksumMismatch("the chunk does not match its Upload-Checksum; it was not stored")
    whole = offset == 0 and len(chunk) == segment.length  # one chunk is the whole segment
    with open(part, "ab") as fh:
        fh.write(chunk)
        fh.flush()
        os.fdatasync(fh.fileno())  # the data and the file's size; the rest of its metadata is not needed
    segment.offset = offset + len(chunk)
    if segment.offset == segment.length:
        if whole:  # the segment's hash is the chunk's (already computed when the client sent SHA-256)
            sha256 = chunk_digest if checksum is not None and checksum.algorithm == "sha256" else None
            _verify(session, segment, part, recordings_dir, (sha256 or hashlib.sha256(chunk).digest()).hex())
        else:
            _verify(session, segment, part, recordings_dir)


def _verify(session: Session, segment: Segment, part: Path, recordings_dir: Path,
            sha256_hex: str | None = None) -> None:
    """``sha256_hex``: the file's hash, when its bytes were all hashed on the way in; otherwise
    the file is read back from disk and hashed."""
    if sha256_hex is None:
        digest = hashlib.sha256()
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        sha256_hex = digest.hexdigest()
    segment.sha256_actual = sha256_hex
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
    """DELETE, holding the upload's lock: drop an unfinished upload. A verified segment is never
    deleted this way."""
    if segment.status == SegmentStatus.VERIFIED:
        raise Conflict("a verified segment cannot be deleted", code="upload_verified")
    _part_path(uploads_dir, segment).unlink(missing_ok=True)
    session.delete(segment)


def attempt_of(session: Session, segment: Segment) -> Attempt:
    attempt = session.get(Attempt, segment.attempt_id)
    assert attempt is not None
    return attempt
