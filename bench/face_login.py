"""Benchmark of face login; prints one JSON line on stdout (logs go to stderr).

Frames: the six real photos (obama, obama2, obama3 from the face-recognition 1.3.0 sdist,
biden from it too, scikit-image's astronaut, matplotlib's grace_hopper), each framed as
the kiosk camera sees a seated candidate: a 640x480 view centred on the face, the face
about a third of the width, grey where the view leaves the photo. A login sees a short
burst of such frames (the view shifted and zoomed by a few pixels, with sensor noise).

Reports:
- ``detect_ms_p50``, ``detect_ms_p95``: ``FaceEngine.detect`` on a whole 640x480 frame
  (dlib HOG, no upsampling);
- ``descriptor_ms_p50``: ``FaceEngine.descriptor`` (5-point alignment + 128-d ResNet);
- ``login_decision_ms_p95`` (and ``_p50``): from the first good frame to the decision: the
  first frame searched whole, the next ones only around the last face (``detect_near``),
  each through the quality gate (``assess``, landmarks included) and described once;
  ``decide`` on the first 3 good frames, or on the first 2 when both already fall on the
  same side of the threshold (the median of 3 then cannot fall on the other: the same
  decision, checked on every pair); ``login_3_descriptors_ms_p95`` always describes 3;
- ``pairs``, ``far``, ``frr``: every ordered (probe, enrolled) pair of different photos,
  the probe's 3-frame login decided against the enrolment descriptor the edge computes
  from the other photo, at ``--threshold`` (0.6): 6 same-person pairs (the obama photos),
  24 different-person pairs;
- the peer, in the same run and on the same frames: the ``face_recognition`` library's
  documented defaults (``face_locations`` with one upsampling, ``face_encodings`` with one
  jitter, ``compare_faces`` at 0.6), 3 frames per login: ``peer_ms_p95`` and
  ``ratio_vs_peer`` = login_decision_ms_p95 / peer_ms_p95 (below 1 is faster);
  ``peer_far``, ``peer_frr`` on the same pairs (majority of the 3 frames);
- ``login_decision_cpu_ms_p95``, ``peer_cpu_ms_p95``: the same logins in CPU time of the
  benchmark thread, which other processes on the machine do not inflate, and
  ``load_avg_1m`` before and after the timed part: wall-clock figures taken under load
  are not the machine's.

The peer is a benchmark-only dependency, not one of the project's; ``make bench`` installs it
(``scripts/install-bench-peers.sh``: ``bench/requirements-peers.txt`` with ``--no-deps``, its dlib
coming from the project's dlib-bin; without ``--no-deps`` pip compiles dlib from source). It loads
its own copy of the dlib models, which does not affect our timings.

Run: ``.venv/bin/python -m bench.face_login [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: python bench/face_login.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examkiosk_wire.face import (  # noqa: E402
    DEFAULT_THRESHOLD,
    ENROL_MAX_SIDE,
    FaceBox,
    FaceEngine,
    decide,
    face_distance,
    load_image,
)
from provisioning import assets  # noqa: E402
from station.vision.face_quality import assess, detect_near  # noqa: E402

logger = logging.getLogger("bench.face_login")

FRAME = (640, 480)
PEOPLE = {"obama": "obama", "obama2": "obama", "obama3": "obama", "biden": "biden",
          "astronaut": "collins", "grace_hopper": "hopper"}
FRAMES_PER_LOGIN = 3
BURST = 5  # frames offered per login; the first 3 that pass the gate are used
# (zoom, dx, dy) of the burst's frames: a candidate settling in front of the camera.
_JITTER = [(1.00, 0, 0), (1.02, 3, -2), (0.99, -4, 2), (1.03, 2, 4), (0.98, -2, -3)]


class BenchError(RuntimeError):
    pass


def _import_peer():
    try:
        import face_recognition  # noqa: PLC0415 (bench-only dependency)
    except ImportError as exc:
        raise BenchError(
            "the peer library is missing: install it with `make bench` or, as root, "
            "`scripts/install-bench-peers.sh` (pip --no-deps: dlib comes from dlib-bin; "
            f"without --no-deps pip tries to compile dlib) [{exc}]") from exc
    return face_recognition


def _photos() -> dict[str, np.ndarray]:
    images = assets.face_images()
    paths = {name: images[name] for name in ("obama", "obama2", "obama3", "biden")}
    paths["astronaut"] = assets.astronaut_image()
    paths["grace_hopper"] = assets.grace_hopper_image()
    return {name: load_image(path) for name, path in paths.items()}


def camera_frame(photo: np.ndarray, box: FaceBox, zoom: float = 1.0, dx: int = 0,
                 dy: int = 0, face_fraction: float = 0.35) -> np.ndarray:
    """A 640x480 view of ``photo`` with the face ``face_fraction * zoom`` of its width."""
    view_w = box.width / (face_fraction * zoom)
    scale = FRAME[0] / view_w
    cx, cy = box.center
    x0 = cx - 0.5 * view_w
    y0 = cy - 0.42 * view_w * FRAME[1] / FRAME[0]
    matrix = np.float32([[scale, 0, -x0 * scale + dx], [0, scale, -y0 * scale + dy]])
    return cv2.warpAffine(photo, matrix, FRAME, flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))


def _bursts(photos: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    finder = FaceEngine(detect_max_side=4000)
    rng = np.random.default_rng(1)
    bursts = {}
    for name, photo in photos.items():
        box = max(finder.detect(photo), key=lambda b: b.area)
        frames = []
        for zoom, dx, dy in _JITTER:
            frame = camera_frame(photo, box, zoom, dx, dy).astype(np.float32)
            frame += rng.normal(0.0, 2.0, frame.shape)  # sensor noise
            frames.append(frame.clip(0, 255).astype(np.uint8))
        bursts[name] = frames
    return bursts


def _ms(fn: Callable[[], object], cpu: list[float] | None = None) -> tuple[float, object]:
    """Wall-clock milliseconds of ``fn()`` and its result; its CPU milliseconds (this
    thread's) are appended to ``cpu`` when given."""
    start, start_cpu = time.perf_counter(), time.thread_time()
    result = fn()
    if cpu is not None:
        cpu.append((time.thread_time() - start_cpu) * 1000.0)
    return (time.perf_counter() - start) * 1000.0, result


def login(engine: FaceEngine, frames: list[np.ndarray], enrolled: np.ndarray,
          threshold: float, *, settle_early: bool = True):
    """Our pipeline: (descriptors, decision or None, how many frames passed the gate).

    ``decide`` takes the median of 3 frames' distances, and once 2 of them lie on the same
    side of the threshold the median does too, whatever the third: with ``settle_early``
    the login stops there. The decision is the same as with 3 frames (``run`` checks it on
    every pair); only the distance reported is the median of the frames used.
    """
    descriptors, distances = [], []
    box: FaceBox | None = None
    passed = 0
    majority = FRAMES_PER_LOGIN // 2 + 1
    for frame in frames:
        boxes = engine.detect(frame) if box is None else detect_near(frame, engine, box)
        quality = assess(frame, engine, boxes=boxes)
        if not quality.ok:
            box = None  # search the whole frame again
            continue
        passed += 1
        box = quality.box
        descriptors.append(engine.descriptor(frame, box))
        distances.append(face_distance(descriptors[-1], enrolled))
        if len(descriptors) == FRAMES_PER_LOGIN:
            break
        if settle_early and (sum(d <= threshold for d in distances) >= majority
                             or sum(d > threshold for d in distances) >= majority):
            break
    if not descriptors:
        return descriptors, None, passed
    return descriptors, decide(descriptors, enrolled, threshold), passed


def peer_login(fr, frames: list[np.ndarray], enrolled: np.ndarray, threshold: float):
    """The face_recognition library's defaults, 3 frames, majority of compare_faces."""
    votes = []
    for frame in frames[:FRAMES_PER_LOGIN]:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        locations = fr.face_locations(rgb)
        encodings = fr.face_encodings(rgb, locations)
        if encodings:
            votes.append(bool(fr.compare_faces([enrolled], encodings[0], tolerance=threshold)[0]))
    return sum(votes) * 2 > FRAMES_PER_LOGIN


def _p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


def run(rounds: int, threshold: float) -> dict[str, object]:
    fr = _import_peer()
    engine = FaceEngine()
    photos = _photos()
    bursts = _bursts(photos)
    names = list(photos)

    # Enrolment descriptors from the whole photos, at the edge's enrolment resolution, ours
    # and the peer's; the largest face (the astronaut photo's mission patch also looks like
    # one to HOG, so the edge would ask for another photo of her).
    enroller = FaceEngine(detect_max_side=ENROL_MAX_SIDE)
    enrolled = {name: enroller.describe_largest(photo)[1] for name, photo in photos.items()}
    peer_enrolled = {}
    for name, photo in photos.items():
        rgb = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)
        locations = fr.face_locations(rgb)
        largest = max(locations, key=lambda t: (t[2] - t[0]) * (t[1] - t[3]))
        peer_enrolled[name] = fr.face_encodings(rgb, [largest])[0]

    # Warm-up: first calls allocate.
    login(engine, bursts["obama"], enrolled["obama"], threshold)
    peer_login(fr, bursts["obama"], peer_enrolled["obama"], threshold)

    detect_ms, descriptor_ms, login_ms, login3_ms, peer_ms = [], [], [], [], []
    login_cpu_ms, peer_cpu_ms = [], []
    load_before = os.getloadavg()[0]
    for _ in range(rounds):
        for name in names:
            for frame in bursts[name][:FRAMES_PER_LOGIN]:
                ms, boxes = _ms(lambda f=frame: engine.detect(f))
                detect_ms.append(ms)
                box = max(boxes, key=lambda b: b.area)
                descriptor_ms.append(_ms(lambda f=frame, b=box: engine.descriptor(f, b))[0])
            ms, (descriptors, decision, _) = _ms(
                lambda n=name: login(engine, bursts[n], enrolled[n], threshold), login_cpu_ms)
            if decision is None or not decision.matched:
                raise BenchError(f"{name}: the login with its own enrolment failed ({decision})")
            login_ms.append(ms)
            ms, (descriptors, decision, _) = _ms(lambda n=name: login(
                engine, bursts[n], enrolled[n], threshold, settle_early=False))
            if len(descriptors) < FRAMES_PER_LOGIN:
                raise BenchError(f"{name}: only {len(descriptors)} frames passed the gate")
            login3_ms.append(ms)
            peer_ms.append(_ms(lambda n=name: peer_login(fr, bursts[n], peer_enrolled[n],
                                                          threshold), peer_cpu_ms)[0])

    # Accuracy: every ordered pair of different photos, probe login vs the other's enrolment.
    same = different = false_accepts = false_rejects = 0
    peer_false_accepts = peer_false_rejects = 0
    worst_same, best_different = 0.0, float("inf")
    for probe in names:
        all_three, _, _ = login(engine, bursts[probe], enrolled[probe], threshold,
                                settle_early=False)
        for target in names:
            if target == probe:
                continue
            _, decision, _ = login(engine, bursts[probe], enrolled[target], threshold)
            full = decide(all_three, enrolled[target], threshold)
            if decision.matched != full.matched:
                raise BenchError(f"{probe} vs {target}: settling early changed the decision")
            peer_match = peer_login(fr, bursts[probe], peer_enrolled[target], threshold)
            if PEOPLE[probe] == PEOPLE[target]:
                same += 1
                false_rejects += not decision.matched
                peer_false_rejects += not peer_match
                worst_same = max(worst_same, full.distance)
            else:
                different += 1
                false_accepts += decision.matched
                peer_false_accepts += peer_match
                best_different = min(best_different, full.distance)

    login_p95 = _p(login_ms, 95)
    peer_p95 = _p(peer_ms, 95)
    return {
        "detect_ms_p50": _p(detect_ms, 50),
        "detect_ms_p95": _p(detect_ms, 95),
        "descriptor_ms_p50": _p(descriptor_ms, 50),
        "login_decision_ms_p50": _p(login_ms, 50),
        "login_decision_ms_p95": login_p95,
        "login_3_descriptors_ms_p95": _p(login3_ms, 95),
        "pairs": same + different,
        "same_pairs": same,
        "different_pairs": different,
        "far": round(false_accepts / different, 4),
        "frr": round(false_rejects / same, 4),
        "threshold": threshold,
        "same_distance_max": round(worst_same, 3),
        "different_distance_min": round(best_different, 3),
        "peer_ms_p50": _p(peer_ms, 50),
        "peer_ms_p95": peer_p95,
        "ratio_vs_peer": round(login_p95 / peer_p95, 3),
        "peer_far": round(peer_false_accepts / different, 4),
        "peer_frr": round(peer_false_rejects / same, 4),
        "login_decision_cpu_ms_p95": _p(login_cpu_ms, 95),
        "peer_cpu_ms_p95": _p(peer_cpu_ms, 95),
        "logins": len(login_ms),
        "frames": f"{FRAME[0]}x{FRAME[1]}",
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.face_login", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5,
                        help="logins per person for the timings (default 5)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run(max(1, args.rounds), args.threshold)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
