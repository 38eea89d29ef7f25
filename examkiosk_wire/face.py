"""Find faces in camera frames and tell whether they belong to the enrolled candidate.

dlib does the work, offline, with the models that the ``face-recognition-models``
package ships: a HOG frontal-face detector, the 5-point landmark predictor (to align
the face) and the ResNet that turns an aligned face into a 128-d descriptor. Two
descriptors of one person lie about 0.3-0.45 apart, of different people about 0.8-0.9;
:func:`decide` compares the median over several frames with a 0.6 threshold.

Images are BGR ``uint8`` arrays, as OpenCV gives them.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import face_recognition_models
import numpy as np

DEFAULT_THRESHOLD = 0.6
ENROL_MAX_SIDE = 1024  # longer side an enrolment photo is searched at


class FaceError(Exception):
    """Base of the face domain errors."""


class NoFaceFound(FaceError):
    """The image shows no face."""


class SeveralFaces(FaceError):
    """The image shows more than one face where exactly one is needed."""


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in full-frame pixel coordinates, clipped to the frame."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    @property
    def area(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class FaceDecision:
    matched: bool
    distance: float  # median over the frames used
    frames_used: int


@dataclass(frozen=True)
class _Models:
    detector: object
    predictor: object
    encoder: object


_shared_models: _Models | None = None
_models_lock = threading.Lock()


def _load_models() -> _Models:
    """Load the dlib models once per process (about 0.3 s), whichever thread asks first."""
    global _shared_models
    with _models_lock:
        if _shared_models is None:
            _shared_models = _Models(
                detector=dlib.get_frontal_face_detector(),
                predictor=dlib.shape_predictor(
                    face_recognition_models.pose_predictor_five_point_model_location()),
                encoder=dlib.face_recognition_model_v1(
                    face_recognition_models.face_recognition_model_location()),
            )
        return _shared_models


def _to_rgb(image_bgr: np.ndarray) -> np.ndarray:
    if image_bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image_bgr.dtype}")
    if image_bgr.ndim == 2:
        return cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB)
    if image_bgr.ndim == 3 and image_bgr.shape[2] == 3:
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    raise ValueError(f"expected a BGR or grey image, got shape {image_bgr.shape}")


class FaceEngine:
    """Face detection and description; cheap to create, the models are shared per process."""

    def __init__(self, detect_max_side: int = 640, upsample: int = 0) -> None:
        self.detect_max_side = detect_max_side
        self.upsample = upsample
        self._models_cache: _Models | None = None

    @property
    def _models(self) -> _Models:
        if self._models_cache is None:
            self._models_cache = _load_models()
        return self._models_cache

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Faces in the frame, found on a copy whose longer side is at most ``detect_max_side``."""
        return self._detect(image_bgr, self.detect_max_side, self.upsample)

    def _detect(self, image_bgr: np.ndarray, max_side: int, upsample: int) -> list[FaceBox]:
        height, width = image_bgr.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        small = image_bgr
        if scale < 1.0:
            small = cv2.resize(image_bgr, (round(width * scale), round(height * scale)),
                               interpolation=cv2.INTER_AREA)
        return [
            FaceBox(
                left=max(0, round(r.left() / scale)),
                top=max(0, round(r.top() / scale)),
                right=min(width, round((r.right() + 1) / scale)),  # dlib's right/bottom are inclusive
                bottom=min(height, round((r.bottom() + 1) / scale)),
            )
            for r in self._models.detector(_to_rgb(small), upsample)
        ]

    def landmarks(self, image_bgr: np.ndarray, box: FaceBox) -> np.ndarray:
        """The 5 landmarks of the face in ``box`` as a (5, 2) float32 array of (x, y) pixels.

        dlib's 5-point order, in image terms: 0-1 the outer and inner corner of the eye on
        the image's right (the person's left eye), 2-3 the outer and inner corner of the eye
        on the image's left, 4 the base of the nose. The predictor always places all five
        points, also on a covered face: it regresses from the box, it does not test presence.
        """
        rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        shape = self._models.predictor(_to_rgb(image_bgr), rect)
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                        dtype=np.float32)

    def descriptor(self, image_bgr: np.ndarray, box: FaceBox) -> np.ndarray:
        """The 128-d descriptor (float32) of the face in ``box``, aligned on 5 landmarks."""
        rgb = _to_rgb(image_bgr)
        # dlib rectangles are inclusive of right/bottom.
        rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        shape = self._models.predictor(rgb, rect)
        return np.asarray(self._models.encoder.compute_face_descriptor(rgb, shape), dtype=np.float32)

    def enrolment_descriptor(self, image_bgr: np.ndarray) -> np.ndarray:
        """The descriptor of the only face in an enrolment photo.

        Raises NoFaceFound or SeveralFaces. Enrolment is rare and must not miss a second
        face, so it looks at up to ``ENROL_MAX_SIDE`` pixels, and at double resolution
        (upsample 1) when a small photo shows no face at first.
        """
        max_side = max(self.detect_max_side, ENROL_MAX_SIDE)
        boxes = self._detect(image_bgr, max_side, self.upsample)
        if not boxes and self.upsample < 1:
            boxes = self._detect(image_bgr, max_side, 1)
        if not boxes:
            raise NoFaceFound("no face in the enrolment photo")
        if len(boxes) > 1:
            raise SeveralFaces(f"{len(boxes)} faces in the enrolment photo, expected one")
        return self.descriptor(image_bgr, boxes[0])

    def describe_largest(self, image_bgr: np.ndarray) -> tuple[FaceBox, np.ndarray] | None:
        """The largest face in the frame and its descriptor, or None if there is no face."""
        boxes = self.detect(image_bgr)
        if not boxes:
            return None
        box = max(boxes, key=lambda b: b.area)
        return box, self.descriptor(image_bgr, box)


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def decide(descriptors: Sequence[np.ndarray], enrolled: np.ndarray,
           threshold: float = DEFAULT_THRESHOLD) -> FaceDecision:
    """Match when the median distance of the frames' descriptors to ``enrolled`` is <= threshold.

    The median lets a few bad frames (blur, a turned head) pass without swaying the result.
    """
    if len(descriptors) == 0:
        raise ValueError("decide() needs at least one descriptor")
    distance = statistics.median(face_distance(d, enrolled) for d in descriptors)
    return FaceDecision(matched=distance <= threshold, distance=distance,
                        frames_used=len(descriptors))


def load_image(path: str | Path) -> np.ndarray:
    """A BGR image from a file; FileNotFoundError or ValueError if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} is not an image OpenCV can read")
    return image
