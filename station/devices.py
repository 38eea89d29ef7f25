"""Capture devices: cameras and microphones behind small abstract bases.

The agent picks a backend from its config (``open_camera`` / ``open_audio``):
picamera2 on a Raspberry Pi, OpenCV on a PC, and a video or WAV file for the
demo and the tests. File backends behave like live devices: they are paced in
real time and loop forever, so the rest of the station cannot tell them apart.

All times are ``time.monotonic()`` seconds; the recorder maps them to server
time. Library errors are turned into :class:`DeviceError`.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import threading
import time
import wave
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CAMERA_KINDS = ("file", "opencv", "picamera2")
AUDIO_KINDS = ("file", "pyaudio")

PICAMERA2_MISSING = "picamera2 is only available on a Raspberry Pi; install examkiosk[pi]"
PYAUDIO_MISSING = "pyaudio is not installed (it needs portaudio19-dev to build)"

# level(): the dBFS range mapped onto 0..1.
LEVEL_FLOOR_DB = -60.0
_INT16_FULL_SCALE = 32768.0


@dataclass(frozen=True)
class VideoFrame:
    """One captured picture."""

    image: np.ndarray  # BGR uint8, H x W x 3
    t: float  # time.monotonic() at capture
    index: int  # running frame number since open()


@dataclass(frozen=True)
class AudioChunk:
    """A block of interleaved 16-bit samples."""

    samples: np.ndarray  # int16, shape (n, channels)
    rate: int
    t: float  # time.monotonic() of the first sample

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


class DeviceError(Exception):
    """A capture device could not be opened, or was lost while reading."""


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# --------------------------------------------------------------------------- cameras


class Camera(ABC):
    """A source of :class:`VideoFrame`.

    ``fps`` and ``size`` (width, height) hold the requested values until
    :meth:`open` has run, and what the device really delivers afterwards.
    """

    name: str
    fps: float
    size: tuple[int, int]

    @abstractmethod
    def open(self) -> None:
        """Start capturing. Raises DeviceError. Opening an open camera does nothing."""

    @abstractmethod
    def read(self) -> VideoFrame:
        """Block until the next frame. Raises DeviceError if the device is lost."""

    @abstractmethod
    def close(self) -> None:
        """Release the device. Safe to call twice."""

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.size[0]}x{self.size[1]}@{self.fps:g}>"


class FileCamera(Camera):
    """A video file played as a camera.

    Frames are decoded with PyAV, paced in real time at the file's frame rate
    (or ``fps`` if given) and the file loops forever. Frame ``i`` is due at
    ``start + i / fps`` on the monotonic clock, so pacing never drifts; a
    reader that falls behind gets the overdue frames at once. ``size``
    resizes every frame.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or f"file:{self.path.name}"
        self._want_size = tuple(size) if size else None
        self._want_fps = float(fps) if fps else None
        self.size = self._want_size or (0, 0)
        self.fps = self._want_fps or 0.0
        self._container: Any = None
        self._frames: Any = None
        self._start = 0.0
        self._index = 0

    def open(self) -> None:
        if self._container is not None:
            return
        import av

        self._open_container(av)
        stream = self._container.streams.video[0]
        if self._want_fps is None:
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            self.fps = float(rate)
        if self._want_size is None:
            self.size = (stream.codec_context.width, stream.codec_context.height)
        self._index = 0
        self._start = time.monotonic()
        logger.info("camera %s opened: %dx%d at %g fps", self.name, *self.size, self.fps)

    def _open_container(self, av: Any) -> None:
        try:
            self._container = av.open(str(self.path))
            if not self._container.streams.video:
                raise DeviceError(f"{self.path} has no video stream")
        except (OSError, av.FFmpegError) as exc:
            self._container = None
            raise DeviceError(f"cannot open video file {self.path}: {exc}") from exc
        self._frames = self._container.decode(video=0)

    def _next_image(self) -> np.ndarray:
        import av

        for _attempt in range(2):
            try:
                frame = next(self._frames)
            except StopIteration:
                # End of file: start again from the beginning.
                self._container.close()
                self._open_container(av)
                continue
            except av.FFmpegError as exc:
                raise DeviceError(f"cannot decode {self.path}: {exc}") from exc
            return frame.to_ndarray(format="bgr24")
        raise DeviceError(f"{self.path} has no decodable frames")

    def read(self) -> VideoFrame:
        if self._container is None:
            raise DeviceError(f"camera {self.name} is not open")
        image = self._next_image()
        if image.shape[1::-1] != self.size:
            import cv2

            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        _sleep_until(self._start + self._index / self.fps)
        frame = VideoFrame(image=image, t=time.monotonic(), index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._frames = None


def _parse_index(source: str | int | None) -> str | int:
    """'' / None -> 0, '2' -> 2, anything else (a path, a URL, a pipeline) as is."""
    if source is None or source == "":
        return 0
    if isinstance(source, int):
        return source
    return int(source) if source.strip().isdigit() else source


class OpenCVCamera(Camera):
    """A V4L2/UVC camera (or anything ``cv2.VideoCapture`` opens) read with OpenCV.

    The requested size and frame rate are asked for; if the device delivers
    another size, frames are resized so consumers always get ``size``.
    """

    def __init__(
        self,
        index: int | str = 0,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        name: str | None = None,
    ) -> None:
        self.index = _parse_index(index)
        self.name = name or f"opencv:{self.index}"
        self._want_size = tuple(size) if size else None
        self._want_fps = float(fps) if fps else None
        self.size = self._want_size or (640, 480)
        self.fps = self._want_fps or 30.0
        self._cap: Any = None
        self._native_size: tuple[int, int] = self.size
        self._index = 0

    def open(self) -> None:
        if self._cap is not None:
            return
        import cv2

        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(f"cannot open camera {self.index!r} with OpenCV")
        if self._want_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._want_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._want_size[1])
        if self._want_fps:
            cap.set(cv2.CAP_PROP_FPS, self._want_fps)
        native = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if native[0] <= 0 or native[1] <= 0:
            ok, image = cap.read()
            if not ok:
                cap.release()
                raise DeviceError(f"camera {self.index!r} opened but gives no frames")
            native = (image.shape[1], image.shape[0])
        self._native_size = native
        self.size = self._want_size or native
        reported_fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = self._want_fps or (reported_fps if 0 < reported_fps < 1000 else 30.0)
        if native != self.size:
            logger.info("camera %s delivers %dx%d; resizing to %dx%d", self.name, *native, *self.size)
        self._cap = cap
        self._index = 0
        logger.info("camera %s opened: %dx%d at %g fps", self.name, *self.size, self.fps)

    def read(self) -> VideoFrame:
        if self._cap is None:
            raise DeviceError(f"camera {self.name} is not open")
        ok, image = self._cap.read()
        t = time.monotonic()
        if not ok or image is None:
            raise DeviceError(f"camera {self.name} stopped delivering frames")
        if image.shape[1::-1] != self.size:
            import cv2

            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        frame = VideoFrame(image=image, t=t, index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class Picamera2Camera(Camera):
    """A Raspberry Pi camera through picamera2 (imported only when opened)."""

    def __init__(
        self,
        index: int | str = 0,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        name: str | None = None,
    ) -> None:
        parsed = _parse_index(index)
        if not isinstance(parsed, int):
            raise ValueError(f"picamera2 camera number must be an integer, not {index!r}")
        self.index = parsed
        self.name = name or f"picamera2:{self.index}"
        self.size = tuple(size) if size else (1280, 720)
        self.fps = float(fps) if fps else 30.0
        self._cam: Any = None
        self._index = 0

    def open(self) -> None:
        if self._cam is not None:
            return
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise DeviceError(PICAMERA2_MISSING) from exc
        try:
            cam = Picamera2(camera_num=self.index)
            # libcamera's "RGB888" is B, G, R in memory: what OpenCV calls BGR.
            config = cam.create_video_configuration(
                main={"size": self.size, "format": "RGB888"},
                controls={"FrameRate": self.fps},
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:  # picamera2 raises RuntimeError, IndexError, ...
            raise DeviceError(f"cannot start Pi camera {self.index}: {exc}") from exc
        self._cam = cam
        self._index = 0
        logger.info("camera %s opened: %dx%d at %g fps", self.name, *self.size, self.fps)

    def read(self) -> VideoFrame:
        if self._cam is None:
            raise DeviceError(f"camera {self.name} is not open")
        try:
            image = self._cam.capture_array("main")
        except Exception as exc:
            raise DeviceError(f"camera {self.name} lost: {exc}") from exc
        t = time.monotonic()
        if image.ndim == 3 and image.shape[2] == 4:  # XBGR8888 and friends
            image = image[:, :, :3]
        frame = VideoFrame(image=np.ascontiguousarray(image), t=t, index=self._index)
        self._index += 1
        return frame

    def hardware_recorder(self, out_dir: Path, attempt_id: str, camera: str, **kwargs: Any) -> Any:
        """A ``station.pi_recorder.Picamera2Recorder`` encoding this open camera on the Pi's H.264
        hardware, beside the frames ``read`` keeps giving (untested off a Pi)."""
        from station.pi_recorder import Picamera2Recorder

        if self._cam is None:
            raise DeviceError(f"camera {self.name} is not open")
        return Picamera2Recorder(self._cam, out_dir, attempt_id, camera, fps=self.fps, **kwargs)

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            except Exception:
                logger.warning("camera %s did not close cleanly", self.name, exc_info=True)
            self._cam = None


# --------------------------------------------------------------------------- audio


class AudioSource(ABC):
    """A source of :class:`AudioChunk` (16-bit samples)."""

    name: str
    rate: int
    channels: int

    @abstractmethod
    def open(self) -> None:
        """Start capturing. Raises DeviceError. Opening an open source does nothing."""

    @abstractmethod
    def read(self) -> AudioChunk:
        """Block until the next chunk. Raises DeviceError if the device is lost."""

    @abstractmethod
    def close(self) -> None:
        """Release the device. Safe to call twice."""

    def __enter__(self) -> AudioSource:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.rate} Hz x{self.channels}>"


def _convert_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    have = samples.shape[1]
    if have == channels:
        return samples
    if channels == 1:
        return samples.mean(axis=1, keepdims=True).round().astype(np.int16)
    if have == 1:
        return np.repeat(samples, channels, axis=1)
    raise DeviceError(f"cannot convert {have} audio channels to {channels}")


def _resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Linear-interpolation resampling; good enough for a demo microphone."""
    n_out = int(round(len(samples) * dst_rate / src_rate))
    x_out = np.arange(n_out) * (src_rate / dst_rate)
    x_in = np.arange(len(samples))
    out = np.empty((n_out, samples.shape[1]), dtype=np.int16)
    for ch in range(samples.shape[1]):
        out[:, ch] = np.interp(x_out, x_in, samples[:, ch]).round().astype(np.int16)
    return out


class WavSource(AudioSource):
    """A 16-bit PCM WAV file played as a microphone.

    The file is loaded into memory (converted to ``rate``/``channels`` if they
    are given), loops forever and is paced in real time: like a sound card, a
    chunk is returned once its last sample is "recorded", and its ``t`` is the
    time of its first sample, ``start + position / rate``, so it never drifts.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rate: int | None = None,
        channels: int | None = None,
        chunk: int = 1024,
        name: str | None = None,
    ) -> None:
        if chunk <= 0:
            raise ValueError("chunk must be positive")
        self.path = Path(path)
        self.name = name or f"file:{self.path.name}"
        self._want_rate = rate
        self._want_channels = channels
        self.rate = rate or 0
        self.channels = channels or 0
        self.chunk = chunk
        self._data: np.ndarray | None = None
        self._pos = 0  # frames delivered since open()
        self._start = 0.0

    def open(self) -> None:
        if self._data is not None:
            return
        try:
            with wave.open(str(self.path), "rb") as wav:
                if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
                    raise DeviceError(f"{self.path} is not 16-bit PCM")
                file_rate, file_channels = wav.getframerate(), wav.getnchannels()
                raw = wav.readframes(wav.getnframes())
        except (OSError, EOFError, wave.Error) as exc:
            raise DeviceError(f"cannot read WAV file {self.path}: {exc}") from exc
        data = np.frombuffer(raw, dtype="<i2").astype(np.int16).reshape(-1, file_channels)
        if len(data) == 0:
            raise DeviceError(f"{self.path} has no samples")
        self.channels = self._want_channels or file_channels
        self.rate = self._want_rate or file_rate
        data = _convert_channels(data, self.channels)
        if self.rate != file_rate:
            data = _resample(data, file_rate, self.rate)
        self._data = np.ascontiguousarray(data)
        self._pos = 0
        self._start = time.monotonic()
        logger.info("audio %s opened: %d Hz x%d", self.name, self.rate, self.channels)

    def read(self) -> AudioChunk:
        data = self._data
        if data is None:
            raise DeviceError(f"audio source {self.name} is not open")
        offset = self._pos % len(data)
        idx = (np.arange(self.chunk) + offset) % len(data)  # wraps around the loop point
        samples = data[idx]
        t = self._start + self._pos / self.rate
        self._pos += self.chunk
        _sleep_until(self._start + self._pos / self.rate)
        return AudioChunk(samples=samples, rate=self.rate, t=t)

    def close(self) -> None:
        self._data = None


