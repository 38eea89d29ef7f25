"""Microphones behind a small abstract base: a WAV file and PortAudio (PyAudio), and the mic ``level``.

The WAV backend behaves like a live device: paced in real time, looping forever. Library errors
become :class:`~station.capture.frames.DeviceError`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import wave
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from station.capture.frames import AudioChunk, DeviceError, sleep_until

logger = logging.getLogger(__name__)

PYAUDIO_MISSING = "pyaudio is not installed (it needs portaudio19-dev to build)"

# level(): the dBFS range mapped onto 0..1.
LEVEL_FLOOR_DB = -60.0
_INT16_FULL_SCALE = 32768.0


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
        sleep_until(self._start + self._pos / self.rate)
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
            # PyAudio needs PortAudio (portaudio19-dev) to build: optional, imported when a microphone opens.
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
