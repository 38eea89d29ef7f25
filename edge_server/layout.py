"""Where an attempt's files go: on the edge (the joined per-question files) and in central storage.

The central-storage layout is a contract with the regional server: ``examkiosk_wire.central``.
On the edge the joined files (``<camera>_q<N>.mp4``, ``<camera>_waiting.mp4``) wait under
``<data_dir>/joined/<attempt>/`` until retention deletes them; central storage keeps the same names
under ``<prefix>/questions/``.
"""
from __future__ import annotations

from pathlib import Path

from edge_server.models import Attempt
from examkiosk_wire import central
from examkiosk_wire.central import (
    ATTEMPT_FORMAT,
    MANIFEST_NAME,
    face_try_key,
    lots_key,
    manifest_key,
    question_key,
    review_frame_key,
    segment_key,
    sitting_manifest_key,
)

__all__ = ["JOINED_DIR", "JOINED_SUFFIX", "MANIFEST_FORMAT", "MANIFEST_NAME", "attempt_prefix", "face_try_key",
           "joined_dir", "joined_name", "lots_key", "manifest_key", "question_key", "review_frame_key", "segment_key",
           "sitting_manifest_key"]

MANIFEST_FORMAT = ATTEMPT_FORMAT
JOINED_DIR = "joined"
JOINED_SUFFIX = ".mp4"  # per-question files are MP4 (+faststart), which browsers play; segments stay Matroska


def attempt_prefix(attempt: Attempt) -> str:
    """The attempt's folder in central storage: filed under the lot number, never the candidate's name."""
    return central.attempt_prefix(attempt.sitting.centre_id, attempt.sitting_id, attempt.lot, attempt.id)


def joined_dir(data_dir: Path, attempt_id: str) -> Path:
    """The attempt's per-question files on the edge."""
    return data_dir / JOINED_DIR / attempt_id


def joined_name(camera: str, question: int | None) -> str:
    """The per-question file of one camera: ``<camera>_q<N>.mp4``, the waiting room ``<camera>_waiting.mp4``."""
    return f"{camera}_{'waiting' if question is None else f'q{question}'}{JOINED_SUFFIX}"
