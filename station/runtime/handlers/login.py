"""Handlers of the login: open the attempt from the ticket, match the face (with the quality gate
and the liveness challenge), report each try, ask for a proctor's review, redeem a fallback code."""
from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import numpy as np

from examkiosk_wire.face import FaceEngine, decide, face_distance
from station import flow
from station.flow import Event
from station.runtime.context import Context
from station.runtime.handlers.paper import prefetch_paper
from station.runtime.handlers.signals import speak
from station.vision.face_quality import assess
from station.vision.liveness import Direction, LivenessCheck, LivenessResult
from station.vision.snapshot import snapshot_jpeg

logger = logging.getLogger(__name__)

FACE_JPEG_QUALITY = 85
FULL_WIDTH = 1 << 16  # no frame is that wide: a face frame is kept at its own size


def face_jpeg(image: np.ndarray) -> bytes | None:
    """A face frame as JPEG, at its own size (None if it cannot be encoded)."""
    try:
        return snapshot_jpeg(image, width=FULL_WIDTH, quality=FACE_JPEG_QUALITY)
    except ValueError:
        return None


def open_attempt(ctx: Context, cmd: flow.OpenAttempt) -> None:
    def work() -> Event:
        attempt = ctx.need_client().open_attempt(cmd.ticket_no)
        ctx.submit(prefetch_paper, ctx, attempt.sitting.id)
        return Event("attempt_opened", attempt.to_json())

    ctx.background(work, failure="attempt_failed")


def match_face(ctx: Context, cmd: flow.MatchFace) -> None:
    ctx.background(lambda: _match(ctx))


def _match(ctx: Context) -> Event:
    settings = ctx.settings.face
    cand = ctx.state.candidate
    if cand is None or cand.descriptor is None:
        return Event("face_result", {"matched": False, "distance": None, "guidance": "no_enrolment"})
    engine = FaceEngine()
    descriptors = []
    good_images: list[np.ndarray] = []
    refused: list[str] = []
    # Only frames that pass the quality gate are matched; the decision uses several of them.
    for image in ctx.capture.frames(settings.frames + 3):
        quality = assess(image, engine)
        if not quality.ok:
            refused.append(quality.guidance)
            continue
        descriptors.append(engine.descriptor(image, quality.box))
        good_images.append(image)
        if len(descriptors) >= settings.frames:
            break
    if not descriptors:
        guidance = max(set(refused), key=refused.count) if refused else "no_face"
        return Event("face_result", {"matched": False, "distance": None, "guidance": guidance})
    enrolled = np.asarray(cand.descriptor, dtype=np.float32)
    threshold = ctx.state.face_threshold or settings.threshold
    decision = decide(descriptors, enrolled, threshold=threshold)
    _keep_best_frame(ctx, good_images, descriptors, enrolled)
    closest = min(range(len(descriptors)), key=lambda i: face_distance(descriptors[i], enrolled))
    ctx.face.last_try = face_jpeg(good_images[closest])
    logger.info("face try: distance %.3f over %d frames (threshold %.2f) -> %s", decision.distance,
                decision.frames_used, threshold, "match" if decision.matched else "no match")
    result: dict[str, Any] = {"matched": decision.matched, "distance": round(decision.distance, 4)}
    if decision.matched and settings.liveness:
        result["liveness"] = liveness_challenge(ctx, engine).to_dict()
    return Event("face_result", result)


def liveness_challenge(ctx: Context, engine: FaceEngine) -> LivenessResult:
    """Ask for a head turn to a random side and watch the camera meanwhile (station.vision.liveness)."""
    direction = secrets.choice(list(Direction))
    ctx.shown.live_challenge = str(direction)
    speak(ctx, flow.Speak(f"turn_{direction}"))
    check = LivenessCheck(engine, direction)
    last_index = -1
    deadline = time.monotonic() + ctx.settings.face.challenge_seconds
    try:
        while time.monotonic() < deadline:
            frame = ctx.capture.status.frame
            if frame is None or frame.index == last_index:
                time.sleep(0.02)
                continue
            last_index = frame.index
            check.add(frame.image)  # about 40 ms a frame: the check sees 10-20 frames
    finally:
        ctx.shown.live_challenge = None
    result = check.result()
    logger.info("liveness (%s): %s", direction, result.to_dict())
    return result


def _keep_best_frame(ctx: Context, images: list[np.ndarray], descriptors: list[np.ndarray],
                     enrolled: np.ndarray) -> None:
    for image, descriptor in zip(images, descriptors, strict=True):
        distance = face_distance(descriptor, enrolled)
        if ctx.face.best_distance is None or distance < ctx.face.best_distance:
            jpeg = face_jpeg(image)
            if jpeg:
                ctx.face.best, ctx.face.best_distance = jpeg, distance


def report_face_try(ctx: Context, cmd: flow.ReportFaceTry) -> None:
    attempt = ctx.state.attempt_id
    frame, ctx.face.last_try = ctx.face.last_try, None

    def work() -> None:
        ctx.need_client().face_try(attempt, distance=cmd.distance, matched=cmd.matched, liveness=cmd.liveness,
                                   frame_jpeg=frame)
        return None

    ctx.background(work, failure="report_failed")


def request_review(ctx: Context, cmd: flow.RequestReview) -> None:
    attempt = ctx.state.attempt_id

    def work() -> None:
        ctx.need_client().request_review(attempt, best_distance=cmd.best_distance, frame_jpeg=ctx.face.best)
        return None

    ctx.background(work, failure="report_failed")


def redeem_code(ctx: Context, cmd: flow.RedeemCode) -> None:
    attempt = ctx.state.attempt_id

    def work() -> Event:
        ctx.need_client().redeem_fallback_code(attempt, cmd.code)
        return Event("review_result", {"status": "approved", "reason": "fallback_code"})

    ctx.background(work)


HANDLERS = {
    flow.OpenAttempt: open_attempt,
    flow.MatchFace: match_face,
    flow.ReportFaceTry: report_face_try,
    flow.RequestReview: request_review,
    flow.RedeemCode: redeem_code,
}
