"""Flags raised while the candidate answers: the pure logic, no I/O, no clock.

The agent samples the camera and the microphone at about 2 fps beside the recorder and
feeds each sample to :func:`observe` as an :class:`Observation` in server time (epoch
seconds, the station's clock offset applied). Like :func:`station.flow.transition` the
functions here are pure: ``(state, input) -> (state, started, ended)``, so a test drives
an hour of monitoring on a controllable clock in milliseconds.

A flag is an event with a kind, a start and an end in server time. Flags inform, they
never stop an exam. The kinds and when they start:

``no_face``
    no face in view for :attr:`MonitorPolicy.no_face_seconds`;
``several_faces``, ``face_covered``, ``camera_lost``
    as soon as the condition has held for :attr:`MonitorPolicy.confirm_seconds`
    (1 s: three samples at 2 fps), so that one odd frame (a HOG false positive, a hand
    passing the face, a frame the camera failed to deliver) raises nothing;
``face_mismatch``
    at once, when a descriptor computed for the single face in view lies further than
    :attr:`MonitorPolicy.mismatch_threshold` from the enrolled one;
``mic_silent``
    the level stayed below ``silence_level`` for ``silence_seconds``;
``loud_noise``
    the level stayed above ``loud_level`` for ``loud_seconds``;
``focus_lost``
    at once, when the kiosk page reports it lost focus or visibility (:func:`focus`).

``started_at`` is when the condition began (the first sample that showed it), not when
its duration elapsed, so a flag points at the moment in the recording where the
reviewer should look. A sampled condition ends when it has been false for
:attr:`MonitorPolicy.clear_seconds` (again so that one frame does not split a flag in
two); ``ended_at`` is the first sample where it was false. The flag is reported among
``ended`` by the call that finds it over, which may be later than ``ended_at``.

While the camera is lost, the face conditions are unknown: they neither start nor end.

Descriptors are costly, so the agent computes one only when :func:`needs_descriptor`
says so: on the first single face, every ``reverify_seconds`` while a single face stays
in view, on the first single face after it was lost (no face, several faces or no
camera, even for one sample: the person may have changed), and every
``mismatch_recheck_seconds`` while a mismatch is active (so that a bad frame's flag
ends soon). It should compute it only on a frame that passes the quality gate;
:func:`needs_descriptor` stays true until an observation carries a distance.

Limit: a person swapped in without any sample losing the face (a video cut, not a real
seat change, which shows an empty chair or two people for a moment) is caught at the
next re-verification, so up to ``reverify_seconds`` late.

A ``face_mismatch`` ends when a descriptor matches again, or when the single face has
been gone for ``no_face_seconds`` (then at the moment it went).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:  # station.vision.face_quality loads dlib; the agent imports it lazily
    from station.vision.face_quality import Quality

NO_FACE = "no_face"
SEVERAL_FACES = "several_faces"
FACE_MISMATCH = "face_mismatch"
FACE_COVERED = "face_covered"
CAMERA_LOST = "camera_lost"
MIC_SILENT = "mic_silent"
LOUD_NOISE = "loud_noise"
FOCUS_LOST = "focus_lost"

FLAG_KINDS = (NO_FACE, SEVERAL_FACES, FACE_MISMATCH, FACE_COVERED, CAMERA_LOST, MIC_SILENT, LOUD_NOISE,
              FOCUS_LOST)
# The kinds decided from the camera picture (unknown while the camera is lost).
_FACE_KINDS = (NO_FACE, SEVERAL_FACES, FACE_COVERED)
# The kinds decided by observe() from a sampled condition held for a duration.
_SAMPLED_KINDS = (CAMERA_LOST, NO_FACE, SEVERAL_FACES, FACE_COVERED, MIC_SILENT, LOUD_NOISE)


@dataclass(frozen=True)
class Observation:
    """One monitoring sample."""

    t: float  # server time of the frame
    faces: int  # faces in view (only faces big enough to count, as the quality gate counts them)
    covered: bool  # the quality gate found the face covered
    distance: float | None  # descriptor distance to the enrolled face, when computed for this sample
    camera_ok: bool  # a frame arrived; False when the camera delivered nothing
    mic_level: float  # 0..1, station.capture.audio.level() of the audio since the previous sample


@dataclass(frozen=True)
class MonitorPolicy:
    no_face_seconds: float = 5.0
    silence_seconds: float = 30.0
    silence_level: float = 0.05
    loud_level: float = 0.9
    loud_seconds: float = 5.0
    mismatch_threshold: float = 0.6
    reverify_seconds: float = 30.0
    # several_faces, face_covered and camera_lost must hold this long before they start.
    confirm_seconds: float = 1.0
    # A sampled condition must be false this long before its flag ends.
    clear_seconds: float = 1.0
    # While a mismatch is active, re-verify this often (to find its end soon).
    mismatch_recheck_seconds: float = 2.0

    def duration(self, kind: str) -> float:
        """How long a sampled condition must hold before its flag starts."""
        return {
            NO_FACE: self.no_face_seconds,
            MIC_SILENT: self.silence_seconds,
            LOUD_NOISE: self.loud_seconds,
        }.get(kind, self.confirm_seconds)


@dataclass(frozen=True)
class Flag:
    kind: str  # one of FLAG_KINDS
    started_at: float  # server time the condition began
    ended_at: float | None = None  # server time it cleared; None while active
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Track:
    """One condition: since when it holds, since when it has looked clear, its flag."""

    since: float | None = None  # first sample of the current run where it held
    cleared_at: float | None = None  # first sample where it was false again (not yet for clear_seconds)
    flag: Flag | None = None  # the active flag, once started


@dataclass(frozen=True)
class MonitorState:
    last_t: float | None = None
    no_face: Track = Track()
    several_faces: Track = Track()
    face_mismatch: Track = Track()
    face_covered: Track = Track()
    camera_lost: Track = Track()
    mic_silent: Track = Track()
    loud_noise: Track = Track()
    focus_lost: Track = Track()
    # Re-verification: when a descriptor was last compared, and whether the single face was
    # lost (or the camera) since then.
    last_verified_at: float | None = None
    face_lost: bool = False
    # When the single face went out of view (faces != 1 or no camera); None while it is in view.
    lost_since: float | None = None

    def track(self, kind: str) -> Track:
        return getattr(self, kind)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MonitorState":
        values = dict(data)
        for kind in FLAG_KINDS:
            if values.get(kind) is not None:
                track = dict(values[kind])
                if track.get("flag") is not None:
                    track["flag"] = Flag(**track["flag"])
                values[kind] = Track(**track)
        return cls(**values)


FlagResult = tuple[MonitorState, list[Flag], list[Flag]]


def active_flags(state: MonitorState) -> list[Flag]:
    """The flags started and not ended yet, oldest first."""
    flags = [state.track(kind).flag for kind in FLAG_KINDS]
    return sorted((f for f in flags if f is not None), key=lambda f: f.started_at)


def needs_descriptor(state: MonitorState, obs_t: float, faces: int,
                     policy: MonitorPolicy = MonitorPolicy()) -> bool:
    """Whether the agent should compute a descriptor for the sample at ``obs_t``.

    Call it before :func:`observe` with the sample's face count; true only for a single face.
    """
    if faces != 1:
        return False
    if state.last_verified_at is None or state.face_lost:
        return True
    waited = obs_t - state.last_verified_at
    if state.face_mismatch.flag is not None and waited >= policy.mismatch_recheck_seconds:
        return True
    return waited >= policy.reverify_seconds


def observe(state: MonitorState, obs: Observation,
            policy: MonitorPolicy = MonitorPolicy()) -> FlagResult:
    """Apply one sample; the flags it started and the flags it ended.

    Samples must come in time order; one older than the last is ignored.
    """
    if state.last_t is not None and obs.t < state.last_t:
        return state, [], []
    t = obs.t
    started: list[Flag] = []
    ended: list[Flag] = []

    def sample(current: MonitorState, kind: str, holds: bool, detail: dict[str, Any]) -> MonitorState:
        track, start, end = _debounce(current.track(kind), kind, holds, t, policy.duration(kind),
                                      policy.clear_seconds, detail)
        if start:
            started.append(start)
        if end:
            ended.append(end)
        return replace(current, **{kind: track})

    state = replace(state, last_t=t)
    state = sample(state, CAMERA_LOST, not obs.camera_ok, {})
    if obs.camera_ok:
        state = sample(state, NO_FACE, obs.faces == 0, {})
        state = sample(state, SEVERAL_FACES, obs.faces >= 2, {"faces": obs.faces})
        state = sample(state, FACE_COVERED, obs.faces >= 1 and obs.covered, {})
    state = sample(state, MIC_SILENT, obs.mic_level < policy.silence_level, {"level": obs.mic_level})
    state = sample(state, LOUD_NOISE, obs.mic_level > policy.loud_level, {"level": obs.mic_level})

    single = obs.camera_ok and obs.faces == 1
    if not single:
        state = replace(state, face_lost=True, lost_since=t if state.lost_since is None else state.lost_since)
    else:
        state = replace(state, lost_since=None)
    state = _mismatch(state, obs, policy, single, started, ended)
    return state, started, ended


def focus(state: MonitorState, t: float, visible: bool) -> FlagResult:
    """The kiosk page lost (``visible=False``) or regained focus and visibility at ``t``."""
    track = state.focus_lost
    if not visible and track.flag is None:
        flag = Flag(FOCUS_LOST, started_at=t)
        return replace(state, focus_lost=Track(since=t, flag=flag)), [flag], []
    if visible and track.flag is not None:
        flag = replace(track.flag, ended_at=max(t, track.flag.started_at))
        return replace(state, focus_lost=Track()), [], [flag]
    return state, [], []


def finish(state: MonitorState, t: float) -> tuple[MonitorState, list[Flag]]:
    """Monitoring stops at ``t`` (the answer is over): every active flag ends there."""
    ended = [replace(flag, ended_at=max(t, flag.started_at)) for flag in active_flags(state)]
    return MonitorState(last_t=t), ended


def observation_from_quality(t: float, quality: "Quality", *, camera_ok: bool = True, mic_level: float,
                             distance: float | None = None) -> Observation:
    """An observation from the quality gate's verdict on the sample's frame.

    The gate counts a second face only when it is big enough, as :func:`observe` should;
    ``several_faces`` reports how many faces it found in all.
    """
    if quality.guidance == NO_FACE:
        faces = 0
    elif quality.guidance == SEVERAL_FACES:
        faces = max(2, int(quality.detail.get("faces", 2)))
    else:
        faces = 1
    return Observation(t=t, faces=faces, covered=quality.guidance == FACE_COVERED, distance=distance,
                       camera_ok=camera_ok, mic_level=mic_level)


def locate(t: float, segments: Sequence[tuple[str, float, float | None]]) -> tuple[str, float] | None:
    """The segment that server time ``t`` falls in and the offset in seconds into it.

    ``segments`` are ``(name, started_at, ended_at)``, ``ended_at`` None for the open one.
    A segment covers ``[started_at, ended_at)`` (the next one starts where it ends); a time
    exactly at the end of a segment that no other follows still belongs to it. None for a
    time before, after or between the segments.
    """
    best: tuple[str, float, float | None] | None = None
    for segment in segments:
        name, begin, end = segment
        if begin <= t and (end is None or t < end):
            if best is None or begin > best[1]:
                best = segment
    if best is None:
        for segment in segments:
            if segment[2] is not None and t == segment[2]:
                best = segment
    if best is None:
        return None
    return best[0], t - best[1]


def _debounce(track: Track, kind: str, holds: bool, t: float, duration: float, clear: float,
              detail: dict[str, Any]) -> tuple[Track, Flag | None, Flag | None]:
    """One sample of a condition that must hold ``duration`` to start and be false ``clear`` to end."""
    if holds:
        since = t if track.since is None else track.since
        track = replace(track, since=since, cleared_at=None)
        if track.flag is None and t - since >= duration:
            flag = Flag(kind, started_at=since, detail=detail)
            return replace(track, flag=flag), flag, None
        return track, None, None
    if track.since is None:
        return track, None, None
    cleared_at = t if track.cleared_at is None else track.cleared_at
    if t - cleared_at < clear:
        return replace(track, cleared_at=cleared_at), None, None
    end = replace(track.flag, ended_at=cleared_at) if track.flag is not None else None
    return Track(), None, end


def _mismatch(state: MonitorState, obs: Observation, policy: MonitorPolicy, single: bool,
              started: list[Flag], ended: list[Flag]) -> MonitorState:
    track = state.face_mismatch
    if single and obs.distance is not None:
        state = replace(state, last_verified_at=obs.t, face_lost=False)
        detail = {"distance": round(obs.distance, 4), "threshold": policy.mismatch_threshold}
        if obs.distance > policy.mismatch_threshold:
            if track.flag is None:
                flag = Flag(FACE_MISMATCH, started_at=obs.t, detail=detail)
                started.append(flag)
                state = replace(state, face_mismatch=Track(since=obs.t, flag=flag))
        elif track.flag is not None:
            ended.append(replace(track.flag, ended_at=obs.t))
            state = replace(state, face_mismatch=Track())
    elif (track.flag is not None and state.lost_since is not None
          and obs.t - state.lost_since >= policy.no_face_seconds):
        ended.append(replace(track.flag, ended_at=max(state.lost_since, track.flag.started_at)))
        state = replace(state, face_mismatch=Track())
    return state
