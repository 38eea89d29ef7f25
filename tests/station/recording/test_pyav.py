"""station.recording.pyav (SegmentRecorder) writing real segments, checked with PyAV, ffmpeg and ffprobe."""

from __future__ import annotations

import bisect
import hashlib
import shutil
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from station.capture.audio import WavSource, level
from station.capture.camera import FileCamera
from station.capture.frames import AudioChunk, VideoFrame
from station.recording.base import CutAt, RecorderError, SegmentInfo
from station.recording.pyav import SegmentRecorder

FPS = 25
RATE = 48000
SERVER_OFFSET = 1000.0  # the "edge" clock runs 1000 s ahead of this machine


def server_clock() -> float:
    return time.time() + SERVER_OFFSET


from tests.media import make_video, make_wav  # noqa: E402


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    make_wav(d / "tone.wav", 2.0, rate=RATE)
    return {"video": make_video(d / "clip.mp4", 4.0, fps=FPS), "wav": d / "tone.wav"}


def probe(path: Path) -> dict:
    """Decode a segment: frame and sample counts, first-frame keyframe flags."""
    with av.open(str(path)) as c:
        kinds = sorted(s.type for s in c.streams)
        first_packet = next(p for p in c.demux(video=0) if p.size)
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    with av.open(str(path)) as c:
        audio = [f.to_ndarray() for f in c.decode(audio=0)]
    samples = np.concatenate(audio, axis=1) if audio else np.zeros((1, 0), np.float32)
    return {
        "kinds": kinds,
        "frames": len(frames),
        "first_packet_key": first_packet.is_keyframe,
        "first_frame_key": frames[0].key_frame if frames else None,
        "audio": samples,
    }


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip())


def concat(segments: list[SegmentInfo], out: Path, *, inpoint: bool = False) -> Path:
    """Join without re-encoding, as the edge does.

    ``inpoint 0`` makes the concat demuxer advance by each segment's video
    length instead of counting the AAC encoder's priming frame (about 21 ms
    before 0 in every segment) into the timeline.
    """
    listing = out.with_suffix(".txt")
    extra = "inpoint 0\n" if inpoint else ""
    listing.write_text("".join(f"file '{s.path}'\n{extra}" for s in segments))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-c", "copy", str(out)],
        check=True, capture_output=True, timeout=60,
    )
    return out


