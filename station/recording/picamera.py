"""Segments from the Raspberry Pi's hardware H.264 encoder (picamera2). UNTESTED OFF A PI.

On a Pi the camera's frames need not go through libx264: picamera2's ``H264Encoder`` drives the
V4L2 hardware encoder, its own audio thread encodes the microphone (PulseAudio) to AAC, and both
go to a ``SplittableOutput`` that writes one ``PyavOutput`` Matroska file at a time. A rotation
(every ``segment_seconds``) or a question cut calls ``split_output``: picamera2 switches to the
next file at the next keyframe without dropping a frame and closes the old one, as
``SegmentRecorder`` does with its own encoder. The encoder makes a keyframe every half second
(``iperiod``), so a question's segment starts at most half a second after the cut.

The files and their reports are those of ``SegmentRecorder`` (``station.recording.pyav``): ``{attempt}_{camera}_{seq:05d}.mkv``,
written as ``.part``, closed, fsynced, renamed and hashed before ``on_closed`` hears of them, an
existing file never overwritten. ``started_at``/``ended_at`` are server time taken from the
encoder's timestamps (microseconds since the first frame) and the clock when the first frame
came out of the encoder, so they carry the encoder's latency (tens of milliseconds).

picamera2 exists only on a Pi (``pip install examkiosk[pi]``): it is imported when a recording
starts, never at import time. Nothing here runs in the test suite, which has no Pi. A picamera2
camera is recorded with this recorder (``station.recording.choose.new_recorder``) unless
``[recording] hardware_encoder = false``; every other camera goes through ``SegmentRecorder``.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from station.recording.base import PART_SUFFIX, CutAt, Recorder, RecorderError, SegmentInfo, seal, segment_name

logger = logging.getLogger(__name__)

_STOP = object()


def _segment_output(part: Path, first_frame: Callable[[int], None]) -> Any:
    """A picamera2 ``PyavOutput`` into ``part`` that notes what it wrote (picamera2 imported here).

    ``first_frame(timestamp_us)`` is called when its first video frame comes out of the encoder.
    """
    # picamera2 is an optional dependency that exists only on a Pi: imported when used, not at import time.
    from picamera2.outputs import PyavOutput

    class SegmentOutput(PyavOutput):
        def __init__(self) -> None:
            super().__init__(str(part), format="matroska")
            self.frames = 0
            self.first_us: int | None = None
            self.last_us: int | None = None

        def outputframe(self, frame: Any, keyframe: bool = True, timestamp: int | None = None,
                        packet: Any = None, audio: bool = False) -> None:
            super().outputframe(frame, keyframe, timestamp, packet, audio)
            if not audio and timestamp is not None:
                if self.first_us is None:
                    self.first_us = timestamp
                    first_frame(timestamp)
                self.frames += 1
                self.last_us = timestamp

    return SegmentOutput()


class Picamera2Recorder(Recorder):
    """Records one Pi camera (and the PulseAudio microphone) of one attempt into segments."""

    def __init__(self, picam2: Any, out_dir: Path, attempt_id: str, camera: str, *, fps: float,
                 segment_seconds: float = 3.0, bitrate: int = 2_500_000, audio: bool = True, first_seq: int = 0,
                 clock: Callable[[], float] = time.time, on_closed: Callable[[SegmentInfo], None] = lambda s: None,
                 stream: str = "main") -> None:
        if fps <= 0 or segment_seconds <= 0:
            raise ValueError("fps and segment_seconds must be positive")
        super().__init__(out_dir, attempt_id, camera, fps=fps, segment_seconds=segment_seconds,
                         first_seq=first_seq, clock=clock, on_closed=on_closed)
        self.picam2 = picam2
        self.bitrate = bitrate
        self.audio = audio
        self.stream = stream
        self._requests: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._encoder: Any = None
        self._splitter: Any = None
        self._current: tuple[int, int | None, Any] | None = None  # seq, question, output
        self._base_server_time: float | None = None  # server time of the encoder's timestamp 0

    def start(self, question: int | None = None) -> None:
        # picamera2 is an optional dependency that exists only on a Pi: imported when used, not at import time.
        from picamera2.encoders import H264Encoder
        from picamera2.outputs import SplittableOutput

        if self._thread is not None:
            raise RuntimeError("recorder already started")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._encoder = H264Encoder(bitrate=self.bitrate, repeat=True, iperiod=max(1, round(self.fps / 2)))
        self._encoder.audio = self.audio
        self._current = self._open(question)
        self._splitter = SplittableOutput(output=self._current[2])
        self.picam2.start_encoder(self._encoder, self._splitter, name=self.stream)
        self._thread = threading.Thread(target=self._run, name=f"pi-recorder-{self.camera}", daemon=True)
        self._thread.start()
        logger.info("hardware recording of attempt %s, camera %s, from segment %d", self.attempt_id, self.camera,
                    self._current[0])

    def push_video(self, frame: Any) -> None:
        """Nothing to do: the hardware encoder takes its frames from the camera itself."""
        self._check()

    def push_audio(self, chunk: Any) -> None:
        """Nothing to do: picamera2 records the microphone itself (``audio``), through PulseAudio."""

    def cut(self, question: int | None, at: CutAt | None = None) -> None:
        """Question boundary: the next keyframe starts a new segment tagged ``question`` (the hardware
        encoder's keyframes decide; ``at`` is not used here)."""
        self._check()
        self._requests.put(("cut", question))

    def stop(self) -> SegmentInfo | None:
        if self._thread is None:
            raise RuntimeError("recorder not started")
        self._requests.put(_STOP)
        self._thread.join()
        self._check()
        with self._lock:
            return self._segments[-1] if self._segments else None

    # --- the rotation thread ------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise RecorderError(f"hardware recording {self.attempt_id}/{self.camera} failed: {self._error}") \
                from self._error

    def _open(self, question: int | None) -> tuple[int, int | None, Any]:
        seq = self._free_seq()
        self._next_seq = seq + 1
        name = segment_name(self.attempt_id, self.camera, seq)
        return seq, question, _segment_output(self.out_dir / (name + PART_SUFFIX), self._first_frame)

    def _run(self) -> None:
        try:
            while True:
                try:
                    request = self._requests.get(timeout=self.segment_seconds)
                except queue.Empty:
                    request = ("rotate", self._current[1])
                if request is _STOP:
                    self.picam2.stop_encoder(self._encoder)  # stops the splitter and closes the open file
                    self._seal(*self._current)
                    return
                _, question = request
                following = self._open(question)
                self._splitter.split_output(following[2], wait_for_keyframe=True)  # returns once switched
                closed, self._current = self._current, following
                self._seal(*closed)
        except BaseException as exc:
            self._error = exc
            logger.error("hardware recorder %s/%s failed", self.attempt_id, self.camera, exc_info=True)

    def _first_frame(self, us: int) -> None:
        """The encoder's clock against the server's, once: its first frame is now, give or take the latency."""
        if self._base_server_time is None:
            self._base_server_time = self.clock() - us / 1e6

    def _server_time(self, us: int) -> float:
        assert self._base_server_time is not None
        return self._base_server_time + us / 1e6

    def _seal(self, seq: int, question: int | None, output: Any) -> None:
        name = segment_name(self.attempt_id, self.camera, seq)
        part, path = self.out_dir / (name + PART_SUFFIX), self.out_dir / name
        if output.frames == 0 or not part.exists():
            part.unlink(missing_ok=True)  # no frame reached it: no segment
            return
        size, sha = seal(part, path)
        started_at = self._server_time(output.first_us)
        ended_at = self._server_time(output.last_us) + 1.0 / self.fps
        info = SegmentInfo(name=name, path=path, attempt_id=self.attempt_id, camera=self.camera, seq=seq,
                           question=question, started_at=started_at, ended_at=ended_at, frames=output.frames,
                           audio_samples=0, size=size, sha256=sha)  # picamera2 encodes the audio: not counted
        self._closed(info)  # reports it through on_closed (station.recording.base.Recorder._closed)
