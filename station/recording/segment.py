"""One open PyAV segment: a Matroska container with its own H.264 and AAC encoders.

``SegmentRecorder`` (``station.recording.pyav``) opens one per segment, so every segment starts
with a keyframe and decodes on its own. Video frames are placed by their capture time; audio is
kept contiguous (small jitter ignored, gaps filled with silence, overlaps trimmed).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from station.capture.frames import AudioChunk, VideoFrame
from station.recording.base import PART_SUFFIX

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 1000)
# Audio timestamps closer than this to where the stream already is count as contiguous.
AUDIO_JITTER_S = 0.02


def _yuv420p_frame(image: np.ndarray) -> Any:
    """BGR to the encoder's yuv420p with OpenCV: about 3x cheaper than PyAV's own reformat."""
    height, width = image.shape[:2]
    if width % 2 or height % 2:
        return av.VideoFrame.from_ndarray(image, format="bgr24")
    return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")


class OpenSegment:
    """One open segment: a Matroska container with a fresh video (libx264) and audio (AAC) encoder."""

    def __init__(
        self,
        out_dir: Path,
        name: str,
        seq: int,
        question: int | None,
        t0: float,
        started_at: float,
        *,
        rate: Fraction,
        fps: float,
        size: tuple[int, int],
        audio_rate: int,
        audio_channels: int,
    ) -> None:
        self.seq = seq
        self.question = question
        self.t0 = t0  # monotonic capture time of the first frame
        self.started_at = started_at
        self.name = name
        self.path = out_dir / name
        self.part = out_dir / (name + PART_SUFFIX)
        self.frames = 0
        self.last_t = t0
        self.last_pts = -1
        self.audio_next = 0  # next audio sample position relative to t0
        self.rate = audio_rate

        self.channels = audio_channels
        self.container: Any = av.open(str(self.part), mode="w", format="matroska")
        try:
            v = self.container.add_stream(
                "libx264",
                rate=rate,
                width=size[0],
                height=size[1],
                time_base=VIDEO_TIME_BASE,
                options={"preset": "ultrafast", "tune": "zerolatency"},
            )
            v.codec_context.pix_fmt = "yuv420p"
            # One encoder thread: ultrafast 720p takes a few ms a frame, and x264's own
            # thread pool costs more CPU in hand-offs than it saves at 25 fps.
            v.codec_context.thread_count = 1
            # The fast AAC coder: half the CPU of the default two-loop search, same size for speech.
            a = self.container.add_stream(
                "aac", rate=audio_rate, time_base=Fraction(1, audio_rate), options={"aac_coder": "fast"}
            )
            a.codec_context.layout = "mono" if audio_channels == 1 else "stereo"
        except BaseException:
            self.container.close()
            raise
        self.video = v
        self.audio = a
        self.frame_ms = max(1, round(1000 / fps))

    # -- writing

    def write_video(self, frame: VideoFrame) -> None:
        pts = round((frame.t - self.t0) * 1000)
        if pts <= self.last_pts:
            pts = self.last_pts + 1
        vf = _yuv420p_frame(frame.image)
        vf.pts = pts
        vf.time_base = VIDEO_TIME_BASE
        vf.duration = self.frame_ms
        self._mux_video(self.video.encode(vf))
        self.last_pts = pts
        self.last_t = frame.t
        self.frames += 1

    def _mux_video(self, packets: list[Any]) -> None:
        for packet in packets:
            if not packet.duration:
                packet.duration = self.frame_ms
            self.container.mux(packet)

    def write_audio(self, chunk: AudioChunk) -> int:
        """Place a chunk by its capture time; returns the samples written.

        Audio is kept contiguous: jitter below AUDIO_JITTER_S is ignored, a
        gap is filled with silence and an overlap (audio from before the
        segment or already covered) is trimmed.
        """
        samples = chunk.samples
        start = round((chunk.t - self.t0) * self.rate)
        jitter = round(AUDIO_JITTER_S * self.rate)
        delta = start - self.audio_next
        if delta > jitter:
            self.write_silence(delta)
        elif delta < -jitter or start < 0:
            trim = self.audio_next - start if delta < -jitter else -start
            samples = samples[trim:]
        if len(samples) == 0:
            return 0
        self._encode_audio(samples)
        return len(samples)

    def write_silence(self, n: int) -> None:
        step = self.rate  # at most one second per frame
        while n > 0:
            k = min(n, step)
            self._encode_audio(np.zeros((k, self.channels), np.int16))
            n -= k

    def _encode_audio(self, samples: np.ndarray) -> None:
        af = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1),
            format="s16",
            layout="mono" if self.channels == 1 else "stereo",
        )
        af.sample_rate = self.rate
        af.pts = self.audio_next
        af.time_base = Fraction(1, self.rate)
        for packet in self.audio.encode(af):
            self.container.mux(packet)
        self.audio_next += len(samples)

    def finish(self, end_t: float, pad_audio: bool) -> None:
        """Flush the encoders and close the container (no fsync yet)."""
        if pad_audio:
            target = round((end_t - self.t0) * self.rate)
            if target - self.audio_next > round(AUDIO_JITTER_S * self.rate):
                self.write_silence(target - self.audio_next)
        self._mux_video(self.video.encode(None))
        for packet in self.audio.encode(None):
            self.container.mux(packet)
        self.container.close()

    def abandon(self) -> None:
        try:
            self.container.close()
        except Exception:
            logger.debug("closing a failed segment %s", self.part, exc_info=True)
