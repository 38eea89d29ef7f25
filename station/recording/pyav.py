"""The PyAV (libx264 + AAC) recorder: crash-safe segments from pushed frames and audio.

Capture threads push frames and audio chunks; one encoder thread writes them
into short, self-contained Matroska segments (H.264 + AAC), named
``{attempt_id}_{camera}_{seq:05d}.mkv``.

Rotation works like picamera2's ``SplittableOutput``: the frame that crosses
the segment boundary (or the first frame after :meth:`SegmentRecorder.cut`)
becomes the first frame, and so a keyframe, of a fresh encoder in the next
segment; no frame is dropped. A cut at a scheduled instant (``CutAt``: the
start, a question boundary) is placed by capture time: frames captured before
the instant still end the old segment, the first one at or after it opens the
new one, and the instant is the old segment's ``ended_at`` and the new one's
``started_at`` (unless frames after it were already written: then the first
frame after the cut, at its own time). Before the old segment is closed the recorder
waits briefly for the audio that covers the boundary, so each segment's audio
ends where its video ends; an audio chunk that straddles the boundary is split.

A segment is written as ``<name>.part``; closing it flushes the encoders,
closes the container, fsyncs the file, renames it to its final name, fsyncs
the directory, hashes it and only then reports it through ``on_closed``. The
next segment's file is created after that, so a crash costs at most the one
open ``.part`` file.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from station.capture.frames import AudioChunk, VideoFrame
from station.recording.base import CutAt, Recorder, RecorderError, SegmentInfo, seal, segment_name
from station.recording.segment import OpenSegment

logger = logging.getLogger(__name__)

# How long (capture time) a rotation may wait for the audio covering the boundary.
AUDIO_GRACE_S = 0.5
# Warn when this many seconds of video wait for the encoder.
BACKLOG_WARN_S = 5.0

_STOP = object()


def _check_arguments(attempt_id: str, camera: str, fps: float, segment_seconds: float, audio_channels: int) -> None:
    if fps <= 0:
        raise ValueError("fps must be positive")
    if segment_seconds <= 0:
        raise ValueError("segment_seconds must be positive")
    if audio_channels not in (1, 2):
        raise ValueError("audio_channels must be 1 or 2")
    for label, value in (("attempt_id", attempt_id), ("camera", camera)):
        if not value or "/" in value or value.startswith("."):
            raise ValueError(f"{label} {value!r} cannot be part of a file name")


@dataclass
class _Rotation:
    """A boundary waiting for the audio that covers it."""

    boundary: float  # capture time of the first frame of the next segment
    question: int | None
    held: list[Any]  # queue items (frames, cuts) that belong after the boundary
    carry: list[AudioChunk]  # audio from after the boundary
    # A scheduled cut's instant, server time: it ends the old segment and starts the new one (None
    # without one, or when frames captured after it had already gone into the old segment).
    at: float | None = None


class SegmentRecorder(Recorder):
    """Records one camera (and its microphone) of one attempt into segments."""

    def __init__(
        self,
        out_dir: Path,
        attempt_id: str,
        camera: str,
        *,
        fps: float,
        size: tuple[int, int],
        audio_rate: int = 48000,
        audio_channels: int = 1,
        segment_seconds: float = 3.0,
        first_seq: int = 0,
        clock: Callable[[], float] = time.time,
        on_closed: Callable[[SegmentInfo], None] = lambda s: None,
    ) -> None:
        _check_arguments(attempt_id, camera, fps, segment_seconds, audio_channels)
        super().__init__(out_dir, attempt_id, camera, fps=fps, segment_seconds=segment_seconds,
                         first_seq=first_seq, clock=clock, on_closed=on_closed)
        self.size = (int(size[0]), int(size[1]))
        self.audio_rate = int(audio_rate)
        self.audio_channels = audio_channels
        self._rate = Fraction(self.fps).limit_denominator(1001)

        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._backlog: collections.deque[Any] = collections.deque()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stopped = False

        # Encoder-thread state.
        self._frames_written = 0
        self._seg: OpenSegment | None = None
        self._question: int | None = None
        self._cut = False
        self._cut_at: CutAt | None = None
        self._rotation: _Rotation | None = None
        self._stopping = False
        self._audio_seen = False
        self._audio_end = float("-inf")  # capture time where the latest audio ends
        self._early_audio: collections.deque[AudioChunk] = collections.deque(maxlen=64)
        self._frames_pushed = 0  # written by the capture thread only
        self._frames_taken = 0  # written by the encoder thread only
        self._backlog_warned = False
        self._cpu_s = 0.0  # the encoder thread's CPU time, set when it ends

    # ------------------------------------------------------------------ public API

    @property
    def frames_written(self) -> int:
        return self._frames_written

    @property
    def cpu_s(self) -> float:
        """CPU seconds the encoder thread used (libx264 runs in it: one encoder thread); 0 until stopped."""
        return self._cpu_s

    def start(self, question: int | None = None) -> None:
        if self._thread is not None:
            raise RuntimeError("recorder already started")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._question = question
        self._thread = threading.Thread(
            target=self._run, name=f"recorder-{self.attempt_id}-{self.camera}", daemon=True
        )
        self._thread.start()
        logger.info(
            "recording attempt %s camera %s: %dx%d at %g fps, %g s segments from seq %d",
            self.attempt_id, self.camera, *self.size, self.fps, self.segment_seconds, self._next_seq,
        )

    def push_video(self, frame: VideoFrame) -> None:
        """Queue a frame for encoding; never blocks. Ignored once stop() was called."""
        if not self._check_running():
            return
        self._frames_pushed += 1
        self._queue.put(frame)
        backlog = (self._frames_pushed - self._frames_taken) / self.fps
        if backlog > BACKLOG_WARN_S and not self._backlog_warned:
            self._backlog_warned = True
            logger.warning("recorder %s is %.1f s behind the camera", self.camera, backlog)

    def push_audio(self, chunk: AudioChunk) -> None:
        """Queue an audio chunk; never blocks. Ignored once stop() was called."""
        if not self._check_running():
            return
        if chunk.rate != self.audio_rate:
            raise ValueError(f"audio at {chunk.rate} Hz, recorder expects {self.audio_rate} Hz")
        if chunk.samples.ndim != 2 or chunk.samples.shape[1] != self.audio_channels:
            raise ValueError(
                f"audio shape {chunk.samples.shape}, recorder expects (n, {self.audio_channels})"
            )
        self._queue.put(chunk)

    def cut(self, question: int | None, at: CutAt | None = None) -> None:
        """Question boundary: the next frame (the first at or after ``at``) opens a segment of ``question``."""
        if not self._check_running():
            raise RuntimeError("recorder is stopped")
        self._queue.put(("cut", question, at))

    def stop(self) -> SegmentInfo | None:
        """Close the open segment, end the encoder thread; the last closed segment."""
        if self._thread is None:
            raise RuntimeError("recorder not started")
        if not self._stopped:
            self._stopped = True
            self._queue.put(_STOP)
        self._thread.join()
        if self._error is not None:
            error = self._error
            raise RecorderError(f"recording {self.attempt_id}/{self.camera} failed: {error}") from error
        with self._lock:
            return self._segments[-1] if self._segments else None

    # ------------------------------------------------------------------ encoder thread

    def _check_running(self) -> bool:
        """False once stopped (capture threads may race with stop()); raises if it failed."""
        if self._error is not None:
            raise RecorderError(f"recorder {self.camera} failed: {self._error}") from self._error
        if self._thread is None:
            raise RuntimeError("recorder not started")
        return not self._stopped

    def _server_time(self, t: float) -> float:
        return self.clock() - (time.monotonic() - t)

    def _next_item(self) -> Any:
        if self._backlog:
            return self._backlog.popleft()
        rotation = self._rotation
        if rotation is None:
            item = self._queue.get()
        else:
            wait = rotation.boundary + AUDIO_GRACE_S - time.monotonic()
            try:
                item = self._queue.get(timeout=max(wait, 0.001))
            except queue.Empty:
                return None  # grace over: close without the missing audio
        if isinstance(item, VideoFrame):
            self._frames_taken += 1
        return item

    def _run(self) -> None:
        try:
            self._run_items()
        finally:
            self._cpu_s = time.thread_time()

    def _run_items(self) -> None:
        try:
            while True:
                item = self._next_item()
                if item is None:
                    self._finish_rotation()
                elif isinstance(item, VideoFrame):
                    self._on_video(item)
                elif isinstance(item, AudioChunk):
                    self._on_audio(item)
                elif item is _STOP:
                    if self._rotation is not None or self._backlog:
                        self._stopping = True
                        if self._rotation is not None:
                            self._finish_rotation()
                        self._backlog.append(_STOP)
                        continue
                    self._close_current(end_t=None)
                    return
                else:
                    _, question, at = item
                    self._on_cut(question, at)
        except BaseException as exc:
            self._error = exc
            logger.error("recorder %s/%s failed", self.attempt_id, self.camera, exc_info=True)
            if self._seg is not None:
                self._seg.abandon()  # leaves the .part file, as a crash would
                self._seg = None

    def _on_cut(self, question: int | None, at: CutAt | None = None) -> None:
        if self._rotation is not None:
            self._rotation.held.append(("cut", question, at))
            return
        self._question = question
        if self._seg is not None and self._seg.frames > 0:
            self._cut, self._cut_at = True, at

    def _on_video(self, frame: VideoFrame) -> None:
        rotation = self._rotation
        if rotation is not None:
            rotation.held.append(frame)
            if frame.t >= rotation.boundary + AUDIO_GRACE_S:
                self._finish_rotation()
            return
        seg = self._seg
        if seg is None:
            self._open_segment(frame.t)
            self._write_video(frame)
            return
        cut_at = self._cut_at
        early = cut_at is not None and frame.t < cut_at.mono  # before the scheduled cut: the old segment's
        # Half a frame of slack so capture jitter does not add a frame to every segment.
        if not early and (self._cut or frame.t >= seg.t0 + self.segment_seconds - 0.5 / self.fps):
            self._cut, self._cut_at = False, None
            at = cut_at.server if cut_at is not None and seg.last_t < cut_at.mono else None
            self._rotation = _Rotation(frame.t, self._question, held=[frame], carry=[], at=at)
            if self._stopping or not self._audio_seen or self._audio_end >= frame.t:
                self._finish_rotation()
            return
        self._write_video(frame)

    def _write_video(self, frame: VideoFrame) -> None:
        assert self._seg is not None
        self._seg.write_video(frame)
        self._frames_written += 1

    def _on_audio(self, chunk: AudioChunk) -> None:
        self._audio_seen = True
        end = chunk.t + chunk.duration
        self._audio_end = max(self._audio_end, end)
        rotation = self._rotation
        if rotation is not None:
            # Split at the boundary: before it to the closing segment, the rest carried.
            k = min(len(chunk.samples), max(0, round((rotation.boundary - chunk.t) * chunk.rate)))
            if k > 0:
                assert self._seg is not None
                self._seg.write_audio(AudioChunk(chunk.samples[:k], chunk.rate, chunk.t))
            if k < len(chunk.samples):
                rotation.carry.append(AudioChunk(chunk.samples[k:], chunk.rate, chunk.t + k / chunk.rate))
            if self._audio_end >= rotation.boundary:
                self._finish_rotation()
            return
        if self._seg is None:
            self._early_audio.append(chunk)
            return
        self._seg.write_audio(chunk)

    def _finish_rotation(self) -> None:
        rotation = self._rotation
        assert rotation is not None and self._seg is not None
        self._rotation = None
        ended_at = self._close_current(end_t=rotation.boundary, ended_at=rotation.at)
        self._question = rotation.question
        first, *rest = rotation.held
        self._open_segment(first.t, started_at=ended_at)
        for chunk in rotation.carry:
            self._seg.write_audio(chunk)
        self._write_video(first)
        # Frames and cuts that arrived while waiting go through the normal path.
        self._backlog.extendleft(reversed(rest))

    def _open_segment(self, t0: float, started_at: float | None = None) -> None:
        seq = self._free_seq()
        if started_at is None:
            started_at = self._server_time(t0)
        seg = OpenSegment(
            self.out_dir, segment_name(self.attempt_id, self.camera, seq), seq, self._question, t0, started_at,
            rate=self._rate, fps=self.fps, size=self.size, audio_rate=self.audio_rate,
            audio_channels=self.audio_channels,
        )
        self._next_seq += 1
        self._seg = seg
        early, self._early_audio = self._early_audio, collections.deque(maxlen=64)
        for chunk in early:
            if chunk.t + chunk.duration > t0:
                seg.write_audio(chunk)
        logger.debug("segment %s opened (question %s)", seg.name, seg.question)

    def _close_current(self, end_t: float | None, ended_at: float | None = None) -> float | None:
        """Close, fsync, rename, hash and report the open segment; its ended_at (given, or end_t's)."""
        seg = self._seg
        if seg is None:
            return None
        self._seg = None
        if end_t is None:  # stop: the segment ends where its last frame ends
            end_t = seg.last_t + 1.0 / self.fps
        ended_at = self._server_time(end_t) if ended_at is None else ended_at
        try:
            seg.finish(end_t, pad_audio=self._audio_seen)
        except BaseException:
            seg.abandon()
            raise
        size, sha = seal(seg.part, seg.path)
        info = SegmentInfo(
            name=seg.name,
            path=seg.path,
            attempt_id=self.attempt_id,
            camera=self.camera,
            seq=seg.seq,
            question=seg.question,
            started_at=seg.started_at,
            ended_at=ended_at,
            frames=seg.frames,
            audio_samples=seg.audio_next,
            size=size,
            sha256=sha,
        )
        self._closed(info)  # reports it through on_closed (station.recording.base.Recorder._closed)
        return ended_at
