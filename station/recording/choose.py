"""Which recorder records which camera.

A picamera2 camera records on the Pi's H.264 hardware encoder (``Picamera2Recorder``) when the
config allows it (``[recording] hardware_encoder``); every other camera, and a camera that is not
open, goes through libx264 (``SegmentRecorder``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from station.capture.camera import Camera
from station.capture.picamera import Picamera2Camera
from station.recording.base import Recorder, SegmentInfo
from station.recording.picamera import Picamera2Recorder
from station.recording.pyav import SegmentRecorder


def new_recorder(
    device: Camera | None,
    out_dir: Path,
    attempt_id: str,
    camera: str,
    *,
    hardware_encoder: bool,
    fps: float,
    size: tuple[int, int],
    audio: bool = True,
    audio_rate: int = 48000,
    audio_channels: int = 1,
    bitrate: int = 2_500_000,
    segment_seconds: float = 3.0,
    first_seq: int = 0,
    clock: Callable[[], float] = time.time,
    on_closed: Callable[[SegmentInfo], None] = lambda s: None,
) -> Recorder:
    """A recorder (not started) for ``camera`` of ``attempt_id``, writing into ``out_dir``.

    ``fps`` and ``size`` are the camera's (or the config's when the device is not open); ``audio``
    says whether the hardware recorder records the microphone too, and ``bitrate`` is its H.264
    bitrate (the PyAV recorder gets the audio pushed, at ``audio_rate`` x ``audio_channels``).
    """
    common = dict(segment_seconds=segment_seconds, first_seq=first_seq, clock=clock, on_closed=on_closed)
    if hardware_encoder and isinstance(device, Picamera2Camera):
        return Picamera2Recorder(device.picamera2, out_dir, attempt_id, camera, fps=device.fps, audio=audio,
                                 bitrate=bitrate, **common)
    return SegmentRecorder(out_dir, attempt_id, camera, fps=fps, size=size, audio_rate=audio_rate,
                           audio_channels=audio_channels, **common)
