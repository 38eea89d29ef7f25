"""The ``media`` job: real recorder segments joined per question with ffmpeg, checked with PyAV and ffprobe.

The segments are recorded once per module by the station's SegmentRecorder from a file camera and
a WAV microphone (8 s, 2 s segments, the waiting room until 4 s, then question 1) and registered in
each test's database as verified, with their files where uploads put them. The job runs directly,
opening its own app context from the file ``EXAMKIOSK_EDGE_CONFIG`` names, as in the worker.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import av
import pytest
from sqlalchemy import select

from edge_server.config import EdgeSettings
from edge_server.extensions import db
from edge_server.jobs import context
from edge_server.jobs.media import EVENT_KIND, join_questions
from edge_server.models import Event, Segment, SegmentStatus, utcnow
from provisioning.toml_file import write_toml
from station.capture.audio import WavSource
from station.capture.camera import FileCamera
from station.recording.base import SegmentInfo
from station.recording.pyav import SegmentRecorder
from tests.edge_server.conftest import dispose_app
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station

pytestmark = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                reason="ffmpeg/ffprobe not installed")

FPS = 25
RATE = 48000
SIZE = (320, 240)
SECONDS = 8
CUT_AT_FRAME = 4 * FPS  # question 1 starts with the 101st frame
SEGMENT_SECONDS = 2.0
CAMERA = "cam0"


# --- a real recording, once per module ------------------------------------------------------------

from tests.media import make_video, make_wav  # noqa: E402


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> list[SegmentInfo]:
    """8 s from a paced file camera: waiting room [0, 4) s, question 1 [4, 8) s, 2 s segments."""
    d = tmp_path_factory.mktemp("media-rec")
    cam = FileCamera(make_video(d / "clip.mp4", 3.0, fps=FPS, size=SIZE))
    make_wav(d / "tone.wav", 2.0, rate=RATE)
    mic = WavSource(d / "tone.wav", chunk=1024)
    cam.open()
    mic.open()
    rec = SegmentRecorder(d / "segments", "rec", CAMERA, fps=cam.fps, size=cam.size, audio_rate=mic.rate,
                          audio_channels=mic.channels, segment_seconds=SEGMENT_SECONDS, clock=time.time)
    stop_audio = threading.Event()

    def audio() -> None:
        while not stop_audio.is_set():
            rec.push_audio(mic.read())

    rec.start(question=None)
    mic_thread = threading.Thread(target=audio)
    mic_thread.start()
    try:
        for i in range(SECONDS * FPS):
            if i == CUT_AT_FRAME:
                rec.cut(question=1)
            rec.push_video(cam.read())
    finally:
        stop_audio.set()
        mic_thread.join()
        rec.stop()
        cam.close()
        mic.close()
    segments = rec.segments
    assert [s.question for s in segments] == [None, None, 1, 1]
    assert sum(s.frames for s in segments) == SECONDS * FPS
    return segments


# --- the edge the job sees ------------------------------------------------------------------------

@dataclass
class Recorded:
    attempt_id: str
    settings: EdgeSettings
    segments: list[SegmentInfo]  # as recorded, in seq order
    names: list[str]  # their names on the edge

    def path(self, seq: int) -> Path:
        return self.settings.recordings_dir / self.attempt_id / self.names[seq]


def write_config(path: Path, settings: EdgeSettings) -> None:
    """The test's settings as the TOML file the job's own app reads."""
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        return value

    write_toml(path, clean(settings.model_dump(mode="json")))


@pytest.fixture
def recorded(app, settings: EdgeSettings, recording: list[SegmentInfo], tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    """A finished attempt whose segments are all verified on the edge."""
    for key in list(os.environ):
        if (key.startswith("EXAMKIOSK_") and key != "EXAMKIOSK_TEST_POSTGRES_URL") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    config = tmp_path / "edge.toml"
    write_config(config, settings)
    monkeypatch.setenv("EXAMKIOSK_EDGE_CONFIG", str(config))
    monkeypatch.setattr(context, "_app", None)
    with app.app_context():
        station, _ = make_station(db.session, "c1")
        sitting = make_sitting(db.session, "c1", starts_in=-600)
        attempt = make_attempt(db.session, make_candidate(db.session, sitting), station, lot=1)
        names = [f"{attempt.id}_{CAMERA}_{s.seq:05d}.mkv" for s in recording]
        folder = settings.recordings_dir / attempt.id
        folder.mkdir(parents=True)
        for info, name in zip(recording, names, strict=True):
            shutil.copyfile(info.path, folder / name)
            db.session.add(Segment(
                attempt_id=attempt.id, station_id=station.id, name=name, camera=CAMERA, seq=info.seq,
                question=info.question, started_at=info.started_at, ended_at=info.ended_at, length=info.size,
                offset=info.size, sha256_declared=info.sha256, sha256_actual=info.sha256,
                status=SegmentStatus.VERIFIED, verified_at=utcnow()))
        attempt.expected_segments = names
        attempt.finished_at = attempt.upload_complete_at = utcnow()
        db.session.commit()
        attempt_id = attempt.id
    try:
        yield Recorded(attempt_id, settings, recording, names)
    finally:
        if context._app is not None:
            dispose_app(context._app)


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def top_level_boxes(path: Path) -> list[bytes]:
    """The MP4 file's top-level box types in file order."""
    boxes, data, at = [], path.read_bytes(), 0
    while at + 8 <= len(data):
        size, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        if size == 1:
            size = int.from_bytes(data[at + 8:at + 16], "big")
        boxes.append(kind)
        if size < 8:
            break
        at += size
    return boxes


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def media_events(app, attempt_id: str) -> list[dict]:
    with app.app_context():
        return [e.payload for e in db.session.scalars(
            select(Event).where(Event.attempt_id == attempt_id, Event.kind == EVENT_KIND).order_by(Event.id))]


