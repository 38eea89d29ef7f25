"""The quality gate a camera frame must pass before it is used for face matching.

:func:`assess` finds the faces in a frame and returns the first problem it sees, as a
guidance code the kiosk turns into a message (:data:`GUIDANCE_ZH`, :data:`GUIDANCE_EN`)
and a spoken cue, or ``ok`` with the face's box. The checks run in this order, cheapest
and most basic first, and stop at the first failure:

``no_face``
    The HOG detector finds nothing. At ``upsample=0`` it needs a face of about 80 px, so
    a face smaller than that also lands here rather than in ``too_small``.
``several_faces``
    More than one face of at least :data:`SECOND_FACE_MIN_RATIO` of the largest one's
    width. Smaller detections are ignored (HOG fires now and then on round objects, such
    as the mission patch in the astronaut photo).
``too_small``
    The face is narrower than :data:`MIN_FACE_FRACTION` of the frame or :data:`MIN_FACE_PX`.
``off_centre``
    The face centre is far from the frame centre, or the face box touches the frame edge
    (the face is cut off: this is how the ``obama_partial_face`` photos are refused).
``backlit``
    The background around and above the head is bright while the face is much darker.
    Checked before ``too_dark`` because the remedy differs (turn away from the window).
``too_dark``
    The median luminance of the inner face is low. Skin tone moves it too, so very dark
    skin in a dim room is flagged before light skin; the threshold is set low for that.
``blurred``
    The variance of the Laplacian of the face, resampled to the 150 px that dlib's
    descriptor sees, is low: motion or focus blur that would degrade the descriptor.
``face_covered``
    From dlib's 5-point landmarks (the corners of both eyes and the base of the nose):

    - the layout must be plausible for the box (eyes in the upper half, the nose base
      below and between them, eye distance in proportion), else the predictor was lost;
    - each eye, sampled between its corners, must show eye-like contrast (sclera, iris,
      lid line): a plain patch, a hand or opaque sunglasses over an eye show little;
    - every quarter of the mouth region (0.2-0.7 eye distances below the nose base)
      must have some texture: a plain surface over part of it has none;
    - on a colour image whose forehead is skin-coloured (the YCrCb skin box of Chai and
      Ngan), the nose bridge must be skin-coloured all the way from the eye line down
      (a band across both eyes breaks it) and the mouth region mostly skin or lip
      coloured (a black, white, grey, blue or green mask or scarf is not).

    What it cannot see, or has not been shown to see:

    - an occluder that is skin-coloured *and* textured (a hand, a beige patterned mask);
    - an occluder the predictor slides around: with a pale or skin-coloured bar over the
      eyes it can put the eye points on the brows or cheeks, where the contrast is
      eye-like (tested: Biden with a white or blue bar, Grace Hopper, who wears glasses,
      with a skin-coloured one, pass);
    - a patch over one eye only is caught when it is dark, not always when it is pale;
    - on a grey or strongly tinted image (an infrared camera) the colour tests are
      skipped, so only plain occluders are caught there;
    - hair, hats and the forehead are not checked; clear glasses pass (as they should);
    - a full beard may read as a non-skin mouth region: no test image has one.

    Occluders big enough to stop the detector (a mask over nose and mouth often is)
    come out as ``no_face``, which refuses the frame as well.

Images are BGR ``uint8`` arrays, as OpenCV gives them. Everything is relative to the
face or frame size, so any frame size works; the thresholds were set on 640x480 frames
made from the real photos the tests use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from examkiosk_wire.face import FaceBox, FaceEngine

NO_FACE = "no_face"
SEVERAL_FACES = "several_faces"
TOO_SMALL = "too_small"
OFF_CENTRE = "off_centre"
TOO_DARK = "too_dark"
BACKLIT = "backlit"
BLURRED = "blurred"
FACE_COVERED = "face_covered"

GUIDANCE_CODES = (NO_FACE, SEVERAL_FACES, TOO_SMALL, OFF_CENTRE, TOO_DARK, BACKLIT, BLURRED,
                  FACE_COVERED)

GUIDANCE_ZH: dict[str, str] = {
    NO_FACE: "未检测到人脸，请正对摄像头",
    SEVERAL_FACES: "画面中有多张人脸，请确保只有您本人在镜头前",
    TOO_SMALL: "距离太远，请靠近摄像头",
    OFF_CENTRE: "请将面部移到画面中央",
    TOO_DARK: "光线太暗，请打开灯或面向光源",
    BACKLIT: "背光太强，请避免背对窗户或灯光",
    BLURRED: "画面模糊，请保持不动并擦拭摄像头",
    FACE_COVERED: "面部被遮挡，请摘下口罩、墨镜或帽子，露出眼睛和嘴巴",
}

GUIDANCE_EN: dict[str, str] = {
    NO_FACE: "No face found. Please face the camera.",
    SEVERAL_FACES: "More than one face in view. Only you may be in front of the camera.",
    TOO_SMALL: "Too far away. Please come closer to the camera.",
    OFF_CENTRE: "Please move your face to the centre of the picture.",
    TOO_DARK: "Too dark. Please turn on a light or face the light.",
    BACKLIT: "Too much light behind you. Please do not sit with your back to a window or lamp.",
    BLURRED: "The picture is blurred. Please hold still and wipe the camera lens.",
    FACE_COVERED: "Your face is covered. Please remove masks, sunglasses or hats so your eyes and mouth show.",
}

# several_faces: a second face counts when it is at least this fraction of the largest
# face's width (a person behind the candidate at twice the distance still counts).
SECOND_FACE_MIN_RATIO = 0.35
# too_small: face box width below this fraction of the frame width...
MIN_FACE_FRACTION = 0.18
# ...or below this many pixels (dlib's descriptor works on a 150 px chip).
MIN_FACE_PX = 96
# off_centre: face centre further from the frame centre than this fraction of the width...
MAX_OFFSET_X = 0.22
# ...or of the height (a head-and-shoulders view has the face a little above centre).
MAX_OFFSET_Y = 0.25
# off_centre: a face box within this many pixels of the frame edge is cut off by it.
EDGE_MARGIN_PX = 2
# too_dark: median luminance (Y, 0-255) of the inner face below this. Well-lit faces of
# the test photos are 98-187, the same faces at a quarter of the light are 24-46.
MIN_FACE_LUMA = 50.0
# backlit: the background beside and above the head has a mean luminance of at least...
BACKLIT_MIN_BACKGROUND = 170.0
# ...and the inner face is darker than this fraction of it. The test photos in their own
# light: 0.53-1.9 (obama3 before a chandelier is the lowest); backlit versions: 0.14-0.26.
BACKLIT_MAX_RATIO = 0.4
# blurred: variance of the Laplacian of the grey face resampled to 150 px wide below
# this. Sharp test faces: 490-6000; blurred by a Gaussian of sigma 3 px (the faces are
# about 216 px wide): 48-141, of sigma 6 px: 17-38.
MIN_SHARPNESS = 40.0
# face_covered, eyes: luminance spread (90th - 10th percentile) inside each eye's core.
# Open eyes in the test photos: 68-141 (45-71 at half the light); a plain occluder: 0.
MIN_EYE_CONTRAST = 25.0
# face_covered, mouth: texture of the least textured quarter of the mouth region (its grey
# standard deviation over the face's median luminance) below which a part of the region
# reads as a plain surface. Real mouths in the test photos: 0.05-0.29, painted: 0.
MIN_MOUTH_TEXTURE = 0.025
# face_covered, mouth: fraction of skin-coloured pixels the mouth region needs when the
# forehead is skin-coloured (teeth and lips are partly outside the skin box).
MIN_MOUTH_SKIN = 0.35
# The forehead counts as skin-coloured (so the colour tests apply) at this fraction.
MIN_REFERENCE_SKIN = 0.6
# face_covered, eye band: along the nose bridge (eye line to nose base) every band of rows
# must be at least this skin-coloured; a bar across both eyes makes some rows 0. Test
# photos: 0.41 (Grace Hopper's glasses) to 1.0.
MIN_BRIDGE_SKIN = 0.15
# Skin in YCrCb (Chai and Ngan, 1999): Cr 133-173, Cb 77-127.
SKIN_CR = (133, 173)
SKIN_CB = (77, 127)
# The mouth region may also be redder than skin (lips, lipstick): Cr up to this counts.
LIP_CR_MAX = 200
# Landmark layout that counts as a face (fractions of the box; dlib's HOG box puts the
# eyes at about 0.3 of its height and the nose base at about 0.6-0.7).
EYE_LINE_Y = (0.12, 0.48)
NOSE_BASE_Y = (0.40, 0.85)
EYE_DISTANCE = (0.25, 0.65)  # distance between the eye centres, fraction of box width

# Tracking (detect_near): the previous face box widened by this fraction of its size on
# each side...
TRACK_MARGIN = 0.5
# ...and scaled so that the face is about this wide (HOG finds faces from about 80 px).
TRACK_FACE_PX = 100

_CHIP = 150  # side of the face crop the sharpness is measured on, like dlib's chip


@dataclass(frozen=True)
class Quality:
    """The gate's verdict on one frame: ``ok``, or the first problem as a guidance code."""

    ok: bool
    guidance: str | None  # one of GUIDANCE_CODES, None when ok
    box: FaceBox | None  # the face the verdict is about (the largest one), if any
    detail: dict[str, float] = field(default_factory=dict)  # the measures computed so far

    @property
    def message_zh(self) -> str | None:
        return GUIDANCE_ZH[self.guidance] if self.guidance else None

    @property
    def message_en(self) -> str | None:
        return GUIDANCE_EN[self.guidance] if self.guidance else None