class PyAudioSource(AudioSource):
    """A microphone through PortAudio (PyAudio imported only when opened).

    ``device`` is a PortAudio device index, a part of a device name, or
    None/'' for the default input.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        rate: int = 48000,
        channels: int = 1,
        chunk: int = 1024,
        name: str | None = None,
    ) -> None:
        self.device = device
        self.rate = rate
        self.channels = channels
        self.chunk = chunk
        self.name = name or f"pyaudio:{device if device not in (None, '') else 'default'}"
        self._pa: Any = None
        self._stream: Any = None
        self._lock = threading.Lock()

    def _device_index(self, pa: Any) -> int | None:
        device = self.device
        if device is None or device == "" or device == "default":
            return None
        if isinstance(device, int) or str(device).isdigit():
            return int(device)
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            if info.get("maxInputChannels", 0) > 0 and str(device).lower() in info["name"].lower():
                return i
        raise DeviceError(f"no audio input device matches {device!r}")

    def open(self) -> None:
        if self._stream is not None:
            return
        try:
            import pyaudio
        except ImportError as exc:
            raise DeviceError(PYAUDIO_MISSING) from exc
        pa = pyaudio.PyAudio()
        try:
            self._stream = pa.open(
                format=pyaudio.paInt16,
                channels=self.channels,
                rate=self.rate,
                input=True,
                input_device_index=self._device_index(pa),
                frames_per_buffer=self.chunk,
            )
        except DeviceError:
            pa.terminate()
            raise
        except (OSError, ValueError) as exc:
            pa.terminate()
            raise DeviceError(f"cannot open microphone {self.name}: {exc}") from exc
        self._pa = pa
        logger.info("audio %s opened: %d Hz x%d", self.name, self.rate, self.channels)

    def read(self) -> AudioChunk:
        stream = self._stream
        if stream is None:
            raise DeviceError(f"audio source {self.name} is not open")
        try:
            raw = stream.read(self.chunk, exception_on_overflow=False)
        except OSError as exc:
            raise DeviceError(f"microphone {self.name} lost: {exc}") from exc
        done = time.monotonic()
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int16).reshape(-1, self.channels)
        # The last sample was captured about "now": date the chunk by its first sample.
        return AudioChunk(samples=samples, rate=self.rate, t=done - len(samples) / self.rate)

    def close(self) -> None:
        with self._lock:
            stream, pa = self._stream, self._pa
            self._stream = self._pa = None
        if stream is not None:
            try:
                stream.stop_stream()
                stream.close()
            except OSError:
                logger.warning("microphone %s did not close cleanly", self.name, exc_info=True)
        if pa is not None:
            pa.terminate()


# --------------------------------------------------------------------------- helpers


def level(samples: np.ndarray) -> float:
    """Loudness of int16 audio for a level meter, 0..1.

    The RMS is taken on the dBFS scale where a full-scale sine is 0 dBFS
    (AES17), and -60 dBFS..0 dBFS is mapped linearly onto 0..1 (clipped).
    """
    if samples.size == 0:
        return 0.0
    x = samples.astype(np.float64) / _INT16_FULL_SCALE
    rms = math.sqrt(float(np.mean(x * x)))
    if rms <= 0.0:
        return 0.0
    dbfs = 20.0 * math.log10(rms * math.sqrt(2.0))
    return min(1.0, max(0.0, (dbfs - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB))


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
    found: list[str] = []
    try:
        from picamera2 import Picamera2

        for i, info in enumerate(Picamera2.global_camera_info()):
            found.append(f"picamera2:{i} {info.get('Model', 'camera')}")
    except Exception:  # not a Pi, or libcamera unhappy
        pass
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