def test_live_recording_rotates_without_losing_a_frame(media: dict[str, Path], tmp_path: Path) -> None:
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        pytest.skip("ffmpeg/ffprobe not installed")
    out_dir = tmp_path / "rec"
    closed: list[tuple[SegmentInfo, list[str], bool]] = []

    def on_closed(info: SegmentInfo) -> None:
        # Called after fsync + rename: the file is final and nothing else is open yet.
        closed.append((info, sorted(p.name for p in out_dir.glob("*.part")), info.path.exists()))

    cam = FileCamera(media["video"])
    mic = WavSource(media["wav"], chunk=1024)
    cam.open()
    mic.open()
    rec = SegmentRecorder(
        out_dir, "att42", "cam0", fps=cam.fps, size=cam.size, audio_rate=mic.rate,
        audio_channels=mic.channels, segment_seconds=2.0, clock=server_clock, on_closed=on_closed,
    )
    total_frames, cut_after = 7 * FPS, 3 * FPS  # 7 s; question 1 from the 76th frame on
    pushed: list[VideoFrame] = []
    stop_audio = threading.Event()

    def video() -> None:
        for _ in range(total_frames):
            frame = cam.read()
            rec.push_video(frame)
            pushed.append(frame)
            if len(pushed) == cut_after:
                rec.cut(question=1)

    def audio() -> None:
        while not stop_audio.is_set():
            rec.push_audio(mic.read())

    rec.start(question=0)
    threads = [threading.Thread(target=video), threading.Thread(target=audio)]
    for t in threads:
        t.start()
    threads[0].join()
    stop_audio.set()
    threads[1].join()
    last = rec.stop()
    cam.close()
    mic.close()

    segments = rec.segments
    recorded = pushed[-1].t - pushed[0].t + 1 / FPS
    assert last == segments[-1]
    assert [s.seq for s in segments] == list(range(len(segments)))
    assert rec.seq == len(segments)
    assert len(segments) == 4  # [0, 2) [2, 3) | cut | [3, 5) [5, 7)
    assert sorted(p.name for p in out_dir.iterdir()) == [f"att42_cam0_{i:05d}.mkv" for i in range(4)]
    assert [c[0] for c in closed] == segments
    assert all(parts == [] and exists for _, parts, exists in closed)

    # Question tags switch exactly at the cut.
    assert [s.question for s in segments] == [0, 0, 1, 1]
    assert sum(s.frames for s in segments if s.question == 0) == cut_after

    # Every file is complete, decodable, hashed, and no frame went missing.
    decoded = 0
    for s in segments:
        assert s.path.name == f"att42_cam0_{s.seq:05d}.mkv"
        data = s.path.read_bytes()
        assert s.size == len(data)
        assert s.sha256 == hashlib.sha256(data).hexdigest()
        info = probe(s.path)
        assert info["kinds"] == ["audio", "video"]
        assert info["frames"] == s.frames
        assert info["first_packet_key"] and info["first_frame_key"]
        # Audio covers the segment (AAC rounds up to 1024-sample frames) and is the tone.
        assert s.audio_samples == pytest.approx(s.duration * RATE, abs=0.03 * RATE)
        assert info["audio"].shape[1] >= s.audio_samples
        assert level((info["audio"][0] * 32767).astype(np.int16)) > 0.8
        decoded += info["frames"]
    assert decoded == total_frames == rec.frames_written

    # Server-time stamps: contiguous, and the recording's length.
    for a, b in zip(segments, segments[1:], strict=False):
        assert b.started_at == a.ended_at
    first_server_time = server_clock() - (time.monotonic() - pushed[0].t)
    assert segments[0].started_at == pytest.approx(first_server_time, abs=0.05)
    assert segments[-1].ended_at - segments[0].started_at == pytest.approx(recorded, abs=0.01)
    assert segments[2].started_at == pytest.approx(
        segments[0].started_at + pushed[cut_after].t - pushed[0].t, abs=0.001
    )

    joined = concat(segments, tmp_path / "joined.mkv")
    assert abs(ffprobe_duration(joined) - recorded) <= 0.5
    exact = concat(segments, tmp_path / "joined_inpoint.mkv", inpoint=True)
    assert abs(ffprobe_duration(exact) - recorded) <= 1 / FPS


def synthetic_frames(n: int, t0: float, size: tuple[int, int] = (160, 120)) -> list[VideoFrame]:
    w, h = size
    return [
        VideoFrame(image=np.full((h, w, 3), (i * 9) % 250, np.uint8), t=t0 + i / FPS, index=i)
        for i in range(n)
    ]


def tone_chunks(t0: float, seconds: float, chunk: int = 1024) -> list[AudioChunk]:
    n = int(seconds * RATE) // chunk
    k = np.arange(chunk)
    return [
        AudioChunk(
            samples=(8000 * np.sin(2 * np.pi * 440 * (i * chunk + k) / RATE)).astype(np.int16).reshape(-1, 1),
            rate=RATE,
            t=t0 + i * chunk / RATE,
        )
        for i in range(n)
    ]


def feed(rec: SegmentRecorder, frames: list[VideoFrame], chunks: list[AudioChunk]) -> None:
    """Push in capture order: a chunk once its last sample is recorded, as a sound card would."""
    pending = list(chunks)
    for frame in frames:
        while pending and pending[0].t + pending[0].duration <= frame.t:
            rec.push_audio(pending.pop(0))
        rec.push_video(frame)
    for chunk in pending:
        rec.push_audio(chunk)


