"""The watch-back's parts below the kiosk (issue 15, part 2): a mock attempt recorded by the real
runtime recording (``station.runtime.recorders.Recording`` driving ``SegmentRecorder``, two cameras,
journaled and signed), laid out by ``station.playback.plan``, copied into MP4 by
``station.playback.remux`` (checked with ffprobe and by comparing the packets: no re-encoding), the
temporary films of ``station.playback.store``, the loudest microphone level the recording keeps
and the sitting's kind the flow keeps."""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from station.capture.audio import level
from station.capture.frames import AudioChunk, VideoFrame
from station.config import StationSettings
from station.flow import FlowState, Schedule, Screen, TimingMode
from station.playback.errors import WatchbackUnavailable
from station.playback.plan import plan
from station.playback.remux import remux
from station.playback.store import WatchbackStore
from station.recording.pyav import SegmentRecorder
from station.runtime.runner import Runtime

FPS = 25
RATE = 48000
SIZE = (320, 240)
CHUNK = 1024
EVIDENCE_LAG = 0.12  # the evidence camera's first frame comes this much after the main camera's
# The mock attempt: the waiting room, then two questions (seconds of each).
PARTS = ((None, 1.0), (1, 2.0), (2, 2.0))
QUIET, LOUD = 400, 16000  # tone amplitudes: speech-like, then one loud moment in question 2


def station_settings(tmp_path: Path, port: int = 8700, **extra) -> StationSettings:
    camera = {"kind": "opencv", "width": SIZE[0], "height": SIZE[1], "fps": FPS}
    return StationSettings(station_id="st-01", centre="c1", data_dir=tmp_path / "station",
                           edge={"token": "t", "api": "http://127.0.0.1:9"},
                           mqtt={"username": "st-01", "password": "p"}, kiosk={"port": port, "voice": False},
                           camera=camera, second_camera=dict(camera, source="1"),
                           recording={"segment_seconds": 1.0}, **extra)


