"""Benchmark of the station's segment recorder; prints one JSON line on stdout (logs go to stderr).

Input: a generated 1280x720 25 fps test video (ffmpeg ``testsrc2`` with temporal noise, so every
frame differs) played by the real :class:`FileCamera`, paced in real time, and a 48 kHz mono WAV
played by the real :class:`WavSource`; both feed the real :class:`SegmentRecorder` (3 s segments,
libx264 ultrafast/zerolatency + AAC) for ``--seconds``.

Reports:
- ``frames_expected`` (seconds x 25), ``frames_written`` (frames decoded back from the closed
  segments), ``dropped`` (expected - written);
- ``av_drift_ms_max``: per segment, |video duration - audio duration| of the decoded streams, the
  largest over all segments. AAC codes 1024-sample frames, so up to 21.3 ms of it is the last
  frame's padding, not drift; and when the camera delivers frames late (``camera_late_ms_max``,
  a starved CPU) a segment's video can end before its boundary, which shows up here too;
- ``cpu_s_per_frame``: CPU time of the recorder's encoder thread per frame. libx264 runs in that
  thread (one encoder thread), and so do the colour conversion, AAC encoding of the audio, muxing,
  and closing, fsyncing and hashing segments: all of the recorder's work, timed alone;
- ``process_cpu_s_per_frame``: the process CPU time of the recording run minus that of a
  capture-only run of the same devices (frames thrown away), per frame, monitoring excluded. It
  also counts what running capture and encoding side by side on few cores costs (caches, the
  camera decoder's threads), so it is higher and noisier;
- ``segment_close_ms_p99``: for every rotation, from the capture of the boundary frame (when the
  recorder decides to rotate, plus its queueing) to ``on_closed`` (the segment flushed, fsynced,
  renamed and hashed); measured outside the recorder from ``SegmentInfo.ended_at``;
- the peer: ``ffmpeg_cpu_s_per_frame``, the ffmpeg CLI encoding the same number of the same raw
  bgr24 frames from a pipe with the same codec and preset (its CPU from ``RUSAGE_CHILDREN``), and
  ``ratio_vs_ffmpeg`` = cpu_s_per_frame / ffmpeg_cpu_s_per_frame (goal <= 1.1);
- ``monitor_samples``, ``monitor_cpu_s_per_sample``: exam monitoring runs beside the recorder as
  on a station (``--monitor-fps``, default 2; 0 turns it off): the face quality gate on the latest
  frame at nice 10, dropping late samples. Its CPU is subtracted from ``process_cpu_s_per_frame``; the
  point is that ``dropped`` stays 0 with it on;
- ``load_avg_1m`` before and after: CPU figures and drops are only fair on an otherwise idle machine.

Run: ``.venv/bin/python bench/recording.py --seconds 60``. Generated media is cached in
``--cache-dir`` (default ``~/.cache/examkiosk-bench``).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from examkiosk_wire.face import FaceEngine
from station.capture.audio import WavSource
from station.capture.camera import FileCamera
from station.capture.frames import AudioChunk, VideoFrame
from station.recording.base import SegmentInfo
from station.recording.pyav import SegmentRecorder
from station.vision.face_quality import assess

logger = logging.getLogger("bench.recording")

WIDTH, HEIGHT, FPS = 1280, 720, 25
AUDIO_RATE = 48000
SEGMENT_SECONDS = 3.0
SOURCE_SECONDS = 10  # the test clip loops, as FileCamera does
# Temporal noise on testsrc2 (every frame differs); the source is coded at CRF 28 so that decoding
# it (the camera's share of the CPU) stays cheap next to encoding.
VIDEO_FILTER = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS},noise=alls=8:allf=t"
VIDEO_NAME = f"testsrc2_noise8_{WIDTH}x{HEIGHT}_{FPS}fps_{SOURCE_SECONDS}s_crf28.mkv"
WAV_NAME = f"tone_noise_{AUDIO_RATE}hz_mono_{SOURCE_SECONDS}s.wav"
FFMPEG_PEER = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "examkiosk-bench"


def make_test_video(cache: Path) -> Path:
    """The 1280x720 25 fps test clip (generated once with ffmpeg, then reused)."""
    path = cache / VIDEO_NAME
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mkv")
    logger.info("generating %s", path)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", VIDEO_FILTER, "-t", str(SOURCE_SECONDS),
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-g", str(2 * FPS), "-pix_fmt", "yuv420p",
         str(tmp)],
        check=True, timeout=600,
    )
    os.replace(tmp, path)
    return path


def make_test_wav(cache: Path) -> Path:
    """A 48 kHz mono tone with a little noise (generated once, then reused)."""
    path = cache / WAV_NAME
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(SOURCE_SECONDS * AUDIO_RATE) / AUDIO_RATE
    signal = 9000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 600, t.size)
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(AUDIO_RATE)
        wav.writeframes(np.clip(signal, -32768, 32767).astype("<i2").tobytes())
    os.replace(tmp, path)
    return path


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def capture(video: Path, wav: Path, frames: int, on_video: Callable[[VideoFrame], None],
            on_audio: Callable[[AudioChunk], None], before_stop: Callable[[], None] = lambda: None) -> dict:
    """Read ``frames`` frames from the paced FileCamera (and the WavSource meanwhile) into the sinks.

    Returns the process CPU seconds from the first read to the end (``before_stop`` included) and
    how late the camera delivered its latest frame against its schedule.
    """
    cam = FileCamera(video)
    mic = WavSource(wav, rate=AUDIO_RATE, channels=1, chunk=1024)
    cam.open()
    mic.open()
    if cam.size != (WIDTH, HEIGHT) or round(cam.fps) != FPS:
        raise RuntimeError(f"test video is {cam.size} at {cam.fps} fps, expected {WIDTH}x{HEIGHT} at {FPS}")
    stop_audio = threading.Event()
    late = [0.0]
    errors: list[BaseException] = []

    def video_loop() -> None:
        try:
            t_first = None
            for i in range(frames):
                frame = cam.read()
                if t_first is None:
                    t_first = frame.t
                late[0] = max(late[0], frame.t - (t_first + i / cam.fps))
                on_video(frame)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def audio_loop() -> None:
        try:
            while not stop_audio.is_set():
                on_audio(mic.read())
        except BaseException as exc:
            errors.append(exc)

    cpu0 = cpu_self()
    threads = [threading.Thread(target=video_loop, name="bench-video"),
               threading.Thread(target=audio_loop, name="bench-audio")]
    for t in threads:
        t.start()
    threads[0].join()
    stop_audio.set()
    threads[1].join()
    before_stop()
    cpu = cpu_self() - cpu0
    cam.close()
    mic.close()
    if errors:
        raise RuntimeError(f"capture failed: {errors[0]!r}") from errors[0]
    return {"cpu": cpu, "late_ms_max": late[0] * 1000}


def decode_segment(path: Path) -> tuple[int, float, float]:
    """(video frames, video duration, audio duration) of a closed segment, decoded with PyAV."""
    with av.open(str(path)) as c:
        pts = []
        frame_s = 1.0 / FPS
        for f in c.decode(video=0):
            pts.append(float(f.pts * f.time_base))
            if f.duration:
                frame_s = float(f.duration * f.time_base)
    with av.open(str(path)) as c:
        a_start, a_end = math.inf, -math.inf
        for f in c.decode(audio=0):
            start = float(f.pts * f.time_base)
            a_start = min(a_start, start)
            a_end = max(a_end, start + f.samples / f.sample_rate)
    video = (max(pts) - min(pts) + frame_s) if pts else 0.0
    audio = (a_end - max(a_start, 0.0)) if a_end > -math.inf else 0.0
    return len(pts), video, audio


class MonitorLoad:
    """The station's exam monitoring beside the recorder, as the agent runs it.

    A thread at nice 10 that takes the latest frame ``fps`` times a second, runs the face
    quality gate on it (HOG detection, landmarks) and computes a descriptor when a face
    passes, and drops the samples it is late for. Its own CPU time is counted apart, so that
    the recorder's figures stay comparable with the ffmpeg peer.
    """

    def __init__(self, fps: float):
        self.interval = 1.0 / fps
        self.latest: VideoFrame | None = None
        self.samples = 0
        self.cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-monitor")

    def _run(self) -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        engine = FaceEngine()
        cpu0 = time.thread_time()
        next_at = time.monotonic()
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at = max(next_at + self.interval, time.monotonic())  # late: drop the missed samples
            frame = self.latest
            if frame is None:
                continue
            quality = assess(frame.image, engine)
            if quality.ok:
                engine.descriptor(frame.image, quality.box)
            self.samples += 1
        self.cpu = time.thread_time() - cpu0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def record(video: Path, wav: Path, frames: int, out_dir: Path, monitor_fps: float = 0.0) -> dict:
    close_ms: list[float] = []
    stopping = threading.Event()
    monitor = MonitorLoad(monitor_fps) if monitor_fps > 0 else None

    def on_closed(info: SegmentInfo) -> None:
        # ended_at is the server time (here: wall clock) of the boundary frame's capture.
        if not stopping.is_set():
            close_ms.append((time.time() - info.ended_at) * 1000)

    rec = SegmentRecorder(out_dir, "bench", "cam0", fps=FPS, size=(WIDTH, HEIGHT), audio_rate=AUDIO_RATE,
                          audio_channels=1, segment_seconds=SEGMENT_SECONDS, clock=time.time, on_closed=on_closed)
    rec.start(question=1)

    def on_video(frame: VideoFrame) -> None:
        rec.push_video(frame)
        if monitor is not None:
            monitor.latest = frame

    def stop() -> None:
        stopping.set()
        if monitor is not None:
            monitor.stop()
        rec.stop()

    if monitor is not None:
        monitor.start()
    run = capture(video, wav, frames, on_video, rec.push_audio, before_stop=stop)
    if monitor is not None:
        run["cpu"] -= monitor.cpu
    return {**run, "segments": rec.segments, "close_ms": close_ms, "frames_written_recorder": rec.frames_written,
            "recorder_cpu": rec.cpu_s,
            "monitor_samples": monitor.samples if monitor else 0, "monitor_cpu": monitor.cpu if monitor else 0.0}


def ffmpeg_peer(video: Path, frames: int, out: Path) -> float:
    """CPU seconds of the ffmpeg CLI encoding ``frames`` raw bgr24 frames of the looped clip from a pipe."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{WIDTH}x{HEIGHT}",
           "-r", str(FPS), "-i", "-", *FFMPEG_PEER, "-f", "matroska", str(out)]
    before = cpu_children()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    sent = 0
    try:
        while sent < frames:
            with av.open(str(video)) as c:  # the same frames in the same order as FileCamera's loop
                for f in c.decode(video=0):
                    proc.stdin.write(f.to_ndarray(format="bgr24").tobytes())
                    sent += 1
                    if sent == frames:
                        break
        proc.stdin.close()
    finally:
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"ffmpeg exited with {rc}")
    return cpu_children() - before


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="recording length (default 60)")
    parser.add_argument("--baseline-seconds", type=float, default=None,
                        help="length of the capture-only run (default: --seconds, at most 60)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="where test media is kept")
    parser.add_argument("--keep", action="store_true", help="keep the segments (their directory is logged)")
    parser.add_argument("--monitor-fps", type=float, default=2.0,
                        help="exam monitoring beside the recorder, samples per second (0: off; default 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not shutil.which("ffmpeg"):
        parser.error("ffmpeg is not installed")

    video, wav = make_test_video(args.cache_dir), make_test_wav(args.cache_dir)
    load_before = round(os.getloadavg()[0], 2)  # other work on this machine skews every figure
    frames = round(args.seconds * FPS)
    base_frames = round(min(args.baseline_seconds or args.seconds, 60.0) * FPS)
    work = Path(tempfile.mkdtemp(prefix="ek-bench-rec-"))
    try:
        logger.info("capture-only run: %d frames", base_frames)
        baseline = capture(video, wav, base_frames, lambda f: None, lambda a: None)
        capture_cpu_per_frame = baseline["cpu"] / base_frames

        logger.info("recording run: %d frames in %g s segments into %s", frames, SEGMENT_SECONDS, work / "segments")
        run = record(video, wav, frames, work / "segments", monitor_fps=args.monitor_fps)
        segments: list[SegmentInfo] = run["segments"]
        written, drift = 0, 0.0
        for seg in segments:
            n, v, a = decode_segment(seg.path)
            written += n
            drift = max(drift, abs(v - a))
        if written != run["frames_written_recorder"]:
            logger.warning("recorder counted %d frames, the segments hold %d", run["frames_written_recorder"], written)
        cpu_per_frame = run["recorder_cpu"] / frames
        process_cpu_per_frame = (run["cpu"] - capture_cpu_per_frame * frames) / frames

        logger.info("ffmpeg peer: %d raw frames through a pipe", frames)
        ffmpeg_cpu = ffmpeg_peer(video, frames, work / "ffmpeg.mkv") / frames

        result = {
            "seconds": args.seconds,
            "frames_expected": frames,
            "frames_written": written,
            "dropped": frames - written,
            "segments": len(segments),
            "av_drift_ms_max": round(drift * 1000, 2),
            "cpu_s_per_frame": round(cpu_per_frame, 5),
            "process_cpu_s_per_frame": round(process_cpu_per_frame, 5),
            "capture_cpu_s_per_frame": round(capture_cpu_per_frame, 5),
            "segment_close_ms_p99": round(p99(run["close_ms"]), 1),
            "segment_close_ms_max": round(max(run["close_ms"], default=float("nan")), 1),
            "camera_late_ms_max": round(run["late_ms_max"], 1),
            "ffmpeg_cpu_s_per_frame": round(ffmpeg_cpu, 5),
            "ratio_vs_ffmpeg": round(cpu_per_frame / ffmpeg_cpu, 3),
            "segment_mb": round(sum(s.size for s in segments) / 1e6, 1),
            "monitor_fps": args.monitor_fps,
            "monitor_samples": run["monitor_samples"],
            "monitor_cpu_s_per_sample": round(run["monitor_cpu"] / max(run["monitor_samples"], 1), 4),
            "load_avg_1m": [load_before, round(os.getloadavg()[0], 2)],
        }
    finally:
        if args.keep:
            logger.info("kept %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
