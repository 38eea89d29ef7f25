"""Test data for the review and marking tests: a sitting of one centre in central storage with real
per-question MP4s of two cameras, flags, a lot map, and values that name the candidate where the
region can see them (the edge's messages, a flag's detail, a face-login reason, lots.json), so a
test can prove the markers never see them.

The MP4s are made once per process with ffmpeg (H.264 + AAC, ``+faststart``, 320x240, 15 fps) and
written through a ``central`` fixture's writer (directory or S3 bucket); ``index`` runs the region's
own indexer over it.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from examkiosk_wire.central import attempt_prefix, lots_key, manifest_key, question_key, sitting_manifest_key
from region_server.auth import settings as app_settings
from region_server.extensions import db
from region_server.indexer import index_once
from region_server.models import Attempt, Sitting
from region_server.store import store_for
from tests.services import served_app

CENTRE, SITTING = "c-north", "s-am"
SITTING_NAME = "公务员面试 上午场"
# Unmistakable values that name the candidate: a marker must never see any of them.
CANDIDATE_NAME = "张伟明"
CANDIDATE_NAME_LATIN = "Zhang Weiming"
TICKET_NUMBERS = {7: "TK-88314275", 8: "TK-88314299"}
ID_NUMBER = "110101199003074514"
SECRETS = (CANDIDATE_NAME, CANDIDATE_NAME_LATIN, ID_NUMBER, *TICKET_NUMBERS.values())

Q1_OFFSET, Q2_OFFSET = 1000.0, 1020.0  # server time of each question file's first frame
Q1_SECONDS, Q2_SECONDS = 12, 4
# Flags in server time: two in question 1 (at 3 s and 6 s into its file), one in question 2 (at 1.5 s).
FLAGS = [
    {"kind": "no_face", "started_at": Q1_OFFSET + 3.0, "ended_at": Q1_OFFSET + 4.5,
     "detail": {"note": f"{CANDIDATE_NAME} {ID_NUMBER}"}},
    {"kind": "several_faces", "started_at": Q1_OFFSET + 6.0, "ended_at": Q1_OFFSET + 6.5},
    {"kind": "focus_lost", "started_at": Q2_OFFSET + 1.5, "ended_at": Q2_OFFSET + 2.0,
     "reason": f"{CANDIDATE_NAME_LATIN} left the page"},
]


def _ffmpeg(path: Path, seconds: int, *, audio: bool, pattern: str) -> Path:
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"{pattern}=size=320x240:rate=15"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "15"]
    cmd += ["-c:a", "aac", "-b:a", "64k"] if audio else ["-an"]
    cmd += ["-movflags", "+faststart", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


@functools.lru_cache(maxsize=1)
def media_files() -> dict[str, Path]:
    """``main_q1.mp4`` (12 s, with sound), ``second_q1.mp4`` (12 s), ``main_q2.mp4``, ``second_q2.mp4`` (4 s)."""
    folder = Path(tempfile.mkdtemp(prefix="ek-review-media-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return {
        "main_q1.mp4": _ffmpeg(folder / "main_q1.mp4", Q1_SECONDS, audio=True, pattern="testsrc"),
        "second_q1.mp4": _ffmpeg(folder / "second_q1.mp4", Q1_SECONDS, audio=False, pattern="smptebars"),
        "main_q2.mp4": _ffmpeg(folder / "main_q2.mp4", Q2_SECONDS, audio=True, pattern="testsrc"),
        "second_q2.mp4": _ffmpeg(folder / "second_q2.mp4", Q2_SECONDS, audio=False, pattern="smptebars"),
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class World:
    """What was written: lots -> attempt ids, and the bytes of every question file by key."""

    attempts: dict[int, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def attempt_manifest(lot: int, attempt: str, files: dict[str, bytes], sitting: str = SITTING) -> dict[str, Any]:
    prefix = attempt_prefix(CENTRE, sitting, lot, attempt)
    questions = []
    for name, data in sorted(files.items()):
        camera, number = name[:-4].rsplit("_q", 1)
        seconds, offset = (Q1_SECONDS, Q1_OFFSET) if number == "1" else (Q2_SECONDS, Q2_OFFSET)
        questions.append({"key": question_key(prefix, name), "sha256": sha256(data), "size": len(data),
                          "camera": camera, "question": int(number), "duration": float(seconds),
                          "expected_duration": float(seconds), "segments": [], "complete": True, "offset": offset})
    return {
        "format": "examkiosk-manifest/1", "centre": CENTRE, "sitting": sitting, "attempt": attempt, "lot": lot,
        "kind": "formal", "scoring": True, "station": "st-01", "finished_at": "2026-12-01T09:30:00+00:00",
        "started_at": Q1_OFFSET - 60, "flags": FLAGS, "questions": questions,
        "messages": [{"kind": "help", "text": f"考生 {CANDIDATE_NAME} ({CANDIDATE_NAME_LATIN}) 身份证 {ID_NUMBER}",
                      "at": "2026-12-01T09:10:00+00:00"}],
        "face_login": {"tries": [{"try": 1, "matched": False, "reason": f"not {CANDIDATE_NAME_LATIN}"}],
                       "reviews": []},
    }


def write_sitting(put: Callable[[str, bytes], None], lots: tuple[int, ...] = (7, 8), *, sitting: str = SITTING,
                  name: str = SITTING_NAME) -> World:
    """The sitting's documents and, per lot, both cameras' files of both questions and the manifest."""
    world = World()
    media = {file: path.read_bytes() for file, path in media_files().items()}
    put(sitting_manifest_key(CENTRE, sitting), json.dumps({
        "format": "examkiosk-sitting/1", "centre": CENTRE, "sitting": sitting, "name": name,
        "kind": "formal", "expected": len(lots), "absent": 0,
        "lots": [{"lot": lot, "attempt": f"{sitting}-att{lot}", "started": True, "finished": True, "complete_at_edge": True,
                  "synced": True} for lot in lots]}, ensure_ascii=False).encode())
    put(lots_key(CENTRE, sitting), json.dumps({
        "format": "examkiosk-lots/1", "centre": CENTRE, "sitting": sitting,
        "lots": {str(lot): TICKET_NUMBERS[lot] for lot in lots}}).encode())
    for lot in lots:
        attempt = f"{sitting}-att{lot}"
        prefix = attempt_prefix(CENTRE, sitting, lot, attempt)
        for file, data in media.items():
            put(question_key(prefix, file), data)
            world.files[question_key(prefix, file)] = data
        put(manifest_key(prefix), json.dumps(attempt_manifest(lot, attempt, media, sitting),
                                             ensure_ascii=False).encode())
        world.attempts[lot] = attempt
    return world


def index(app) -> None:
    """One pass of the region's indexer over the app's store."""
    with app.app_context():
        index_once(db.session, store_for(app), app_settings(app).index)
        db.session.commit()


def ids(app, sitting: str = SITTING) -> tuple[int, dict[int, int]]:
    """The sitting's row id and lot -> attempt row id."""
    with app.app_context():
        row = db.session.execute(db.select(Sitting).where(Sitting.centre_id == CENTRE,
                                                          Sitting.sitting == sitting)).scalar_one()
        attempts = db.session.scalars(db.select(Attempt).where(Attempt.sitting_id == row.id)).all()
        return row.id, {a.lot: a.id for a in attempts}


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """The app on a real socket (threaded werkzeug server); yields its base URL."""
    with served_app(app) as url:
        yield url