def picture(index: int, question: int | None, camera: str) -> np.ndarray:
    """A frame that says which camera and question it is, with a bar that moves."""
    w, h = SIZE
    image = np.full((h, w, 3), (40, 60, 90) if camera == "main" else (70, 50, 30), np.uint8)
    x = (index * 6) % (w - 24)
    image[:, x : x + 24] = (0, 200, 255)
    label = f"{camera} {'wait' if question is None else f'Q{question}'} #{index}"
    cv2.putText(image, label, (12, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return image


def tone(n: int, start: int, amplitude: int) -> np.ndarray:
    k = np.arange(start, start + n)
    return (amplitude * np.sin(2 * np.pi * 440 * k / RATE)).astype(np.int16).reshape(-1, 1)


def record_mock(agent: Runtime, attempt: str, parts=PARTS, cameras=("main", "second")) -> None:
    """Record ``parts`` through the agent's own recording, as the flow drives it: StartRecording,
    a cut at each question, StopRecording. Capture times lie ahead so no rotation waits for audio."""
    recording = agent.ctx.recording
    settings = agent.settings
    configs = {"main": settings.camera, "second": settings.second_camera}
    t0 = time.monotonic() + 30
    total = sum(seconds for _, seconds in parts)
    loud_from = total - 1.0  # the last second of the last question is loud
    chunks = []
    for i in range(int(total * RATE) // CHUNK):
        at = i * CHUNK / RATE
        chunks.append(AudioChunk(tone(CHUNK, i * CHUNK, LOUD if at >= loud_from else QUIET), RATE, t0 + at))
    recording.record(attempt, parts[0][0], {c: (None, configs[c]) for c in cameras})
    index = 0
    for number, (question, seconds) in enumerate(parts):
        if number:
            recording.cut(question)
        for _ in range(round(seconds * FPS)):
            t = t0 + index / FPS
            while chunks and chunks[0].t + chunks[0].duration <= t:
                recording.push_audio(chunks.pop(0))
            for camera in cameras:
                lag = EVIDENCE_LAG if camera == "second" else 0.0
                recording.push_video(camera, VideoFrame(picture(index, question, camera), t + lag, index))
            index += 1
    for chunk in chunks:
        recording.push_audio(chunk)
    recording.stop_all()


def mock_state(agent: Runtime, attempt: str, kind: str = "mock", screen: Screen = Screen.DONE) -> FlowState:
    now = agent.clock.now()
    questions = tuple(int(s) for q, s in PARTS if q is not None)
    return FlowState(screen=screen, attempt_id=attempt, question=2, answered=(1, 2), end_reason="time_up",
                     schedule=Schedule(sitting="c1-mock", timing_mode=TimingMode.PER_QUESTION,
                                       waiting_opens_at=now - 60, starts_at=now - 10, entry_closes_at=now - 5,
                                       lot_deadline_at=now - 20, question_seconds=questions,
                                       total_seconds=sum(questions), kind=kind))


@pytest.fixture
def agent(tmp_path):
    agent = Runtime(station_settings(tmp_path))
    try:
        yield agent
    finally:
        agent.stop()


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


def packets(path: Path, kind: str) -> list[bytes]:
    """The payloads of a file's ``kind`` packets, in order (Matroska: without the AAC priming frame)."""
    with av.open(str(path)) as c:
        streams = c.streams.video if kind == "video" else c.streams.audio
        return [bytes(p) for p in c.demux(streams[0]) if p.size and (kind == "video" or p.pts >= 0)]


def top_boxes(path: Path) -> list[bytes]:
    data = path.read_bytes()
    boxes, at = [], 0
    while at + 8 <= len(data):
        boxes.append(data[at + 4 : at + 8])
        at += int.from_bytes(data[at : at + 4], "big")
    return boxes


def test_the_runtime_records_a_mock_attempt_and_keeps_its_loudest_level(agent):
    assert agent.ctx.recording.loudest("m-1") is None
    agent.ctx.recording.push_audio(AudioChunk(tone(CHUNK, 0, 30000), RATE, time.monotonic()))
    assert agent.ctx.recording.loudest("m-1") is None, "nothing records: the level is not the attempt's"
    record_mock(agent, "m-1")
    loud = level(tone(CHUNK, 0, LOUD))
    assert agent.ctx.recording.loudest("m-1") == pytest.approx(loud, abs=0.02)
    assert loud > 0.8 > level(tone(CHUNK, 0, QUIET))
    segments = agent.ctx.journal.segments_of("m-1")
    assert {s.camera for s in segments} == {"main", "second"}
    assert [s.question for s in segments if s.camera == "main"] == [None, 1, 1, 2, 2]

    record_mock(agent, "m-2", parts=((1, 1.0),), cameras=("main",))
    assert agent.ctx.recording.loudest("m-1") is None, "a new attempt starts its own"
    assert agent.ctx.recording.loudest("m-2") == pytest.approx(loud, abs=0.02)


def test_a_camera_is_copied_into_one_faststart_mp4_without_reencoding(agent, tmp_path):
    record_mock(agent, "m-1")
    segments = agent.ctx.journal.segments_of("m-1")
    laid = plan(segments, {s.name for s in segments}, mock_state(agent, "m-1").schedule)
    main, second = laid.tracks
    assert (main.camera, second.camera) == ("main", "second")
    assert second.offset == pytest.approx(EVIDENCE_LAG, abs=0.01)

    made = remux(main.pieces, tmp_path / "main.mp4")
    info = ffprobe(made.path)
    assert "mp4" in info["format"]["format_name"]
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    assert (made.video_codec, made.audio_codec, made.skipped) == ("h264", "aac", ())
    recorded = sum(s.ended_at - s.started_at for s in segments if s.camera == "main")
    assert float(info["format"]["duration"]) == pytest.approx(recorded, abs=0.1)
    assert made.seconds == pytest.approx(recorded, abs=0.1)
    assert top_boxes(made.path).index(b"moov") < top_boxes(made.path).index(b"mdat"), "+faststart: index first"
    # Stream copy: every H.264 and AAC packet of the segments, byte for byte, in order.
    main_files = [p.path for p in main.pieces]
    assert packets(made.path, "video") == [p for f in main_files for p in packets(f, "video")]
    assert packets(made.path, "audio") == [p for f in main_files for p in packets(f, "audio")]
    with av.open(str(made.path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == round(sum(seconds for _, seconds in PARTS) * FPS)


def test_the_plan_has_chapters_figures_and_knows_deleted_files(agent):
    record_mock(agent, "m-1")
    segments = agent.ctx.journal.segments_of("m-1")
    schedule = mock_state(agent, "m-1").schedule
    names = {s.name for s in segments}
    laid = plan(segments, names, schedule)
    assert [c.question for c in laid.chapters] == [None, 1, 2]
    assert [c.at for c in laid.chapters] == pytest.approx([0.0, 1.0, 3.0], abs=0.05)
    assert [c.expected for c in laid.chapters] == [None, 2.0, 2.0]
    assert laid.recorded_seconds == pytest.approx(4.0, abs=0.05)
    assert laid.waiting_seconds == pytest.approx(1.0, abs=0.05)
    assert laid.expected_seconds == 4.0
    assert (laid.segments, laid.missing) == (10, 0)
    whole = replace(schedule, timing_mode=TimingMode.WHOLE_SESSION, total_seconds=300)
    assert plan(segments, names, whole).expected_seconds == 300
    assert all(c.expected is None for c in plan(segments, names, whole).chapters)

    # Question 1's first main segment is gone: it stays a gap, the later pieces keep their place.
    gone = next(s for s in segments if s.camera == "main" and s.question == 1)
    part = plan(segments, names - {gone.name}, schedule)
    assert part.tracks[0].missing == 1 and part.missing == 1
    assert [p.at for p in part.tracks[0].pieces] == pytest.approx([0.0, 2.0, 3.0, 4.0], abs=0.05)
    assert part.recorded_seconds == laid.recorded_seconds, "the figures count every journaled segment"
    # The evidence camera alone is no watch-back: the main camera's files are what it plays.
    with pytest.raises(WatchbackUnavailable) as deleted:
        plan(segments, {s.name for s in segments if s.camera == "second"}, schedule)
    assert (deleted.value.code, deleted.value.status) == ("recording_deleted", 410)
    with pytest.raises(WatchbackUnavailable) as nothing:
        plan([], set(), schedule)
    assert nothing.value.code == "no_recording"


def test_the_films_are_made_once_and_removed(agent, tmp_path):
    record_mock(agent, "m-1")
    root = tmp_path / "watchback"
    (root / "left-by-a-crash").mkdir(parents=True)
    store = WatchbackStore(root)
    assert not root.exists(), "films left from before the start are removed"
    segments = agent.ctx.journal.segments_of("m-1")
    laid = plan(segments, {s.name for s in segments}, None)
    ready = store.open("m-1", laid)
    assert [f.camera for f in ready.films] == ["main", "second"]
    assert all(f.path.is_file() and f.path.parent == root / ready.token for f in ready.films)
    assert ready.films[0].audio
    assert store.open("m-1", laid) is ready, "asked again: the same films"
    assert store.film("m-1", "second") == ready.films[1] and store.film("m-2", "main") is None
    store.clear()
    assert not root.exists() and store.film("m-1", "main") is None

    # A damaged segment: a clear refusal, nothing half-made left behind.
    broken = segments[0].path
    broken.write_bytes(b"not a matroska file" * 100)
    with pytest.raises(WatchbackUnavailable) as refused:
        store.open("m-1", laid)
    assert refused.value.code == "recording_unreadable"
    assert list(root.iterdir()) == []


def test_the_sitting_kind_comes_with_the_attempt_and_survives_the_journal():
    sitting = {"id": "s1", "kind": "mock", "timing_mode": "per_question", "waiting_opens_at": 1.0,
               "starts_at": 2.0, "entry_closes_at": 3.0, "lot_deadline_at": 1.5, "question_seconds": [60],
               "total_seconds": 60}
    schedule = Schedule.from_api(sitting)
    assert schedule.kind == "mock" and schedule.mock
    state = FlowState(schedule=schedule)
    assert FlowState.from_dict(json.loads(json.dumps(state.to_dict()))).schedule.mock
    old = {k: v for k, v in sitting.items() if k != "kind"}
    assert not Schedule.from_api(old).mock, "an edge that does not say: formal"
    saved = state.to_dict()
    del saved["schedule"]["kind"]  # a journal written before the kind was kept
    assert FlowState.from_dict(saved).schedule.kind == "formal"


def test_an_evidence_camera_without_sound_makes_a_film_without_audio(tmp_path):
    """A segment with an empty audio stream (no microphone pushed to it) gives a video-only MP4."""
    rec = SegmentRecorder(tmp_path / "rec", "a1", "second", fps=FPS, size=SIZE, segment_seconds=1.0)
    rec.start()
    t0 = time.monotonic() - 5
    for i in range(2 * FPS):
        rec.push_video(VideoFrame(picture(i, 1, "second"), t0 + i / FPS, i))
    rec.stop()
    rows = [SimpleNamespace(name=s.name, camera="main", seq=s.seq, question=1, path=s.path,
                            started_at=s.started_at, ended_at=s.ended_at) for s in rec.segments]
    made = remux(plan(rows, {r.name for r in rows}, None).tracks[0].pieces, tmp_path / "v.mp4")
    assert made.audio_codec is None
    assert [s["codec_name"] for s in ffprobe(made.path)["streams"]] == ["h264"]
