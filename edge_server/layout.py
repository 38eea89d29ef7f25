"""Where an attempt's files go: on the edge (the joined per-question files) and in central storage.

Central storage files every attempt under ``<centre>/<sitting>/lot-<NNN>`` (the lot number, never
the candidate's name; ``unassigned-<attempt>`` before a lot is drawn)::

    <prefix>/segments/<segment name>         the verified segments, as uploaded
    <prefix>/questions/<camera>_q<N>.mkv     per question, joined without re-encoding (``_waiting``)
    <prefix>/face_login/try-<NN>.jpg         the frame of each face login try
    <prefix>/face_login/review-<id>.jpg      the frame a manual review was decided on
    <prefix>/manifest.json                   what the copy holds (``MANIFEST_FORMAT``)

On the edge the joined files wait under ``<data_dir>/joined/<attempt>/`` until retention deletes them.
"""
from __future__ import annotations

from pathlib import Path

from edge_server.models import Attempt

JOINED_DIR = "joined"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "examkiosk-manifest/1"


def attempt_prefix(attempt: Attempt) -> str:
    """The attempt's folder in central storage: filed under the lot number, never the candidate's name."""
    lot = f"lot-{attempt.lot:03d}" if attempt.lot is not None else f"unassigned-{attempt.id}"
    return f"{attempt.sitting.centre_id}/{attempt.sitting_id}/{lot}"


def joined_dir(data_dir: Path, attempt_id: str) -> Path:
    """The attempt's per-question files on the edge."""
    return data_dir / JOINED_DIR / attempt_id


def segment_key(prefix: str, name: str) -> str:
    return f"{prefix}/segments/{name}"


def question_key(prefix: str, name: str) -> str:
    return f"{prefix}/questions/{name}"


def face_try_key(prefix: str, number: int) -> str:
    return f"{prefix}/face_login/try-{number:02d}.jpg"


def review_frame_key(prefix: str, review_id: int) -> str:
    return f"{prefix}/face_login/review-{review_id}.jpg"


def manifest_key(prefix: str) -> str:
    return f"{prefix}/{MANIFEST_NAME}"