def test_audio_is_split_at_frame_boundaries_and_gaps_are_filled(tmp_path: Path) -> None:
    # Capture times in the near future, so no rotation gives up waiting for audio.
    t0 = time.monotonic() + 30
    frames = synthetic_frames(5 * FPS, t0)
    chunks = tone_chunks(t0 - 0.01, 5.0)
    del chunks[60:70]  # the microphone drops 0.2 s around t = 1.3..1.5 s
    rec = SegmentRecorder(tmp_path, "a1", "cam1", fps=FPS, size=(160, 120), segment_seconds=1.0)
    rec.start()
    feed(rec, frames, chunks)
    rec.stop()
    segments = rec.segments
    assert [s.frames for s in segments] == [25] * 5
    for s in segments[:-1]:
        # Exactly the samples between its first frame and the next segment's first frame.
        assert s.audio_samples == pytest.approx(1 * RATE, abs=1)
    for s in segments:
        assert probe(s.path)["kinds"] == ["audio", "video"]
    # The gap was filled with silence, not closed up: audio in segment 1 stays in sync.
    gap = probe(segments[1].path)["audio"][0]
    assert np.abs(gap[int(0.35 * RATE) : int(0.45 * RATE)]).max() < 0.01
    assert np.abs(gap[int(0.6 * RATE) : int(0.7 * RATE)]).max() > 0.1


def test_video_only_still_has_an_audio_stream_and_numbering_resumes(tmp_path: Path) -> None:
    seqs_reported: list[int] = []
    rec = SegmentRecorder(
        tmp_path, "a2", "cam0", fps=FPS, size=(160, 120), segment_seconds=0.6, first_seq=7,
        on_closed=lambda s: seqs_reported.append(s.seq),
    )
    rec.start(question=None)
    rec.cut(question=3)  # before any frame: tags the first segment, makes no empty one
    for frame in synthetic_frames(2 * FPS, time.monotonic() - 5):
        rec.push_video(frame)
    last = rec.stop()
    segments = rec.segments
    assert [s.seq for s in segments] == seqs_reported == [7, 8, 9, 10]
    assert last is not None and last.seq == 10 and rec.seq == 11
    assert {s.question for s in segments} == {3}
    assert [s.frames for s in segments] == [15, 15, 15, 5]
    for s in segments:
        info = probe(s.path)
        assert info["kinds"] == ["audio", "video"]
        assert info["audio"].shape[1] == 0 and s.audio_samples == 0
        assert info["frames"] == s.frames and info["first_frame_key"]
    # A capture thread racing with stop() is not an error: late frames are ignored.
    rec.push_video(synthetic_frames(1, time.monotonic())[0])
    assert rec.frames_written == 2 * FPS
    with pytest.raises(RuntimeError):
        rec.cut(question=4)


def test_a_scheduled_cut_is_placed_at_its_instant_by_capture_time(tmp_path: Path) -> None:
    """The start's cut arrives after frames captured on both sides of the instant are queued: those
    captured before it still end the waiting room's segment, the first at or after it opens the
    question's, and both segments carry the instant itself as their boundary."""
    t0 = time.monotonic() - 10
    frames = synthetic_frames(2 * FPS, t0)  # 2 s at 25 fps: a frame every 40 ms
    instant = t0 + 1.01  # between frame 25 (t0 + 1.00) and frame 26 (t0 + 1.04)
    server_instant = 1_800_000_000.0
    rec = SegmentRecorder(tmp_path, "a3", "main", fps=FPS, size=(160, 120), segment_seconds=60.0,
                          clock=lambda: server_instant + (time.monotonic() - instant))
    rec.start(question=None)
    for frame in frames[:20]:
        rec.push_video(frame)
    rec.cut(question=1, at=CutAt(mono=instant, server=server_instant))  # the timer's cut, late by 10 frames
    for frame in frames[20:]:
        rec.push_video(frame)
    rec.stop()
    waiting, first = rec.segments
    assert (waiting.question, first.question) == (None, 1)
    assert waiting.frames == 26 and first.frames == 2 * FPS - 26  # frames 0..25 are before the instant
    assert waiting.ended_at == first.started_at == server_instant
    assert probe(first.path)["first_frame_key"]


def test_an_existing_segment_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "a3_cam0_00001.mkv").write_bytes(b"recorded before a reboot")
    rec = SegmentRecorder(tmp_path, "a3", "cam0", fps=FPS, size=(160, 120), segment_seconds=1.0)
    rec.start()
    for frame in synthetic_frames(3 * FPS, time.monotonic() - 5):
        rec.push_video(frame)
    rec.stop()
    assert [s.seq for s in rec.segments] == [0, 2, 3]
    assert (tmp_path / "a3_cam0_00001.mkv").read_bytes() == b"recorded before a reboot"


