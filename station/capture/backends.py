"""The backend the config names: ``open_camera`` / ``open_audio``, and what this machine has.

picamera2 on a Raspberry Pi, OpenCV on a PC, and a video or WAV file for the demo and the tests.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

from station.capture.audio import AudioSource, PyAudioSource, WavSource
from station.capture.camera import Camera, FileCamera, OpenCVCamera
from station.capture.picamera import Picamera2Camera, list_pi_cameras

logger = logging.getLogger(__name__)

CAMERA_KINDS = ("file", "opencv", "picamera2")
AUDIO_KINDS = ("file", "pyaudio")


def open_camera(
    kind: str,
    source: str,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
) -> Camera:
    """Build the camera backend the config names and open it."""
    camera: Camera
    if kind == "file":
        camera = FileCamera(source, size=size, fps=fps)
    elif kind == "opencv":
        camera = OpenCVCamera(source, size=size, fps=fps)
    elif kind == "picamera2":
        camera = Picamera2Camera(source, size=size, fps=fps)
    else:
        raise ValueError(f"unknown camera kind {kind!r}; expected one of {', '.join(CAMERA_KINDS)}")
    logger.info("using %s camera %r", kind, source)
    camera.open()
    return camera


def open_audio(kind: str, source: str, rate: int = 48000, channels: int = 1) -> AudioSource:
    """Build the audio backend the config names and open it."""
    audio: AudioSource
    if kind == "file":
        audio = WavSource(source, rate=rate, channels=channels)
    elif kind == "pyaudio":
        audio = PyAudioSource(source, rate=rate, channels=channels)
    else:
        raise ValueError(f"unknown audio kind {kind!r}; expected one of {', '.join(AUDIO_KINDS)}")
    logger.info("using %s audio %r", kind, source)
    audio.open()
    return audio


def list_cameras() -> list[str]:
    """Cameras this machine seems to have, as ``kind:source description`` lines.

    Best effort for the device-check screen: never raises, opens nothing.
    """
    found = list_pi_cameras()
    for dev in sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p)):
        number = dev.removeprefix("/dev/video")
        if not number.isdigit():
            continue
        label = dev
        try:
            label = Path(f"/sys/class/video4linux/video{number}/name").read_text().strip() + f" ({dev})"
        except OSError:
            pass
        found.append(f"opencv:{number} {label}")
    return found


def list_microphones() -> list[str]:
    """Audio inputs PortAudio sees, as ``pyaudio:index name`` lines. Never raises."""
    try:
        # PyAudio needs PortAudio (portaudio19-dev) to build: optional, imported when used.
        import pyaudio
    except ImportError:
        return []
    found: list[str] = []
    try:
        pa = pyaudio.PyAudio()
    except Exception:
        logger.debug("PortAudio did not start", exc_info=True)
        return []
    try:
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            if info.get("maxInputChannels", 0) > 0:
                found.append(f"pyaudio:{i} {info['name']}")
    except Exception:
        logger.debug("PortAudio device listing failed", exc_info=True)
    finally:
        pa.terminate()
    return found