# --- tests ----------------------------------------------------------------------------------------

def test_each_question_is_its_segments_joined_without_loss(app, recorded: Recorded) -> None:
    result = join_questions(recorded.attempt_id)

    assert result["problems"] == []
    joined = recorded.settings.data_dir / "joined" / recorded.attempt_id
    assert [(f["camera"], f["question"], f["path"]) for f in result["files"]] == [
        (CAMERA, None, str(joined / f"{CAMERA}_waiting.mp4")),
        (CAMERA, 1, str(joined / f"{CAMERA}_q1.mp4")),
    ]
    for entry in result["files"]:
        parts = [s for s in recorded.segments if s.question == entry["question"]]
        assert entry["segments"] == [s.seq for s in parts] and entry["complete"]
        path = Path(entry["path"])
        expected = sum(s.ended_at - s.started_at for s in parts)
        assert entry["expected"] == pytest.approx(expected, abs=0.001)
        # Every frame of every segment, and the question's length to within a frame.
        assert decoded_frames(path) == sum(s.frames for s in parts) == entry["frames"] == entry["expected_frames"]
        assert ffprobe_duration(path) == pytest.approx(expected, abs=1 / FPS)
        assert entry["duration"] == pytest.approx(ffprobe_duration(path), abs=0.001)
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        with av.open(str(path)) as c:
            assert sorted(s.type for s in c.streams) == ["audio", "video"]
            assert "mp4" in c.format.name and c.streams.video[0].codec_context.name == "h264"
            assert c.streams.audio[0].codec_context.name == "aac"  # stream copy: what the station recorded
        assert top_level_boxes(path).index(b"moov") < top_level_boxes(path).index(b"mdat"), "+faststart"
        assert entry["size"] == path.stat().st_size
        assert entry["offset"] == parts[0].started_at  # server time of the first frame
    assert sorted(p.name for p in joined.iterdir()) == [f"{CAMERA}_q1.mp4", f"{CAMERA}_waiting.mp4"]

    # Safe to run twice: the same files, nothing reported.
    again = join_questions(recorded.attempt_id)
    assert again["files"] == result["files"] and again["problems"] == []
    assert media_events(app, recorded.attempt_id) == []


