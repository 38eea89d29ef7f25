"""provisioning.assets: fetched photos, the demo camera clip and the demo microphone track."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from provisioning import assets

REPO = Path(__file__).resolve().parents[2]


def probe(path: Path) -> dict:
    """Width, height, frame rate, frame count and duration of a video's first stream."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=codec_name,pix_fmt,width,height,r_frame_rate,nb_read_packets",
         "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    info = json.loads(out)
    stream = info["streams"][0]
    num, den = map(int, stream["r_frame_rate"].split("/"))
    return {
        "codec": stream["codec_name"],
        "pix_fmt": stream["pix_fmt"],
        "size": (stream["width"], stream["height"]),
        "fps": num / den,
        "frames": int(stream["nb_read_packets"]),
        "duration": float(info["format"]["duration"]),
    }


def longest_quiet_run(path: Path, window_s: float = 0.1, threshold: float = 0.01) -> float:
    """Longest stretch, in seconds, of consecutive windows whose RMS is below ``threshold``."""
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32768.0
    size = int(rate * window_s)
    windows = samples[: len(samples) // size * size].reshape(-1, size)
    rms = np.sqrt(np.mean(windows**2, axis=1))
    longest = run = 0
    for quiet in rms < threshold:
        run = run + 1 if quiet else 0
        longest = max(longest, run)
    return longest * window_s


@pytest.fixture(scope="module")
def demo_video() -> Path:
    return assets.build_demo_camera_video(assets.cache_dir() / "demo_camera.mp4")


def test_face_images_has_the_sdist_photos():
    images = assets.face_images()
    for name in ("obama", "obama2", "obama3", "biden", "obama_partial_face", "obama_partial_face2"):
        assert images[name].is_file(), name
        assert images[name].stat().st_size > 10_000
    assert assets.face_images() == images  # second call: from the cache


def test_face_images_two_processes_share_one_download(tmp_path):
    env = {**os.environ, "EXAMKIOSK_ASSET_CACHE": str(tmp_path / "cache")}
    code = "from provisioning import assets; print(len(assets.face_images()))"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert int(out) >= 6
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".sdist-")]
    assert leftovers == []


def test_demo_video_has_requested_format(demo_video):
    info = probe(demo_video)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["size"] == (640, 480)
    assert info["fps"] == 25
    assert info["frames"] == 20 * 25
    assert info["duration"] == pytest.approx(20, abs=0.1)


def test_demo_video_is_cached(demo_video):
    before = demo_video.stat().st_mtime_ns
    assert assets.build_demo_camera_video(demo_video) == demo_video
    assert demo_video.stat().st_mtime_ns == before


def test_demo_video_honours_other_parameters(tmp_path):
    video = assets.build_demo_camera_video(tmp_path / "small.mp4", seconds=3, size=(320, 240), fps=15)
    info = probe(video)
    assert (info["size"], info["fps"], info["frames"]) == ((320, 240), 15, 45)
    assert info["duration"] == pytest.approx(3, abs=0.1)


def test_demo_wav_is_speech_like(tmp_path):
    path = assets.build_demo_wav(tmp_path / "mic.wav")
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (48000, 1, 2)
        assert wav.getnframes() == 10 * 48000
    assert longest_quiet_run(path) <= 0.5
    # ... and it is not one flat level either: a meter sees loud and quiet moments.
    assert longest_quiet_run(path, threshold=0.05) >= 0.2


def test_cli_demo_builds_everything(tmp_path, capsys, demo_video):
    out = tmp_path / "demo"
    out.mkdir()
    shutil.copy2(demo_video, out / "demo_camera.mp4")  # kept as is: already up to date
    os.utime(out / "demo_camera.mp4")
    assert assets.main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    names = {"demo_camera.mp4", "demo_mic.wav", "enrolled_obama.jpg", "enrolled_biden.jpg"}
    assert {Path(p).name for p in printed} == names
    for name in names:
        assert (out / name).stat().st_size > 1000
    assert (out / "enrolled_obama.jpg").read_bytes() == assets.face_images()["obama"].read_bytes()
