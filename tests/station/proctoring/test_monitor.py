"""station.proctoring.monitor on a controllable clock: each flag's start and end, glitches, re-verification."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from station.proctoring.monitor import (
    CAMERA_LOST,
    FACE_COVERED,
    FACE_MISMATCH,
    FLAG_KINDS,
    FOCUS_LOST,
    LOUD_NOISE,
    MIC_SILENT,
    NO_FACE,
    SEVERAL_FACES,
    Flag,
    MonitorPolicy,
    MonitorState,
    Observation,
    active_flags,
    finish,
    focus,
    locate,
    needs_descriptor,
    observe,
)

POLICY = MonitorPolicy()
STEP = 0.5  # 2 fps
SPEAKING = 0.3  # a mic level between silent and loud
GOOD, BAD = 0.35, 0.85


@dataclass
class Clock:
    t: float = 1_000.0

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


@dataclass
class Monitoring:
    """Drives station.proctoring.monitor sample by sample like the agent does, on a controllable clock.

    ``distance`` is what the descriptor would give: it is only passed on when
    ``needs_descriptor`` asks for it, as the agent computes it only then.
    """

    policy: MonitorPolicy = POLICY
    clock: Clock = field(default_factory=Clock)
    state: MonitorState = field(default_factory=MonitorState)
    started: list[Flag] = field(default_factory=list)
    ended: list[Flag] = field(default_factory=list)
    reported_at: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    verified_at: list[float] = field(default_factory=list)

    def sample(self, *, faces: int = 1, covered: bool = False, distance: float | None = GOOD,
               camera_ok: bool = True, mic: float = SPEAKING) -> tuple[list[Flag], list[Flag]]:
        t = self.clock.t
        computed = None
        if camera_ok and needs_descriptor(self.state, t, faces, self.policy):
            computed = distance
            self.verified_at.append(t)
        obs = Observation(t=t, faces=faces, covered=covered, distance=computed, camera_ok=camera_ok,
                          mic_level=mic)
        self.state, started, ended = observe(self.state, obs, self.policy)
        self._record(t, started, ended)
        self.clock.advance(STEP)
        return started, ended

    def run(self, seconds: float, **kwargs) -> None:
        """Samples at 2 fps for ``seconds``: from now up to, not including, now + seconds."""
        for _ in range(round(seconds / STEP)):
            self.sample(**kwargs)

    def focus(self, visible: bool) -> None:
        self.state, started, ended = focus(self.state, self.clock.t, visible)
        self._record(self.clock.t, started, ended)

    def _record(self, t: float, started: list[Flag], ended: list[Flag]) -> None:
        self.started += started
        self.ended += ended
        for flag in started:
            self.reported_at.setdefault((flag.kind, "start"), []).append(t)
        for flag in ended:
            self.reported_at.setdefault((flag.kind, "end"), []).append(t)

    def of(self, kind: str) -> tuple[list[Flag], list[Flag]]:
        return ([f for f in self.started if f.kind == kind], [f for f in self.ended if f.kind == kind])


T0 = Clock().t


def test_flag_kinds_are_the_issue_list():
    assert set(FLAG_KINDS) == {"no_face", "several_faces", "face_mismatch", "face_covered", "camera_lost",
                               "mic_silent", "loud_noise", "focus_lost"}


def test_policy_defaults():
    assert (POLICY.no_face_seconds, POLICY.silence_seconds, POLICY.silence_level, POLICY.loud_level,
            POLICY.loud_seconds, POLICY.mismatch_threshold, POLICY.reverify_seconds) == (
        5.0, 30.0, 0.05, 0.9, 5.0, 0.6, 30.0)


def test_a_calm_exam_raises_nothing():
    m = Monitoring()
    m.run(600)
    assert m.started == [] and m.ended == []
    assert active_flags(m.state) == []


def test_no_face_starts_after_five_seconds_dated_from_when_the_face_went():
    m = Monitoring()
    m.run(10)
    left = m.clock.t
    m.run(4.5, faces=0)  # samples left .. left+4.0: not yet 5 s
    assert m.of(NO_FACE) == ([], [])
    m.run(6, faces=0)  # left+4.5 .. left+10
    (flag,), () = m.of(NO_FACE)
    assert flag.started_at == left
    assert flag.ended_at is None
    assert m.reported_at[(NO_FACE, "start")] == [left + 5.0]
    back = m.clock.t
    m.run(5)
    (_,), (end,) = m.of(NO_FACE)
    assert (end.started_at, end.ended_at) == (left, back)
    # The end is reported once the face has been back for clear_seconds.
    assert m.reported_at[(NO_FACE, "end")] == [back + POLICY.clear_seconds]


def test_no_face_glitches_under_the_duration_raise_nothing():
    m = Monitoring()
    for _ in range(20):  # the face lost for 4.5 s at a time, again and again
        m.run(4.5, faces=0)
        m.run(3)
    assert m.of(NO_FACE) == ([], [])


def test_a_single_detected_frame_does_not_split_a_no_face_flag():
    m = Monitoring()
    m.run(8, faces=0)
    m.sample(faces=1)  # one frame with a face, then gone again
    m.run(8, faces=0)
    (flag,), ended = m.of(NO_FACE)
    assert flag.started_at == T0 and ended == []


def test_no_face_pending_survives_a_single_frame_with_a_face():
    m = Monitoring()
    m.run(10)
    left = m.clock.t
    m.run(3, faces=0)
    m.sample(faces=1)
    m.run(2, faces=0)
    (flag,), _ = m.of(NO_FACE)
    assert flag.started_at == left


@pytest.mark.parametrize("kind, bad", [
    (SEVERAL_FACES, {"faces": 2}),
    (FACE_COVERED, {"covered": True}),
    (CAMERA_LOST, {"camera_ok": False}),
])
def test_instant_flags_start_after_one_second_and_end_when_clear(kind, bad):
    m = Monitoring()
    m.run(10)
    began = m.clock.t
    m.run(5, **bad)
    (flag,), () = m.of(kind)
    assert flag.started_at == began
    assert m.reported_at[(kind, "start")] == [began + POLICY.confirm_seconds]
    cleared = m.clock.t
    m.run(5)
    (_,), (end,) = m.of(kind)
    assert (end.started_at, end.ended_at) == (began, cleared)
    assert [f.kind for f in m.started] == [kind]


@pytest.mark.parametrize("bad", [{"faces": 2}, {"covered": True}, {"camera_ok": False}])
def test_instant_flags_ignore_single_frame_glitches(bad):
    m = Monitoring()
    for _ in range(30):
        m.sample(**bad)
        m.run(2)
    for _ in range(30):  # two bad frames in a row: 0.5 s, still under confirm_seconds
        m.sample(**bad)
        m.sample(**bad)
        m.run(2)
    assert m.started == []


def test_several_faces_detail_counts_the_faces():
    m = Monitoring()
    m.run(3, faces=3)
    (flag,), _ = m.of(SEVERAL_FACES)
    assert flag.detail == {"faces": 3}


def test_camera_lost_freezes_the_face_conditions():
    m = Monitoring()
    m.run(10)
    m.run(60, camera_ok=False, faces=0)
    assert [f.kind for f in m.started] == [CAMERA_LOST]


def test_mic_silent_after_thirty_seconds_below_the_level():
    m = Monitoring()
    m.run(10)
    quiet = m.clock.t
    m.run(29.5, mic=0.01)
    assert m.of(MIC_SILENT) == ([], [])
    m.run(5, mic=0.01)
    (flag,), () = m.of(MIC_SILENT)
    assert flag.started_at == quiet
    assert m.reported_at[(MIC_SILENT, "start")] == [quiet + 30]
    spoke = m.clock.t
    m.run(3)
    (_,), (end,) = m.of(MIC_SILENT)
    assert end.ended_at == spoke


def test_pauses_in_speech_are_not_silence():
    m = Monitoring()
    for _ in range(20):
        m.run(25, mic=0.0)
        m.run(2)
    assert m.of(MIC_SILENT) == ([], [])


def test_loud_noise_after_five_seconds_above_the_level():
    m = Monitoring()
    m.run(10)
    loud = m.clock.t
    m.run(4.5, mic=0.95)
    assert m.of(LOUD_NOISE) == ([], [])
    m.run(3, mic=0.95)
    (flag,), () = m.of(LOUD_NOISE)
    assert flag.started_at == loud
    assert flag.detail == {"level": 0.95}
    quiet = m.clock.t
    m.run(3)
    (_,), (end,) = m.of(LOUD_NOISE)
    assert (end.started_at, end.ended_at) == (loud, quiet)


def test_short_bangs_are_not_loud_noise():
    m = Monitoring()
    for _ in range(20):
        m.run(4, mic=1.0)
        m.run(2)
    assert m.of(LOUD_NOISE) == ([], [])


def test_level_at_the_thresholds_raises_nothing():
    m = Monitoring()
    m.run(120, mic=POLICY.silence_level)
    m.run(120, mic=POLICY.loud_level)
    assert m.started == []


def test_reverification_every_thirty_seconds_while_the_face_stays():
    m = Monitoring()
    m.run(100)
    assert m.verified_at == [T0, T0 + 30, T0 + 60, T0 + 90]


def test_reverification_right_after_the_face_returns():
    m = Monitoring()
    m.run(10)
    m.run(2, faces=0)  # lost briefly: no flag, but identity continuity is broken
    back = m.clock.t
    m.run(10)
    assert m.verified_at == [T0, back]
    m.run(40)
    assert m.verified_at == [T0, back, back + 30]
    assert m.started == []


@pytest.mark.parametrize("lost", [{"faces": 0}, {"faces": 2}, {"camera_ok": False}])
def test_any_loss_of_the_single_face_asks_for_reverification(lost):
    m = Monitoring()
    m.run(5)
    m.sample(**lost)
    assert needs_descriptor(m.state, m.clock.t, 1, POLICY)
    assert not needs_descriptor(m.state, m.clock.t, 0, POLICY)
    assert not needs_descriptor(m.state, m.clock.t, 2, POLICY)


def test_reverification_waits_for_a_usable_frame():
    """The agent computes the descriptor only on a frame passing the gate; the request stays open."""
    m = Monitoring()
    m.run(31, distance=None)  # no usable frame for 31 s
    assert needs_descriptor(m.state, m.clock.t, 1, POLICY)
    m.sample()
    assert not needs_descriptor(m.state, m.clock.t, 1, POLICY)
    assert m.state.last_verified_at == m.clock.t - STEP


def test_mismatch_mid_answer_starts_at_the_switch():
    """The distances switch from 0.35 to 0.85 at t=100 while the face never leaves."""
    policy = MonitorPolicy()
    state = MonitorState()
    started: list[Flag] = []
    ended: list[Flag] = []
    t = 0.0
    while t < 200:
        distance = GOOD if t < 100 else BAD
        obs = Observation(t=t, faces=1, covered=False, distance=distance, camera_ok=True, mic_level=SPEAKING)
        state, s, e = observe(state, obs, policy)
        started += s
        ended += e
        t += STEP
    (flag,) = started
    assert flag.kind == FACE_MISMATCH
    assert flag.started_at == 100.0
    assert flag.detail == {"distance": BAD, "threshold": 0.6}
    assert ended == []
    assert [f.kind for f in active_flags(state)] == [FACE_MISMATCH]
    assert locate(flag.started_at, [("a_00001", 0.0, 60.0), ("a_00002", 60.0, 120.0),
                                    ("a_00003", 120.0, None)]) == ("a_00002", 40.0)


def test_mismatch_after_the_face_was_lost_and_came_back():
    """A seat change: the candidate leaves, someone else sits down; caught on the first frame back."""
    m = Monitoring()
    m.run(20)
    m.run(2, faces=0)
    swapped = m.clock.t
    m.run(20, distance=BAD)
    (flag,), () = m.of(FACE_MISMATCH)
    assert flag.started_at == swapped
    assert m.reported_at[(FACE_MISMATCH, "start")] == [swapped]


def test_a_swap_without_losing_the_face_is_caught_at_the_next_reverification():
    m = Monitoring()
    m.run(12)
    m.run(40, distance=BAD)
    (flag,), () = m.of(FACE_MISMATCH)
    assert flag.started_at == T0 + 30


def test_mismatch_rechecks_often_and_ends_when_the_candidate_matches_again():
    m = Monitoring()
    m.run(1)
    m.sample(faces=0)
    bad = m.clock.t
    m.sample(distance=BAD)  # one bad descriptor (say a turned head)
    (flag,), () = m.of(FACE_MISMATCH)
    assert flag.started_at == bad
    m.run(10)
    (_,), (end,) = m.of(FACE_MISMATCH)
    assert end.ended_at == bad + POLICY.mismatch_recheck_seconds
    assert m.verified_at[-2:] == [bad, bad + POLICY.mismatch_recheck_seconds]


def test_mismatch_ends_when_the_stranger_has_left():
    m = Monitoring()
    m.run(5)
    m.sample(faces=0)
    m.run(10, distance=BAD)
    left = m.clock.t
    m.run(2, faces=0)  # a short absence does not end it
    assert m.of(FACE_MISMATCH)[1] == []
    m.run(6, distance=BAD)  # nor does the same stranger coming back
    (flag,), () = m.of(FACE_MISMATCH)
    m.run(10, faces=0)
    (_,), (end,) = m.of(FACE_MISMATCH)
    assert end.ended_at == left + 2 + 6
    assert end.started_at == flag.started_at < left


def test_distance_with_several_faces_is_ignored():
    state, started, _ = observe(MonitorState(), Observation(0.0, 2, False, BAD, True, SPEAKING))
    assert started == [] and state.last_verified_at is None


def test_distance_at_the_threshold_matches():
    m = Monitoring()
    m.run(60, distance=POLICY.mismatch_threshold)
    assert m.started == []


def test_focus_lost_starts_and_ends_at_once():
    m = Monitoring()
    m.run(10)
    hidden = m.clock.t
    m.focus(False)
    m.run(3)
    m.focus(False)  # repeated: no second flag
    m.run(1)
    shown = m.clock.t
    m.focus(True)
    m.focus(True)
    started, ended = m.of(FOCUS_LOST)
    assert [(f.started_at, f.ended_at) for f in started] == [(hidden, None)]
    assert [(f.started_at, f.ended_at) for f in ended] == [(hidden, shown)]
    assert m.reported_at[(FOCUS_LOST, "start")] == [hidden]


def test_several_flags_at_once_and_finish_ends_them_all():
    m = Monitoring()
    m.run(2)
    began = m.clock.t
    m.focus(False)
    m.run(40, faces=0, mic=0.0)
    assert {f.kind for f in active_flags(m.state)} == {NO_FACE, MIC_SILENT, FOCUS_LOST}
    state, ended = finish(m.state, m.clock.t)
    assert {f.kind for f in ended} == {NO_FACE, MIC_SILENT, FOCUS_LOST}
    assert all(f.started_at == began and f.ended_at == m.clock.t for f in ended)
    assert active_flags(state) == []


def test_samples_out_of_order_are_ignored():
    state, _, _ = observe(MonitorState(), Observation(10.0, 0, False, None, True, SPEAKING))
    again, started, ended = observe(state, Observation(5.0, 0, False, None, True, SPEAKING))
    assert again == state and started == ended == []


def test_dropped_samples_still_date_the_flag_from_the_first_one():
    """Monitoring drops its own samples when the CPU is short: a late sample still starts the flag."""
    state, _, _ = observe(MonitorState(), Observation(100.0, 0, False, None, True, SPEAKING))
    state, started, _ = observe(state, Observation(112.0, 0, False, None, True, SPEAKING))
    assert [(f.kind, f.started_at) for f in started] == [(NO_FACE, 100.0)]


def test_state_round_trips_through_a_dict():
    m = Monitoring()
    m.focus(False)
    m.run(10, faces=0)
    m.sample(distance=BAD)  # the face is back, not yet for clear_seconds: no_face still active
    assert {f.kind for f in active_flags(m.state)} == {FOCUS_LOST, NO_FACE, FACE_MISMATCH}
    assert m.state.no_face.cleared_at is not None
    restored = MonitorState.from_dict(m.state.to_dict())
    assert restored == m.state
    assert active_flags(restored) == active_flags(m.state)


SEGMENTS = [("att_cam0_00000.mkv", 100.0, 103.0), ("att_cam0_00001.mkv", 103.0, 106.0),
            ("att_cam0_00003.mkv", 110.0, 113.0), ("att_cam0_00004.mkv", 113.0, None)]


@pytest.mark.parametrize("t, expected", [
    (100.0, ("att_cam0_00000.mkv", 0.0)),
    (101.25, ("att_cam0_00000.mkv", 1.25)),
    (103.0, ("att_cam0_00001.mkv", 0.0)),  # a boundary belongs to the segment that starts there
    (105.5, ("att_cam0_00001.mkv", 2.5)),
    (106.0, ("att_cam0_00001.mkv", 3.0)),  # the end of the last frame before a gap
    (108.0, None),  # in the gap (a restart)
    (99.0, None),  # before the recording
    (112.0, ("att_cam0_00003.mkv", 2.0)),
    (500.0, ("att_cam0_00004.mkv", 387.0)),  # the open segment
])
def test_locate_maps_a_time_to_segment_and_offset(t, expected):
    assert locate(t, SEGMENTS) == expected


def test_locate_unsorted_and_closed_only():
    closed = list(reversed(SEGMENTS[:3]))
    assert locate(104.0, closed) == ("att_cam0_00001.mkv", 1.0)
    assert locate(113.0, closed) == ("att_cam0_00003.mkv", 3.0)
    assert locate(113.5, closed) is None
    assert locate(1.0, []) is None