def test_a_deleted_segment_file_is_reported_with_its_seconds(app, recorded: Recorded) -> None:
    gone = recorded.segments[3]  # question 1's second segment
    first_of_question = recorded.segments[2]
    recorded.path(3).unlink()

    result = join_questions(recorded.attempt_id)

    [problem] = result["problems"]
    assert problem["kind"] == "file_missing"
    assert (problem["camera"], problem["question"], problem["seq"], problem["segment"]) == (
        CAMERA, 1, 3, recorded.names[3])
    assert problem["seconds"] == pytest.approx([gone.started_at - first_of_question.started_at,
                                                gone.ended_at - first_of_question.started_at], abs=0.001)
    assert problem["seconds"] == pytest.approx([SEGMENT_SECONDS, 2 * SEGMENT_SECONDS], abs=2 / FPS)
    assert problem["server_time"] == [gone.started_at, gone.ended_at]
    assert media_events(app, recorded.attempt_id) == [problem]

    # Question 1 holds what is left, flagged incomplete; the waiting room is whole.
    waiting, q1 = result["files"]
    assert waiting["complete"] and waiting["segments"] == [0, 1]
    assert not q1["complete"] and q1["segments"] == [2]
    assert decoded_frames(Path(q1["path"])) == first_of_question.frames
    assert q1["expected"] == pytest.approx(first_of_question.ended_at - first_of_question.started_at, abs=0.001)

    # A second run reports it again but logs it once.
    assert join_questions(recorded.attempt_id)["problems"] == [problem]
    assert media_events(app, recorded.attempt_id) == [problem]


def test_a_gap_in_seq_numbers_is_reported_between_the_questions(app, recorded: Recorded) -> None:
    """Segment 1 (the waiting room's last) never reached the edge: no row, no file."""
    with app.app_context():
        db.session.execute(db.delete(Segment).where(Segment.name == recorded.names[1]))
        db.session.commit()
    recorded.path(1).unlink()
    lost, origin = recorded.segments[1], recorded.segments[0].started_at

    result = join_questions(recorded.attempt_id)

    [problem] = result["problems"]
    assert problem["kind"] == "missing"
    assert (problem["camera"], problem["seq"], problem["segment"]) == (CAMERA, 1, recorded.names[1])
    # From its neighbours: it ends the waiting room or starts question 1.
    assert (problem["question"], problem["next_question"]) == (None, 1)
    assert problem["seconds"] == pytest.approx([lost.started_at - origin, lost.ended_at - origin], abs=0.001)
    assert media_events(app, recorded.attempt_id) == [problem]
    assert [f["segments"] for f in result["files"]] == [[0], [2, 3]]


def test_an_unreadable_segment_is_reported_not_joined(app, recorded: Recorded) -> None:
    """The file was replaced by garbage after verification (a disk fault): its checksum no longer matches."""
    recorded.path(0).write_bytes(b"\x00" * 4096)
    with app.app_context():  # and a file that matches its (re-declared) checksum but is no video
        seg = db.session.scalars(select(Segment).where(Segment.name == recorded.names[2])).one()
        recorded.path(2).write_bytes(b"not a matroska file")
        seg.sha256_actual = hashlib.sha256(b"not a matroska file").hexdigest()
        db.session.commit()

    result = join_questions(recorded.attempt_id)

    kinds = {(p["seq"], p["kind"]) for p in result["problems"]}
    assert kinds == {(0, "checksum_mismatch"), (2, "unreadable")}
    unreadable = next(p for p in result["problems"] if p["kind"] == "unreadable")
    assert unreadable["question"] == 1 and unreadable["seconds"][0] == 0.0
    assert [f["segments"] for f in result["files"]] == [[1], [3]]
    assert len(media_events(app, recorded.attempt_id)) == 2


def test_an_unknown_attempt_is_an_error(recorded: Recorded) -> None:
    with pytest.raises(LookupError):
        join_questions("no-such-attempt")
