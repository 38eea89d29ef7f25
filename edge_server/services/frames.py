"""Captured face frames the stations send for the reviewer: the review's best frame, one per face try.

Frames are JPEG files under the edge's data directory, never in the database. A face try's frame
is filed under its attempt and named by its SHA-256, so storing it twice is harmless.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from edge_server.errors import EdgeError

MAX_FRAME_BYTES = 2 * 1024 * 1024


def decode_jpeg_b64(value: object) -> bytes | None:
    """A station's ``frame_jpeg`` field: a base64 JPEG of at most 2 MiB, or None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_FRAME_BYTES * 4 // 3 + 4:
        raise EdgeError("frame_jpeg must be a base64 JPEG of at most 2 MiB", code="bad_frame")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: a non-ASCII character
        raise EdgeError("frame_jpeg is not base64", code="bad_frame") from exc
    if not data.startswith(b"\xff\xd8"):
        raise EdgeError("frame_jpeg is not a JPEG image", code="bad_frame")
    return data


def review_frame_path(data_dir: Path, review_id: int) -> Path:
    return data_dir / "review_frames" / f"{review_id}.jpg"


def face_try_frames_dir(data_dir: Path, attempt_id: str) -> Path:
    """Every face try frame of one attempt (what a sync of the attempt would carry)."""
    return data_dir / "face_tries" / attempt_id


def face_try_frame_path(data_dir: Path, attempt_id: str, sha256: str) -> Path:
    return face_try_frames_dir(data_dir, attempt_id) / f"{sha256}.jpg"


def store_face_try_frame(data_dir: Path, attempt_id: str, data: bytes) -> str:
    """Write the frame (atomically) and return its SHA-256, which the FaceTry row keeps."""
    digest = hashlib.sha256(data).hexdigest()
    path = face_try_frame_path(data_dir, attempt_id, digest)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return digest