def test_wrong_audio_format_is_refused_at_push(tmp_path: Path) -> None:
    rec = SegmentRecorder(tmp_path, "a4", "cam0", fps=FPS, size=(160, 120), audio_channels=1)
    rec.start()
    try:
        with pytest.raises(ValueError, match="44100"):
            rec.push_audio(AudioChunk(np.zeros((1024, 1), np.int16), 44100, time.monotonic()))
        with pytest.raises(ValueError, match="expects"):
            rec.push_audio(AudioChunk(np.zeros((1024, 2), np.int16), RATE, time.monotonic()))
    finally:
        assert rec.stop() is None  # nothing was recorded: no file at all
    assert list(tmp_path.iterdir()) == []


def test_encoder_failure_surfaces_to_the_caller(tmp_path: Path) -> None:
    out_dir = tmp_path / "gone"
    rec = SegmentRecorder(out_dir, "a5", "cam0", fps=FPS, size=(160, 120))
    rec.start()
    out_dir.rmdir()  # the disk "disappears" before the first segment is created
    rec.push_video(synthetic_frames(1, time.monotonic())[0])
    with pytest.raises(RecorderError):
        rec.stop()
    with pytest.raises(RecorderError):  # capture threads learn of it at their next push
        rec.push_video(synthetic_frames(1, time.monotonic())[0])


# --- A/V drift over 30 minutes ------------------------------------------------------------------

DRIFT_MINUTES = 30
DRIFT_LIMIT_S = 0.040
MARK_EVERY = 49  # frames (1.96 s): markers fall at every position within the 3 s segments
MIC_SKEW = 300e-6  # the sound card's clock runs 300 ppm fast against the camera's
MIC_CHUNK = 4096  # samples per buffer (the PyAudio default is 1024; placement does not depend on it)


def luma(frame: av.VideoFrame) -> float:
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return float(rows[: frame.height, : frame.width].mean())


def marker_times(path: Path) -> tuple[list[float], list[float], int]:
    """(flash frame times, tone onset times, video frames) of a file, by presentation timestamps."""
    flashes: list[float] = []
    frames = 0
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        for f in c.decode(video=0):
            frames += 1
            if luma(f) > 128:
                flashes.append(float(f.pts * f.time_base))
    onsets: list[float] = []
    with av.open(str(path)) as c:
        for f in c.decode(audio=0):
            loud = np.abs(f.to_ndarray()[0]) > 0.1
            if loud.any():
                t = float(f.pts * f.time_base) + int(np.argmax(loud)) / f.sample_rate
                if not onsets or t - onsets[-1] > 0.5:
                    onsets.append(t)
    return flashes, onsets, frames


def stream_ends(path: Path) -> dict[str, float]:
    """Where each stream's last packet ends (seconds), from the packet timestamps."""
    ends: dict[str, float] = {}
    with av.open(str(path)) as c:
        for p in c.demux():
            if p.pts is not None:
                end = float((p.pts + (p.duration or 0)) * p.time_base)
                ends[p.stream.type] = max(ends.get(p.stream.type, end), end)
    return ends


