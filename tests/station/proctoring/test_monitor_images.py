"""station.proctoring.monitor fed the way the agent feeds it, from real photos through the real face engine.

The enrolled candidate is Obama (the ``obama`` photo). The camera sees him (``obama2``, another
photo), then Biden takes his place. Frames are 640x480 camera views at 2 fps, each a little
shifted and noisy like a live camera; every frame goes through ``FaceEngine.detect`` and the
quality gate, and a descriptor is computed only when ``needs_descriptor`` asks for it.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from examkiosk_wire.face import FaceBox, FaceEngine, face_distance, load_image
from provisioning import assets
from station.capture.audio import level
from station.proctoring.monitor import (
    FACE_MISMATCH,
    Flag,
    MonitorPolicy,
    MonitorState,
    locate,
    needs_descriptor,
    observation_from_quality,
    observe,
)
from station.vision import face_quality
from station.vision.face_quality import assess

FRAME = (640, 480)
GREY = (128, 128, 128)
STEP = 0.5  # 2 fps
T0 = 1_700_000_000.0  # server time of the first sample
SEGMENT_SECONDS = 3.0


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


@pytest.fixture(scope="module")
def enrolled(engine) -> np.ndarray:
    return engine.enrolment_descriptor(load_image(assets.face_images()["obama"]))


@pytest.fixture(scope="module")
def views() -> dict[str, tuple[np.ndarray, FaceBox]]:
    """Each photo with its face box found at full resolution."""
    finder = FaceEngine(detect_max_side=4000)
    images = assets.face_images()
    found = {}
    for name in ("obama2", "biden"):
        photo = load_image(images[name])
        found[name] = photo, max(finder.detect(photo), key=lambda b: b.area)
    return found


@pytest.fixture(scope="module")
def mic_level() -> float:
    """The level of a second of speech-loud audio (a 220 Hz tone at -12 dBFS)."""
    t = np.arange(16000) / 16000
    return level((0.25 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16))


def camera_frame(photo: np.ndarray, box: FaceBox, rng: np.random.Generator) -> np.ndarray:
    """A 640x480 view with the face a third of the width, jittered by a few pixels, with sensor noise."""
    view_w = box.width / 0.35
    scale = FRAME[0] / view_w
    cx, cy = box.center
    dx, dy = rng.uniform(-3, 3, size=2) / scale
    x0 = cx + dx - 0.5 * view_w
    y0 = cy + dy - 0.42 * view_w * FRAME[1] / FRAME[0]
    matrix = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    frame = cv2.warpAffine(photo, matrix, FRAME, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=GREY)
    return _noisy(frame, rng)


def empty_frame(rng: np.random.Generator) -> np.ndarray:
    """The empty seat: a plain wall."""
    return _noisy(np.full((FRAME[1], FRAME[0], 3), (150, 160, 170), np.uint8), rng)


def _noisy(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0, 2.0, frame.shape)
    return np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def monitor(frames: list[np.ndarray], engine: FaceEngine, enrolled: np.ndarray, mic: float,
            policy: MonitorPolicy) -> tuple[list[Flag], list[float], list[str]]:
    """Run the agent's sampling loop over ``frames`` (one per STEP from T0).

    Returns the flags started, the times a descriptor was computed, and each frame's guidance.
    """
    state = MonitorState()
    started: list[Flag] = []
    verified: list[float] = []
    guidance: list[str] = []
    for i, frame in enumerate(frames):
        t = T0 + i * STEP
        quality = assess(frame, engine, boxes=engine.detect(frame))
        guidance.append(quality.guidance or "ok")
        distance = None
        faces = observation_from_quality(t, quality, mic_level=mic).faces
        if quality.ok and needs_descriptor(state, t, faces, policy):
            distance = face_distance(engine.descriptor(frame, quality.box), enrolled)
            verified.append(t)
        obs = observation_from_quality(t, quality, mic_level=mic, distance=distance)
        state, new, _ = observe(state, obs, policy)
        started += new
    return started, verified, guidance


def test_flag_kinds_match_the_quality_gate_codes():
    from station.proctoring import monitor

    assert monitor.NO_FACE == face_quality.NO_FACE
    assert monitor.SEVERAL_FACES == face_quality.SEVERAL_FACES
    assert monitor.FACE_COVERED == face_quality.FACE_COVERED


def test_seat_change_raises_mismatch_at_the_switch(engine, enrolled, views, mic_level):
    """Obama for 15 s, the seat empty for one sample, then Biden: flagged on Biden's first frame."""
    rng = np.random.default_rng(4)
    frames = [camera_frame(*views["obama2"], rng) for _ in range(30)]
    frames.append(empty_frame(rng))
    switch = T0 + len(frames) * STEP  # Biden's first frame
    frames += [camera_frame(*views["biden"], rng) for _ in range(8)]

    started, verified, guidance = monitor(frames, engine, enrolled, mic_level, MonitorPolicy())

    assert guidance == ["ok"] * 30 + ["no_face"] + ["ok"] * 8
    (flag,) = started  # the one empty frame raised no no_face flag
    assert flag.kind == FACE_MISMATCH
    assert abs(flag.started_at - switch) <= STEP
    assert flag.detail["distance"] > 0.6
    assert verified[0] == T0 and switch in verified
    # The flag points into the recording: 3 s segments from T0.
    segments = [(f"seg{n:05d}", T0 + n * SEGMENT_SECONDS, T0 + (n + 1) * SEGMENT_SECONDS) for n in range(7)]
    name, offset = locate(flag.started_at, segments)
    assert (name, offset) == ("seg00005", pytest.approx(0.5))


def test_swap_without_losing_the_face_is_caught_at_the_next_reverification(engine, enrolled, views,
                                                                            mic_level):
    """A cut from Obama straight to Biden (no empty frame) waits for the periodic re-verification."""
    policy = MonitorPolicy(reverify_seconds=5.0)
    rng = np.random.default_rng(5)
    frames = [camera_frame(*views["obama2"], rng) for _ in range(6)]
    switch = T0 + len(frames) * STEP
    frames += [camera_frame(*views["biden"], rng) for _ in range(12)]

    started, verified, guidance = monitor(frames, engine, enrolled, mic_level, policy)

    assert set(guidance) == {"ok"}
    (flag,) = started
    assert flag.kind == FACE_MISMATCH
    assert verified[:2] == [T0, T0 + policy.reverify_seconds]
    assert flag.started_at == T0 + policy.reverify_seconds
    assert switch < flag.started_at <= switch + policy.reverify_seconds