def assess(image_bgr: np.ndarray, engine: FaceEngine, *, landmarks: bool = True,
           boxes: Sequence[FaceBox] | None = None) -> Quality:
    """Judge one frame; ``ok`` only when a single, well-shown face can be matched.

    ``boxes`` are faces the caller already found in this frame (say in a tracked region
    of interest); without them the whole frame is searched with ``engine.detect``.
    ``landmarks=False`` skips the face-covered check (and the 1 ms the predictor takes).
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 image, got {image_bgr.dtype} {image_bgr.shape}")
    found = list(engine.detect(image_bgr) if boxes is None else boxes)
    detail: dict[str, float] = {"faces": float(len(found))}
    if not found:
        return Quality(False, NO_FACE, None, detail)
    box = max(found, key=lambda b: b.area)
    others = [b for b in found
              if b is not box and b.width >= SECOND_FACE_MIN_RATIO * box.width]
    if others:
        return Quality(False, SEVERAL_FACES, box, detail)

    height, width = image_bgr.shape[:2]
    detail["face_fraction"] = box.width / width
    if box.width < MIN_FACE_FRACTION * width or box.width < MIN_FACE_PX:
        return Quality(False, TOO_SMALL, box, detail)

    cx, cy = box.center
    detail["offset_x"] = abs(cx - width / 2) / width
    detail["offset_y"] = abs(cy - height / 2) / height
    cut = (box.left <= EDGE_MARGIN_PX or box.top <= EDGE_MARGIN_PX
           or box.right >= width - EDGE_MARGIN_PX or box.bottom >= height - EDGE_MARGIN_PX)
    detail["cut_off"] = float(cut)
    if cut or detail["offset_x"] > MAX_OFFSET_X or detail["offset_y"] > MAX_OFFSET_Y:
        return Quality(False, OFF_CENTRE, box, detail)

    ycrcb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2YCrCb)
    luma = ycrcb[..., 0]
    inner = _crop(luma, cx, cy, 0.6 * box.width, 0.6 * box.height)
    face_luma = float(np.median(inner))
    background = _background_luma(luma, box)
    detail["face_luma"] = face_luma
    if background is not None:
        detail["background_luma"] = background
        detail["backlight_ratio"] = face_luma / max(background, 1.0)
        if background >= BACKLIT_MIN_BACKGROUND and face_luma <= BACKLIT_MAX_RATIO * background:
            return Quality(False, BACKLIT, box, detail)
    if face_luma < MIN_FACE_LUMA:
        return Quality(False, TOO_DARK, box, detail)

    detail["sharpness"] = _sharpness(luma, box)
    if detail["sharpness"] < MIN_SHARPNESS:
        return Quality(False, BLURRED, box, detail)

    if landmarks:
        points = engine.landmarks(image_bgr, box)
        covered = _covered(ycrcb, box, points, detail)
        if covered:
            return Quality(False, FACE_COVERED, box, detail)
    return Quality(True, None, box, detail)


def detect_near(image_bgr: np.ndarray, engine: FaceEngine, box: FaceBox) -> list[FaceBox]:
    """Faces in the region around ``box``, the face found in the previous frame.

    The region is ``box`` widened by :data:`TRACK_MARGIN` on each side, searched at a scale
    where the face is about :data:`TRACK_FACE_PX` wide: a few milliseconds instead of the
    25-60 ms of a whole 640x480 frame. It cannot see a second person outside the region,
    so pass its result to :func:`assess` for the frames that follow a whole-frame search,
    and search the whole frame again now and then.
    """
    rows, cols = image_bgr.shape[:2]
    dx, dy = round(box.width * TRACK_MARGIN), round(box.height * TRACK_MARGIN)
    x0, y0 = max(0, box.left - dx), max(0, box.top - dy)
    x1, y1 = min(cols, box.right + dx), min(rows, box.bottom + dy)
    region = image_bgr[y0:y1, x0:x1]
    if region.size == 0:
        return []
    scale = min(1.0, TRACK_FACE_PX / max(box.width, 1))
    if scale < 1.0:
        region = cv2.resize(region, (max(1, round(region.shape[1] * scale)),
                                     max(1, round(region.shape[0] * scale))),
                            interpolation=cv2.INTER_AREA)
    searcher = engine if max(region.shape[:2]) <= engine.detect_max_side else FaceEngine(
        detect_max_side=max(region.shape[:2]), upsample=engine.upsample)
    return [
        FaceBox(left=max(0, x0 + round(b.left / scale)), top=max(0, y0 + round(b.top / scale)),
                right=min(cols, x0 + round(b.right / scale)),
                bottom=min(rows, y0 + round(b.bottom / scale)))
        for b in searcher.detect(region)
    ]


def _crop(plane: np.ndarray, cx: float, cy: float, w: float, h: float) -> np.ndarray:
    """The part of ``plane`` inside the w x h rectangle centred on (cx, cy), clipped."""
    rows, cols = plane.shape[:2]
    x0, x1 = max(0, round(cx - w / 2)), min(cols, round(cx + w / 2))
    y0, y1 = max(0, round(cy - h / 2)), min(rows, round(cy + h / 2))
    return plane[y0:max(y0, y1), x0:max(x0, x1)]


def _background_luma(luma: np.ndarray, box: FaceBox) -> float | None:
    """Mean luminance beside and above the head: the box widened by half its width to
    each side and above, minus the box and minus a margin for hair and ears, above the
    box's bottom (below it are the shoulders, which are not background)."""
    rows, cols = luma.shape
    w, h = box.width, box.height
    x0, x1 = max(0, box.left - w // 2), min(cols, box.right + w // 2)
    y0, y1 = max(0, box.top - h // 2), min(rows, box.bottom)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    mask[:, :] = True
    # The head around the face box (hair, ears) is not background.
    hx0, hx1 = max(x0, box.left - w // 6), min(x1, box.right + w // 6)
    hy0 = max(y0, box.top - h // 4)
    mask[hy0 - y0:, hx0 - x0:hx1 - x0] = False
    values = luma[y0:y1, x0:x1][mask]
    if values.size < 0.25 * w * h:  # the face fills the frame: no background to judge
        return None
    return float(values.mean())


def _sharpness(luma: np.ndarray, box: FaceBox) -> float:
    """Variance of the Laplacian of the inner face, resampled to ``_CHIP`` px wide."""
    cx, cy = box.center
    face = _crop(luma, cx, cy, 0.8 * box.width, 0.8 * box.height)
    if face.size == 0:
        return 0.0
    interpolation = cv2.INTER_AREA if face.shape[1] > _CHIP else cv2.INTER_LINEAR
    chip = cv2.resize(face, (_CHIP, max(1, round(face.shape[0] * _CHIP / face.shape[1]))),
                      interpolation=interpolation)
    return float(cv2.Laplacian(chip, cv2.CV_32F, ksize=3).var())


def _skin_fraction(ycrcb_patch: np.ndarray, cr_max: int = SKIN_CR[1]) -> float:
    """The fraction of pixels whose chroma lies in the skin box (Cr up to ``cr_max``)."""
    if ycrcb_patch.size == 0:
        return 0.0
    cr, cb = ycrcb_patch[..., 1], ycrcb_patch[..., 2]
    skin = ((cr >= SKIN_CR[0]) & (cr <= cr_max) & (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1]))
    return float(skin.mean())


def _spread(patch: np.ndarray) -> float:
    if patch.size == 0:
        return 0.0
    low, high = np.percentile(patch, (10, 90))
    return float(high - low)


def _covered(ycrcb: np.ndarray, box: FaceBox, points: np.ndarray,
             detail: dict[str, float]) -> bool:
    """True when the eyes or the mouth do not look like eyes and a mouth (see module doc)."""
    eye_a, eye_b, nose = points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
    eyes_mid = (eye_a + eye_b) / 2
    eye_distance = float(np.linalg.norm(eye_a - eye_b))
    detail["eye_line_y"] = float(eyes_mid[1] - box.top) / box.height
    detail["nose_base_y"] = float(nose[1] - box.top) / box.height
    detail["eye_distance"] = eye_distance / box.width
    plausible = (
        EYE_LINE_Y[0] <= detail["eye_line_y"] <= EYE_LINE_Y[1]
        and NOSE_BASE_Y[0] <= detail["nose_base_y"] <= NOSE_BASE_Y[1]
        and EYE_DISTANCE[0] <= detail["eye_distance"] <= EYE_DISTANCE[1]
        and nose[1] > eyes_mid[1] + 0.3 * eye_distance
        and min(eye_a[0], eye_b[0]) < nose[0] < max(eye_a[0], eye_b[0])
    )
    detail["landmarks_plausible"] = float(plausible)
    if not plausible:
        return True

    luma = ycrcb[..., 0]
    # Each eye's core: centred between its corners, as wide as the corners are apart
    # and half as high, so it holds the sclera, the iris and the lid line.
    contrasts = []
    for outer, inner_corner in ((points[0], points[1]), (points[2], points[3])):
        centre = (outer + inner_corner) / 2
        width = max(float(np.linalg.norm(outer - inner_corner)), 4.0)
        contrasts.append(_spread(_crop(luma, centre[0], centre[1], width, width / 2)))
    detail["eye_contrast"] = min(contrasts)
    if detail["eye_contrast"] < MIN_EYE_CONTRAST:
        return True

    # The mouth: below the nose base by 0.2-0.7 of the eye distance, 0.9 of it wide; its
    # least textured quarter, so that an occluder over part of it is not averaged away.
    mouth = _crop(ycrcb, nose[0], nose[1] + 0.45 * eye_distance, 0.9 * eye_distance,
                  0.5 * eye_distance)
    half_h, half_w = mouth.shape[0] // 2, mouth.shape[1] // 2
    quarters = [mouth[r:r + half_h, c:c + half_w, 0] for r in (0, half_h) for c in (0, half_w)]
    lowest = min((float(q.std()) for q in quarters if q.size), default=0.0)
    detail["mouth_texture"] = lowest / max(detail["face_luma"], 1.0)
    if detail["mouth_texture"] < MIN_MOUTH_TEXTURE:
        return True
    forehead = _crop(ycrcb, eyes_mid[0], eyes_mid[1] - 0.45 * eye_distance, 0.5 * eye_distance,
                     0.25 * eye_distance)
    detail["forehead_skin"] = _skin_fraction(forehead)
    if detail["forehead_skin"] < MIN_REFERENCE_SKIN:
        return False  # no skin colour to compare with (grey or tinted image, covered forehead)

    # The nose bridge, from the eye line down to the nose base, a quarter eye distance wide:
    # its least skin-coloured band of 5 rows. A bar or band across the eyes leaves none.
    bridge = _crop(ycrcb, eyes_mid[0], (eyes_mid[1] + nose[1]) / 2, 0.25 * eye_distance,
                   nose[1] - eyes_mid[1])
    rows = [_skin_fraction(bridge[i:i + 1]) for i in range(bridge.shape[0])]
    if len(rows) >= 5:
        rows = np.convolve(rows, np.ones(5) / 5, mode="valid").tolist()
    detail["bridge_skin"] = float(min(rows)) if rows else 0.0
    if detail["bridge_skin"] < MIN_BRIDGE_SKIN:
        return True

    detail["mouth_skin"] = _skin_fraction(mouth, cr_max=LIP_CR_MAX)
    return detail["mouth_skin"] < MIN_MOUTH_SKIN