def test_av_drift_stays_under_40_ms_over_30_minutes(tmp_path: Path) -> None:
    """30 minutes of media time, fed as fast as the encoder goes (not in real time).

    Every 1.96 s a white frame and a 30 ms tone burst are captured at the same moment; the
    microphone's sample clock runs 300 ppm fast (0.54 s over 30 minutes if samples were simply
    appended) and its buffers are dated up to 8 ms late, the camera's frames within ±2 ms, as
    real drivers do. The segments (3 s, two question cuts) are joined the way the edge joins
    them, and the drift is measured in the files: at the end of every segment (packet timestamps
    of audio against video) and at every marker of the whole 30-minute timeline.
    """
    from edge_server.jobs.media import concat as edge_concat

    rng = np.random.default_rng(3)
    frames_total = DRIFT_MINUTES * 60 * FPS
    t0 = time.monotonic() + 5.0
    mic_rate = RATE * (1 + MIC_SKEW)  # samples the card really delivers per second
    dark = np.full((120, 160, 3), 40, np.uint8)
    white = np.full((120, 160, 3), 220, np.uint8)
    burst = (12000 * np.sin(2 * np.pi * 1000 * np.arange(round(0.03 * RATE)) / RATE)).astype(np.int16)
    silence = np.zeros((MIC_CHUNK, 1), np.int16)
    flash_frames = set(range(0, frames_total, MARK_EVERY)) | {frames_total - 1}  # the last one at 29:59.96
    marks = [round(i / FPS * mic_rate) for i in sorted(flash_frames)]  # where the bursts start, in card samples

    def mic_chunk(i: int) -> AudioChunk:
        first = i * MIC_CHUNK
        samples = silence
        near = bisect.bisect_left(marks, first - len(burst))
        for start in marks[near:near + 2]:
            lo, hi = max(start, first), min(start + len(burst), first + MIC_CHUNK)
            if lo < hi:
                samples = samples.copy() if samples is silence else samples
                samples[lo - first: hi - first, 0] = burst[lo - start: hi - start]
        return AudioChunk(samples, RATE, t0 + first / mic_rate + rng.uniform(0, 0.008))

    cuts = {round(frames_total * 0.4) + 7: 2, round(frames_total * 0.7) + 19: 3}
    rec = SegmentRecorder(tmp_path / "seg", "drift", "main", fps=FPS, size=(160, 120), segment_seconds=3.0)
    rec.start(question=1)
    chunk = 0
    for i in range(frames_total):
        t = t0 + i / FPS
        while t0 + (chunk + 1) * MIC_CHUNK / mic_rate <= t:  # a buffer arrives once it is full
            rec.push_audio(mic_chunk(chunk))
            chunk += 1
        if i in cuts:
            rec.cut(cuts[i])
        rec.push_video(VideoFrame(white if i in flash_frames else dark, t + rng.uniform(-0.002, 0.002), i))
    for _ in range(2):  # the microphone goes on until the recorder stops
        rec.push_audio(mic_chunk(chunk))
        chunk += 1
    rec.stop()
    segments = rec.segments
    assert rec.frames_written == frames_total
    assert [s.question for s in segments].count(2) >= 2 and segments[-1].question == 3
    assert len(segments) >= DRIFT_MINUTES * 60 / 3

    # The end of every segment: its audio ends with its video (AAC pads to 1024 samples, 21 ms).
    # The last one, closed by stop(), also keeps the audio heard after its last frame.
    worst_end = 0.0
    for s in segments[:-1]:
        ends = stream_ends(s.path)
        worst_end = max(worst_end, abs(ends["audio"] - ends["video"]))
    assert worst_end < DRIFT_LIMIT_S, f"a segment's audio ends {worst_end * 1000:.1f} ms off its video"
    ends = stream_ends(segments[-1].path)
    assert -DRIFT_LIMIT_S < ends["audio"] - ends["video"] < 2 * MIC_CHUNK / RATE + DRIFT_LIMIT_S

    # The whole 30 minutes joined as the edge joins (concat demuxer, no re-encode): every marker.
    joined = tmp_path / "joined.mkv"
    edge_concat([s.path for s in segments], joined)
    flashes, onsets, frames = marker_times(joined)
    assert frames == frames_total
    assert len(flashes) == len(onsets) == len(marks)
    drift = [a - v for v, a in zip(flashes, onsets, strict=True)]
    worst = max(drift, key=abs)
    assert abs(worst) < DRIFT_LIMIT_S, f"A/V drift {worst * 1000:.1f} ms at {flashes[drift.index(worst)]:.0f} s"
    # The last marker is the last frame (17 frames after the one before): the drift at 29:59.96.
    assert flashes[-1] - flashes[-2] == pytest.approx((frames_total - 1) % MARK_EVERY / FPS, abs=0.01)
    assert abs(drift[-1]) < DRIFT_LIMIT_S
