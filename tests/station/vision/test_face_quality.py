"""station.vision.face_quality on camera-like frames made from real photos (no mocks).

Each photo is framed the way the kiosk camera sees a seated candidate: a 640x480 view
centred on the face, the face about a third of the frame wide. The faults are then made
from those frames: darkened, backlit, blurred, shrunk, shifted, covered, or two people.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from examkiosk_wire.face import FaceBox, FaceEngine, load_image
from provisioning import assets
from station.vision.face_quality import (
    GUIDANCE_CODES,
    GUIDANCE_EN,
    GUIDANCE_ZH,
    MIN_FACE_FRACTION,
    Quality,
    assess,
    detect_near,
)

FRAME = (640, 480)
GREY = (128, 128, 128)
ALL_PEOPLE = ["obama", "obama2", "obama3", "biden", "astronaut", "grace_hopper"]
SKIN = (90, 120, 170)  # BGR, a mid skin tone: caught by its plain texture, not its colour
COLOURS = {"black": (20, 20, 20), "white": (235, 235, 235), "blue": (200, 170, 120), "skin": SKIN}


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    images = assets.face_images()
    found = {name: load_image(path) for name, path in images.items()
             if name.startswith(("obama", "biden"))}
    found["astronaut"] = load_image(assets.astronaut_image())
    found["grace_hopper"] = load_image(assets.grace_hopper_image())
    return found


@pytest.fixture(scope="module")
def frames(photos) -> dict[str, np.ndarray]:
    """640x480 camera views of each whole-face photo."""
    finder = FaceEngine(detect_max_side=4000)  # full resolution, to frame the face well
    made = {}
    for name, photo in photos.items():
        if "partial" in name:
            continue
        box = max(finder.detect(photo), key=lambda b: b.area)
        made[name] = camera_frame(photo, box)
    return made


def camera_frame(photo: np.ndarray, box: FaceBox, *, face_fraction: float = 0.35,
                 centre: tuple[float, float] = (0.5, 0.42), size=FRAME) -> np.ndarray:
    """A ``size`` view of ``photo`` with the face ``face_fraction`` of its width, its centre
    at ``centre`` (fractions of the view); grey where the view leaves the photo."""
    view_w = box.width / face_fraction
    scale = size[0] / view_w
    cx, cy = box.center
    x0 = cx - centre[0] * view_w
    y0 = cy - centre[1] * view_w * size[1] / size[0]
    matrix = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    return cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=GREY)


def only_face(engine: FaceEngine, frame: np.ndarray) -> FaceBox:
    (box,) = engine.detect(frame)
    return box


def check(quality: Quality, guidance: str | None) -> None:
    assert quality.guidance == guidance, quality
    assert quality.ok is (guidance is None)


@pytest.mark.parametrize("name", ALL_PEOPLE)
def test_well_shown_faces_pass(engine, frames, name):
    quality = assess(frames[name], engine)
    check(quality, None)
    assert quality.box is not None and quality.box.width > 150
    assert quality.message_zh is None
    assert quality.detail["eye_contrast"] > 0 and quality.detail["mouth_texture"] > 0


def test_blank_frame_has_no_face(engine):
    quality = assess(np.full((480, 640, 3), 128, np.uint8), engine)
    check(quality, "no_face")
    assert quality.box is None
    assert quality.message_zh == "未检测到人脸，请正对摄像头"


def test_two_people_side_by_side(engine, frames):
    half = (FRAME[0] // 2, FRAME[1] // 2)
    pair = np.hstack([cv2.resize(frames[n], half, interpolation=cv2.INTER_AREA)
                      for n in ("obama", "biden")])
    canvas = np.full((FRAME[1], FRAME[0], 3), 128, np.uint8)
    canvas[FRAME[1] // 4: FRAME[1] // 4 + half[1]] = pair
    check(assess(canvas, engine), "several_faces")


def test_face_far_from_the_camera_is_too_small(engine, frames):
    small = cv2.resize(frames["obama"], None, fx=0.45, fy=0.45, interpolation=cv2.INTER_AREA)
    canvas = cv2.resize(cv2.GaussianBlur(frames["obama"], (0, 0), 25), FRAME)  # a room, unfocused
    top, left = (FRAME[1] - small.shape[0]) // 2, (FRAME[0] - small.shape[1]) // 2
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    quality = assess(canvas, engine)
    check(quality, "too_small")
    assert quality.detail["face_fraction"] < MIN_FACE_FRACTION


@pytest.mark.parametrize("centre", [(0.2, 0.3), (0.8, 0.7), (0.5, 0.8)])
def test_face_in_a_corner_is_off_centre(engine, photos, centre):
    photo = photos["obama2"]
    box = max(FaceEngine(detect_max_side=4000).detect(photo), key=lambda b: b.area)
    check(assess(camera_frame(photo, box, centre=centre), engine), "off_centre")


@pytest.mark.parametrize("name", ["obama_partial_face", "obama_partial_face2"])
def test_partial_faces_are_refused(engine, photos, name):
    photo = photos[name]
    assert not assess(photo, engine).ok  # the photo as it is
    # and as a 640x480 camera view of its upper part, where the face is cut by the edge
    top = photo[60:60 + photo.shape[1] * 3 // 4]
    quality = assess(cv2.resize(top, FRAME, interpolation=cv2.INTER_AREA), engine)
    assert not quality.ok
    assert quality.guidance in GUIDANCE_CODES


@pytest.mark.parametrize("name", ["obama", "obama2", "obama3"])
def test_dark_frame_is_too_dark(engine, frames, name):
    dark = (frames[name].astype(np.float32) * 0.25).astype(np.uint8)
    quality = assess(dark, engine)
    check(quality, "too_dark")
    assert quality.message_zh.startswith("光线太暗")


def backlit(frame: np.ndarray, box: FaceBox) -> np.ndarray:
    """The person in shadow (x 0.35) before a window blown out to near white."""
    person = np.zeros(frame.shape[:2], np.float32)
    cx, cy = box.center
    cv2.ellipse(person, (round(cx), round(cy)), (round(box.width * 0.62), round(box.height * 0.8)),
                0, 0, 360, 1.0, -1)
    cv2.rectangle(person, (box.left - box.width // 2, box.bottom + box.height // 3),
                  (box.right + box.width // 2, frame.shape[0]), 1.0, -1)  # shoulders
    person = cv2.GaussianBlur(person, (0, 0), 5)[..., None]
    image = frame.astype(np.float32)
    shadow, window = image * 0.35, image * 0.15 + 255 * 0.85
    return (person * shadow + (1 - person) * window).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ALL_PEOPLE)
def test_backlit_frame_is_backlit(engine, frames, name):
    frame = frames[name]
    quality = assess(backlit(frame, only_face(engine, frame)), engine)
    check(quality, "backlit")
    assert quality.detail["backlight_ratio"] < 0.3


@pytest.mark.parametrize("name", ALL_PEOPLE)
def test_blurred_frame_is_blurred(engine, frames, name):
    quality = assess(cv2.GaussianBlur(frames[name], (0, 0), 8), engine)
    check(quality, "blurred")


# Occluders painted at fixed places of the HOG face box, not from the landmarks the gate
# uses: the mouth and chin, the whole lower face from about the nose base, or a bar
# across both eyes.
def paint(frame: np.ndarray, box: FaceBox, where: str, colour) -> np.ndarray:
    w, h = box.width, box.height
    if where == "mouth":
        corners = (box.left + w // 5, box.top + 2 * h // 3), (box.right - w // 5, box.bottom + h // 8)
    elif where == "lower_face":
        corners = (box.left, box.top + 5 * h // 8), (box.right, box.bottom + h // 4)
    elif where == "eyes":
        corners = (box.left + w // 10, box.top + h // 5), (box.right - w // 10, box.top + 2 * h // 5)
    else:
        raise ValueError(where)
    covered = frame.copy()
    cv2.rectangle(covered, *corners, colour, -1)
    return covered


@pytest.mark.parametrize("name", ALL_PEOPLE)
@pytest.mark.parametrize("colour", COLOURS.values(), ids=COLOURS.keys())
def test_covered_mouth_is_face_covered(engine, frames, name, colour):
    frame = frames[name]
    covered = paint(frame, only_face(engine, frame), "mouth", colour)
    check(assess(covered, engine), "face_covered")


@pytest.mark.parametrize("name", ALL_PEOPLE)
@pytest.mark.parametrize("colour", COLOURS.values(), ids=COLOURS.keys())
def test_covered_lower_face_is_refused(engine, frames, name, colour):
    """Covered from the nose base down, like a mask: the detector sometimes loses the face
    altogether (no_face); when it finds it, the gate says why it is refused."""
    frame = frames[name]
    covered = paint(frame, only_face(engine, frame), "lower_face", colour)
    assert assess(covered, engine).guidance in ("face_covered", "no_face")


@pytest.mark.parametrize("name", ["obama", "obama2", "obama3"])
@pytest.mark.parametrize("colour", COLOURS.values(), ids=COLOURS.keys())
def test_covered_lower_face_is_face_covered(engine, frames, name, colour):
    frame = frames[name]
    covered = paint(frame, only_face(engine, frame), "lower_face", colour)
    check(assess(covered, engine), "face_covered")


# Known misses, kept as strict expected failures so that they stay documented (and fail
# as XPASS once the gate learns to catch them): the 5-point predictor moves the eye
# points off the bar, onto the cheeks or the rim of the glasses, which look eye-like.
EYE_BARS_MISSED = {
    ("biden", "white"): "the eye points slide below a pale bar, onto the cheeks",
    ("biden", "blue"): "the eye points slide below a pale bar, onto the cheeks",
    ("grace_hopper", "skin"): "the eye points slide onto the rim of her glasses",
}
EYE_BAR_CASES = [
    pytest.param(name, colour, id=f"{colour}-{name}",
                 marks=[pytest.mark.xfail(strict=True, reason=EYE_BARS_MISSED[(name, colour)])]
                 if (name, colour) in EYE_BARS_MISSED else [])
    for name in ALL_PEOPLE for colour in COLOURS
]


@pytest.mark.parametrize(("name", "colour"), EYE_BAR_CASES)
def test_bar_over_the_eyes_is_refused(engine, frames, name, colour):
    frame = frames[name]
    covered = paint(frame, only_face(engine, frame), "eyes", COLOURS[colour])
    assert assess(covered, engine).guidance in ("face_covered", "no_face")


@pytest.mark.parametrize("name", ["obama", "obama2", "astronaut"])
@pytest.mark.parametrize("colour", COLOURS.values(), ids=COLOURS.keys())
def test_bar_over_the_eyes_is_face_covered(engine, frames, name, colour):
    frame = frames[name]
    covered = paint(frame, only_face(engine, frame), "eyes", colour)
    check(assess(covered, engine), "face_covered")


@pytest.mark.parametrize("name", ALL_PEOPLE)
def test_dark_patch_over_one_eye_is_face_covered(engine, frames, name):
    frame = frames[name]
    box = only_face(engine, frame)
    points = engine.landmarks(frame, box)
    covered = frame.copy()
    eye = points[0:2].mean(axis=0)  # the eye on the image's right
    cv2.circle(covered, (round(eye[0]), round(eye[1])), round(box.width * 0.14), (20, 20, 20), -1)
    check(assess(covered, engine), "face_covered")


def test_landmarks_can_be_skipped(engine, frames):
    frame = frames["obama"]
    covered = paint(frame, only_face(engine, frame), "mouth", (20, 20, 20))
    quality = assess(covered, engine, landmarks=False)
    check(quality, None)
    assert "mouth_texture" not in quality.detail


def test_boxes_found_by_the_caller_are_used(engine, frames):
    frame = frames["obama2"]
    check(assess(frame, engine, boxes=[]), "no_face")
    box = only_face(engine, frame)
    assert assess(frame, engine, boxes=[box]) == assess(frame, engine)


def iou(a: FaceBox, b: FaceBox) -> float:
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    inter = max(w, 0) * max(h, 0)
    return inter / (a.area + b.area - inter)


def test_detect_near_follows_a_face_that_moved(engine, photos, frames):
    photo = photos["obama3"]
    found = max(FaceEngine(detect_max_side=4000).detect(photo), key=lambda b: b.area)
    before = only_face(engine, frames["obama3"])
    moved = camera_frame(photo, found, face_fraction=0.37, centre=(0.45, 0.45))  # next frame
    (near,) = detect_near(moved, engine, before)
    assert iou(near, only_face(engine, moved)) > 0.6
    check(assess(moved, engine, boxes=[near]), None)


def test_detect_near_finds_nothing_where_the_face_left(engine, frames):
    before = only_face(engine, frames["obama"])
    assert detect_near(np.full((480, 640, 3), 128, np.uint8), engine, before) == []


def test_a_much_smaller_second_detection_is_not_a_second_person(engine, frames):
    frame = frames["obama"]
    box = only_face(engine, frame)
    speck = FaceBox(left=10, top=10, right=10 + box.width // 4, bottom=10 + box.height // 4)
    check(assess(frame, engine, boxes=[box, speck]), None)


def test_landmarks_are_five_points_in_face_order(engine, frames):
    frame = frames["obama"]
    box = only_face(engine, frame)
    points = engine.landmarks(frame, box)
    assert points.shape == (5, 2) and points.dtype == np.float32
    eye_right_of_image, eye_left_of_image, nose = points[0:2].mean(0), points[2:4].mean(0), points[4]
    assert eye_left_of_image[0] < nose[0] < eye_right_of_image[0]
    assert nose[1] > max(eye_left_of_image[1], eye_right_of_image[1])
    assert all(box.left <= x <= box.right and box.top <= y <= box.bottom for x, y in points)


def test_every_code_has_a_chinese_and_an_english_message():
    assert set(GUIDANCE_ZH) == set(GUIDANCE_EN) == set(GUIDANCE_CODES)
    for code in GUIDANCE_CODES:
        assert re.search(r"[\u4e00-\u9fff]", GUIDANCE_ZH[code]), code
        assert GUIDANCE_EN[code].strip(), code


def test_rejects_non_bgr_input(engine):
    with pytest.raises(ValueError):
        assess(np.zeros((480, 640), np.uint8), engine)
