"""station.capture on real files: a generated H.264 clip, a numpy WAV, ALSA through PortAudio."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from station.capture.audio import WavSource, level
from station.capture.backends import list_cameras, list_microphones, open_audio, open_camera
from station.capture.camera import FileCamera, OpenCVCamera
from station.capture.frames import AudioChunk, DeviceError, VideoFrame
from station.capture.picamera import Picamera2Camera
from tests.media import make_video, make_wav  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("media")
    wav_short = d / "short.wav"
    return {
        "video": make_video(d / "clip.mp4", 4.0),
        "short_video": make_video(d / "short.mp4", 0.4),  # 10 frames
        "wav": d / "tone.wav",
        "wav_samples": make_wav(d / "tone.wav", 2.0, amp=16000),
        "wav_short": wav_short,
        "wav_short_samples": make_wav(wav_short, 0.25, freq=1000.0, amp=16000),  # 12000 samples
    }


# ------------------------------------------------------------------ FileCamera


def test_file_camera_takes_size_and_rate_from_the_file(media: dict) -> None:
    with FileCamera(media["video"]) as cam:
        frame = cam.read()
        assert cam.size == (320, 240)
        assert cam.fps == pytest.approx(25.0)
    assert isinstance(frame, VideoFrame)
    assert frame.image.shape == (240, 320, 3)
    assert frame.image.dtype == np.uint8
    assert frame.index == 0


def test_file_camera_paces_in_real_time(media: dict) -> None:
    with FileCamera(media["video"]) as cam:
        start = time.monotonic()
        frames = [cam.read() for _ in range(25)]
        elapsed = time.monotonic() - start
    assert 0.8 <= elapsed <= 1.5, elapsed
    assert [f.index for f in frames] == list(range(25))
    times = [f.t for f in frames]
    assert times == sorted(times)
    assert (times[-1] - times[0]) / 24 == pytest.approx(0.04, abs=0.01)


def test_file_camera_loops_past_the_end(media: dict) -> None:
    with FileCamera(media["short_video"]) as cam:
        frames = [cam.read() for _ in range(23)]
    assert [f.index for f in frames] == list(range(23))
    # The clip has 10 frames: frame 10 and 20 are frame 0 again, frame 13 is frame 3.
    assert np.array_equal(frames[10].image, frames[0].image)
    assert np.array_equal(frames[20].image, frames[0].image)
    assert np.array_equal(frames[13].image, frames[3].image)
    assert not np.array_equal(frames[1].image, frames[0].image)


def test_file_camera_resizes(media: dict) -> None:
    with FileCamera(media["video"], size=(160, 120)) as cam:
        assert cam.read().image.shape == (120, 160, 3)
        assert cam.size == (160, 120)


def test_file_camera_missing_file_is_a_device_error(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="nope.mp4"):
        FileCamera(tmp_path / "nope.mp4").open()


# ------------------------------------------------------------------ OpenCV and Pi cameras


def test_opencv_camera_reads_what_videocapture_opens(media: dict) -> None:
    with OpenCVCamera(str(media["video"])) as cam:
        frames = [cam.read() for _ in range(3)]
    assert cam.size == (320, 240)
    assert [f.image.shape for f in frames] == [(240, 320, 3)] * 3
    assert [f.index for f in frames] == [0, 1, 2]


def test_opencv_camera_resizes_to_the_requested_size(media: dict) -> None:
    with OpenCVCamera(str(media["video"]), size=(64, 48)) as cam:
        assert cam.read().image.shape == (48, 64, 3)


def test_opencv_camera_without_a_device_is_a_device_error(tmp_path: Path) -> None:
    with pytest.raises(DeviceError):
        OpenCVCamera(str(tmp_path / "video99")).open()


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None, reason="picamera2 is installed")
def test_picamera2_camera_says_how_to_get_picamera2() -> None:
    cam = Picamera2Camera(0)
    with pytest.raises(DeviceError, match=r"Raspberry Pi.*examkiosk\[pi\]"):
        cam.open()


# ------------------------------------------------------------------ WavSource


def test_wav_source_is_paced_and_loops(media: dict) -> None:
    data = media["wav_short_samples"]  # 12000 samples at 48 kHz
    with WavSource(media["wav_short"], chunk=1024) as src:
        assert (src.rate, src.channels) == (48000, 1)
        start = time.monotonic()
        chunks = [src.read() for _ in range(24)]  # 24576 samples: past the end twice
        elapsed = time.monotonic() - start
    assert 0.4 <= elapsed <= 0.9, elapsed  # 24576 / 48000 = 0.512 s
    assert all(isinstance(c, AudioChunk) and c.samples.shape == (1024, 1) for c in chunks)
    assert all(c.samples.dtype == np.int16 for c in chunks)
    got = np.concatenate([c.samples[:, 0] for c in chunks])
    assert np.array_equal(got, np.resize(data, len(got)))
    # Timestamps are those of the first sample and advance by exactly one chunk.
    steps = np.diff([c.t for c in chunks])
    assert np.allclose(steps, 1024 / 48000)


def test_wav_source_converts_rate_and_channels(media: dict) -> None:
    with WavSource(media["wav"], rate=16000, channels=2, chunk=160) as src:
        chunk = src.read()
    assert (src.rate, src.channels) == (16000, 2)
    assert chunk.samples.shape == (160, 2) and chunk.rate == 16000
    assert np.array_equal(chunk.samples[:, 0], chunk.samples[:, 1])
    # 440 Hz resampled: every third 48 kHz sample.
    assert np.allclose(chunk.samples[:, 0], media["wav_samples"][: 480 : 3], atol=2)


def test_wav_source_rejects_a_non_wav(media: dict) -> None:
    with pytest.raises(DeviceError):
        WavSource(media["video"]).open()


# ------------------------------------------------------------------ PyAudioSource


ASOUNDRC = """\
pcm.!default {{
    type asym
    playback.pcm "null"
    capture.pcm "filecapture"
}}
pcm.filecapture {{
    type file
    slave.pcm null
    file "/dev/null"
    infile "{infile}"
    format raw
}}
"""


def test_pyaudio_source_reads_a_real_portaudio_stream(tmp_path: Path) -> None:
    """ALSA's default capture device reads a raw file; PortAudio sees a real input.

    In a subprocess because ALSA reads ``~/.asoundrc`` once per process.
    """
    pytest.importorskip("pyaudio")
    expected = (np.arange(20000) % 3000 - 1500).astype("<i2")
    expected.tofile(tmp_path / "mic.raw")
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(infile=tmp_path / "mic.raw"))
    script = textwrap.dedent(
        """
        import numpy as np
        from station.capture.backends import list_microphones, open_audio
        print("MICS", list_microphones())
        src = open_audio("pyaudio", "", rate=48000, channels=1)
        chunks = [src.read() for _ in range(8)]
        src.close()
        np.save("got.npy", np.concatenate([c.samples for c in chunks]))
        print("SHAPES", {c.samples.shape for c in chunks}, {c.rate for c in chunks})
        """
    )
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "filecapture" in proc.stdout
    assert "SHAPES {(1024, 1)} {48000}" in proc.stdout
    got = np.load(tmp_path / "got.npy")[:, 0]
    assert np.array_equal(got, expected[: len(got)])


# ------------------------------------------------------------------ helpers


def test_level_of_silence_and_full_scale() -> None:
    t = np.arange(48000) / 48000
    full = (32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).reshape(-1, 1)
    minus20 = (3277 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).reshape(-1, 1)
    assert level(np.zeros((1024, 1), np.int16)) == 0.0
    assert level(np.zeros((0, 1), np.int16)) == 0.0
    assert level(np.ones((1024, 1), np.int16)) == 0.0  # -90 dBFS: below the floor
    assert level(full) == pytest.approx(1.0, abs=0.01)
    assert level(minus20) == pytest.approx(40 / 60, abs=0.01)
    assert level(np.full((1024, 2), -32768, np.int16)) == 1.0  # clipped at the top


def test_open_camera_and_audio_reject_unknown_kinds(media: dict) -> None:
    with pytest.raises(ValueError, match="webcam"):
        open_camera("webcam", "0")
    with pytest.raises(ValueError, match="alsa"):
        open_audio("alsa", "hw:0")


def test_open_camera_and_audio_pick_the_file_backends(media: dict) -> None:
    cam = open_camera("file", str(media["video"]), size=(160, 120))
    mic = open_audio("file", str(media["wav"]), rate=48000, channels=1)
    try:
        assert isinstance(cam, FileCamera) and isinstance(mic, WavSource)
        assert cam.read().image.shape == (120, 160, 3)
        assert mic.read().samples.shape == (1024, 1)
    finally:
        cam.close()
        mic.close()


def test_device_lists_are_best_effort_lists() -> None:
    cameras = list_cameras()
    microphones = list_microphones()
    assert isinstance(cameras, list) and all(isinstance(c, str) for c in cameras)
    assert isinstance(microphones, list) and all(isinstance(m, str) for m in microphones)
