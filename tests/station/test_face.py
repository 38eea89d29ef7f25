"""examkiosk_wire.face on real photos and on the demo camera clip (no mocks, models loaded once)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from examkiosk_wire.face import FaceBox, FaceEngine, NoFaceFound, SeveralFaces, decide, face_distance, load_image
from provisioning import assets


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


@pytest.fixture(scope="module")
def images() -> dict:
    return assets.face_images()


@pytest.fixture(scope="module")
def obama(engine, images) -> np.ndarray:
    return engine.enrolment_descriptor(load_image(images["obama"]))


@pytest.fixture(scope="module")
def demo_frames() -> list[np.ndarray]:
    """Ten frames spread over the whole demo camera clip."""
    video = assets.build_demo_camera_video(assets.cache_dir() / "demo_camera.mp4")
    cap = cv2.VideoCapture(str(video))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    assert len(frames) > 10
    return [frames[i] for i in np.linspace(0, len(frames) - 1, 10).astype(int)]


def test_enrolment_descriptor_is_128_floats(obama):
    assert obama.shape == (128,)
    assert obama.dtype == np.float32


@pytest.mark.parametrize("name", ["obama2", "obama3"])
def test_same_person_matches(engine, images, obama, name):
    descriptor = engine.enrolment_descriptor(load_image(images[name]))
    decision = decide([descriptor], obama)
    assert decision.matched
    assert decision.distance < 0.6
    assert decision.frames_used == 1


@pytest.mark.parametrize("name", ["biden", "astronaut", "grace_hopper"])
def test_other_people_do_not_match(engine, images, obama, name):
    path = {
        "biden": lambda: images["biden"],
        "astronaut": assets.astronaut_image,
        "grace_hopper": assets.grace_hopper_image,
    }[name]()
    image = load_image(path)
    boxes = engine.detect(image)
    assert boxes, f"no face found in {name}"
    # Every face found must be someone else (the HOG detector also fires on the
    # astronaut's round mission patch).
    for box in boxes:
        decision = decide([engine.descriptor(image, box)], obama)
        assert not decision.matched
        assert decision.distance > 0.6


def test_two_faces_side_by_side_are_refused(engine, images):
    left, right = load_image(images["obama"]), load_image(images["biden"])
    height = left.shape[0]
    right = cv2.resize(right, (round(right.shape[1] * height / right.shape[0]), height),
                       interpolation=cv2.INTER_AREA)
    with pytest.raises(SeveralFaces):
        engine.enrolment_descriptor(np.hstack([left, right]))


def test_blank_image_has_no_face(engine):
    with pytest.raises(NoFaceFound):
        engine.enrolment_descriptor(np.full((480, 640, 3), 128, dtype=np.uint8))
    assert engine.describe_largest(np.full((480, 640, 3), 128, dtype=np.uint8)) is None


def test_detect_maps_boxes_back_to_the_full_frame(engine, images):
    image = load_image(images["obama"])  # 910x1137, detected on a 512x640 copy
    small = FaceEngine(detect_max_side=max(image.shape[:2]))
    (full,), (scaled,) = small.detect(image), engine.detect(image)
    # HOG boxes snap to its scale pyramid, so the two differ by a few percent.
    inter_w = min(full.right, scaled.right) - max(full.left, scaled.left)
    inter_h = min(full.bottom, scaled.bottom) - max(full.top, scaled.top)
    inter = max(inter_w, 0) * max(inter_h, 0)
    assert inter / (full.area + scaled.area - inter) > 0.7


def test_demo_video_shows_the_enrolled_face(engine, obama, demo_frames):
    assert demo_frames[0].shape == (480, 640, 3)
    descriptors = []
    for frame in demo_frames:
        boxes = engine.detect(frame)
        if len(boxes) == 1:
            (box,) = boxes
            assert box.width >= 120  # a candidate close to the camera
            descriptors.append(engine.descriptor(frame, box))
    assert len(descriptors) >= 8
    decision = decide(descriptors, obama)
    assert decision.matched, decision
    assert decision.frames_used == len(descriptors)


def test_describe_largest_picks_the_bigger_face(engine, images):
    image = load_image(images["obama"])
    small = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas = np.full((image.shape[0], image.shape[1] + small.shape[1], 3), 128, np.uint8)
    canvas[:, : image.shape[1]] = image
    canvas[: small.shape[0], image.shape[1]:] = small
    box, descriptor = FaceEngine(detect_max_side=2000).describe_largest(canvas)
    assert box.right <= image.shape[1]
    assert descriptor.shape == (128,)


def test_decide_takes_the_median():
    enrolled = np.zeros(128, np.float32)
    near, far = np.full(128, 0.03, np.float32), np.full(128, 0.1, np.float32)  # 0.34 / 1.13 away
    assert face_distance(near, enrolled) == pytest.approx(0.03 * np.sqrt(128), rel=1e-5)
    assert decide([near, near, far], enrolled).matched
    assert not decide([near, far, far], enrolled).matched
    with pytest.raises(ValueError):
        decide([], enrolled)


def test_face_box_geometry():
    box = FaceBox(left=10, top=20, right=110, bottom=220)
    assert (box.width, box.height, box.center) == (100, 200, (60.0, 120.0))


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.jpg")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError):
        load_image(junk)
