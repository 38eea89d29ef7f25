"""Small real media files for tests: an H.264 clip whose frames all differ, and a WAV tone."""
from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np


def make_video(path: Path, seconds: float, fps: int = 25, size: tuple[int, int] = (320, 240)) -> Path:
    """A bar that moves over a brightness ramp, so every frame differs."""
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, width=w, height=h, options={"preset": "ultrafast"})
        for i in range(round(seconds * fps)):
            img = np.full((h, w, 3), (i * 7) % 200, np.uint8)
            x = (i * 5) % (w - 20)
            img[:, x : x + 20] = (0, 0, 255)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def make_wav(path: Path, seconds: float, rate: int = 48000, freq: float = 440.0, amp: int = 12000) -> np.ndarray:
    """A mono sine tone; returns its samples."""
    n = round(seconds * rate)
    samples = (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).round().astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return samples
