"""The candidate flow as one explicit state machine.

``transition(state, event, now) -> (state, commands)`` is pure: no I/O, no clock. ``now`` is
server time (epoch seconds, the station's clock offset applied) passed in by the runner, so a test
drives the whole exam on a controllable clock. Commands are what the runner must do through its
adapters (network, camera, recorder, speaker); their results come back as events.

Screens follow the seeds' order: identify → face login (3 tries, then manual review) → read the
flow, pledge and notice → draw a lot → device check → info confirmation → waiting room (recording
starts) → answering → upload → done.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

MAX_FACE_TRIES = 3
# How long the MOVED screen stays at least, so the candidate and the proctor can read where to go.
MOVED_NOTICE_SECONDS = 10.0


class Screen(enum.StrEnum):
    IDENTIFY = "identify"
    FACE_LOGIN = "face_login"
    MANUAL_REVIEW = "manual_review"
    READ_FLOW = "read_flow"
    READ_PLEDGE = "read_pledge"
    READ_NOTICE = "read_notice"
    DRAW_LOT = "draw_lot"
    DEVICE_CHECK = "device_check"
    INFO_CONFIRM = "info_confirm"
    WAITING = "waiting"
    ANSWERING = "answering"
    RESUME = "resume"
    # The proctor moved the candidate to another station: this one stops and hands its recording over.
    MOVED = "moved"
    UPLOADING = "uploading"
    DONE = "done"
    ENTRY_CLOSED = "entry_closed"


# Screens before the candidate is in the waiting room: entry closes for them at the cutoff.
BEFORE_ENTRY = frozenset({
    Screen.FACE_LOGIN, Screen.MANUAL_REVIEW, Screen.READ_FLOW, Screen.READ_PLEDGE, Screen.READ_NOTICE,
    Screen.DRAW_LOT, Screen.DEVICE_CHECK, Screen.INFO_CONFIRM,
})
RECORDING_SCREENS = frozenset({Screen.WAITING, Screen.ANSWERING})
READING_ORDER = (Screen.READ_FLOW, Screen.READ_PLEDGE, Screen.READ_NOTICE)


class TimingMode(enum.StrEnum):
    PER_QUESTION = "per_question"
    WHOLE_SESSION = "whole_session"


@dataclass(frozen=True)
class Schedule:
    """A sitting's timing, all in server time (epoch seconds)."""

    sitting: str
    timing_mode: TimingMode
    waiting_opens_at: float
    starts_at: float
    entry_closes_at: float
    lot_deadline_at: float
    question_seconds: tuple[int, ...]
    total_seconds: int
    max_interruptions: int = 1
    max_gap_seconds: float = 120.0
    early_finish: bool = True  # whole-session mode: the candidate may end early

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Schedule":
        return cls(
            sitting=str(data["id"]),
            timing_mode=TimingMode(data["timing_mode"]),
            waiting_opens_at=float(data["waiting_opens_at"]),
            starts_at=float(data["starts_at"]),
            entry_closes_at=float(data["entry_closes_at"]),
            lot_deadline_at=float(data["lot_deadline_at"]),
            question_seconds=tuple(int(s) for s in data["question_seconds"]),
            total_seconds=int(data["total_seconds"]),
            max_interruptions=int(data.get("max_interruptions", 1)),
            max_gap_seconds=float(data.get("max_gap_seconds", 120)),
            early_finish=bool(data.get("early_finish", True)),
        )

    @property
    def questions(self) -> int:
        return len(self.question_seconds)

    @property
    def ends_at(self) -> float:
        if self.timing_mode == TimingMode.PER_QUESTION:
            return self.starts_at + sum(self.question_seconds)
        return self.starts_at + self.total_seconds

    def question_window(self, number: int) -> tuple[float, float]:
        """Per-question mode: the server-time window of question ``number`` (1-based)."""
        begin = self.starts_at + sum(self.question_seconds[: number - 1])
        return begin, begin + self.question_seconds[number - 1]

    def scheduled_question(self, now: float) -> int:
        """Per-question mode: the question running at ``now`` (1-based; 0 before the start)."""
        if now < self.starts_at:
            return 0
        for number in range(1, self.questions + 1):
            if now < self.question_window(number)[1]:
                return number
        return self.questions


@dataclass(frozen=True)
class Candidate:
    ticket_no: str
    name: str
    id_number_masked: str
    seat: str
    descriptor: tuple[float, ...] | None = None


@dataclass(frozen=True)
class FlowState:
    screen: Screen = Screen.IDENTIFY
    attempt_id: str | None = None
    candidate: Candidate | None = None
    schedule: Schedule | None = None
    face_tries: int = 0
    best_distance: float | None = None
    lot: int | None = None
    question: int = 0
    answered: tuple[int, ...] = ()
    recording: bool = False
    interruptions: int = 0
    interrupted_at: float | None = None
    end_reason: str | None = None
    # What the candidate sees about the last thing that went wrong (a message key for the kiosk).
    notice: str | None = None
    # A command is in flight (e.g. the face match): repeated clicks are ignored meanwhile.
    busy: bool = False
    # The countdown that got its one-minute warning (question number; 1 in whole-session mode).
    minute_warned: int = 0
    # The centre's settings that came with the attempt (None: the station's own config).
    face_threshold: float | None = None
    voice: bool | None = None
    # Why the RESUME screen shows: None after a restart here, "moved" after a move from another station.
    resume_cause: str | None = None
    # The first segment sequence number this station may use for the attempt (station/moves.py).
    seq_from: int = 0
    # Where the candidate was moved to (the MOVED screen names it).
    moved_to: str | None = None
    moved_at: float | None = None
    handed_over: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FlowState":
        values = dict(data)
        values["screen"] = Screen(values["screen"])
        if values.get("candidate"):
            cand = dict(values["candidate"])
            if cand.get("descriptor") is not None:
                cand["descriptor"] = tuple(cand["descriptor"])
            values["candidate"] = Candidate(**cand)
        if values.get("schedule"):
            sch = dict(values["schedule"])
            sch["timing_mode"] = TimingMode(sch["timing_mode"])
            sch["question_seconds"] = tuple(sch["question_seconds"])
            values["schedule"] = Schedule(**sch)
        values["answered"] = tuple(values.get("answered", ()))
        return cls(**values)


@dataclass(frozen=True)
class Event:
    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)


# Commands: what the runner performs. Results come back as events.
@dataclass(frozen=True)
class OpenAttempt:
    ticket_no: str


@dataclass(frozen=True)
class MatchFace:
    pass


@dataclass(frozen=True)
class ReportFaceTry:
    distance: float | None
    matched: bool
    # The liveness challenge's outcome ("ok", "no_turn", "rigid", ...) when one ran.
    liveness: str | None = None


@dataclass(frozen=True)
class RequestReview:
    best_distance: float | None


@dataclass(frozen=True)
class RedeemCode:
    """A proctor's one-time fallback code, typed in instead of waiting for the review."""

    code: str


@dataclass(frozen=True)
class DrawLot:
    pass


@dataclass(frozen=True)
class StartRecording:
    question: int | None


@dataclass(frozen=True)
class CutSegment:
    question: int | None


@dataclass(frozen=True)
class StopRecording:
    pass


@dataclass(frozen=True)
class FetchPaper:
    pass


@dataclass(frozen=True)
class FinishAttempt:
    reason: str


@dataclass(frozen=True)
class Speak:
    cue: str


@dataclass(frozen=True)
class ReportEvent:
    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefreshDevices:
    pass


@dataclass(frozen=True)
class HandOver:
    """After a move: declare this station's segments of the attempt and upload them, without finishing it."""

    attempt_id: str


Command = (OpenAttempt | MatchFace | ReportFaceTry | RequestReview | RedeemCode | DrawLot | StartRecording
           | CutSegment | StopRecording | FetchPaper | FinishAttempt | Speak | ReportEvent | RefreshDevices
           | HandOver)
Result = tuple[FlowState, tuple[Command, ...]]


def time_left(state: FlowState, now: float) -> float | None:
    """Seconds left on the countdown the candidate sees (waiting: until the start)."""
    sch = state.schedule
    if sch is None:
        return None
    if state.screen == Screen.WAITING:
        return max(0.0, sch.starts_at - now)
    if state.screen in (Screen.ANSWERING, Screen.RESUME):
        if sch.timing_mode == TimingMode.PER_QUESTION and state.question:
            # While interrupted the paper moves on by itself: show the question server time says.
            number = sch.scheduled_question(now) if state.screen == Screen.RESUME else state.question
            return max(0.0, sch.question_window(number)[1] - now)
        return max(0.0, sch.ends_at - now)
    return None


def transition(state: FlowState, event: Event, now: float) -> Result:
    """The one entry point: apply ``event`` at server time ``now``."""
    if event.name == "tick":
        return _tick(state, now)
    handler = _HANDLERS.get((state.screen, event.name)) or _HANDLERS.get((None, event.name))
    if handler is None:
        return state, ()
    return handler(state, event, now)


# --- handlers -------------------------------------------------------------------------------

def _identify(state: FlowState, event: Event, now: float) -> Result:
    ticket = str(event.payload.get("ticket_no", "")).strip()
    if state.busy:
        return state, ()
    if not ticket.isalnum() or len(ticket) > 32:
        return replace(state, notice="ticket_invalid"), ()
    return replace(state, busy=True, notice=None), (OpenAttempt(ticket),)


def _attempt_opened(state: FlowState, event: Event, now: float) -> Result:
    p = event.payload
    cand = p["candidate"]
    descriptor = cand.get("descriptor")
    centre = p.get("centre") or {}
    state = replace(
        FlowState(),
        attempt_id=str(p["id"]),
        candidate=Candidate(ticket_no=cand["ticket_no"], name=cand["name"],
                            id_number_masked=cand["id_number_masked"], seat=cand.get("seat", ""),
                            descriptor=tuple(descriptor) if descriptor else None),
        schedule=Schedule.from_api(p["sitting"]),
        lot=p.get("lot"),
        face_tries=int(p.get("face_tries", 0)) if not p.get("face_verified") else 0,
        face_threshold=_optional_float(centre.get("face_threshold")),
        voice=bool(centre["voice_prompts"]) if centre.get("voice_prompts") is not None else None,
        seq_from=int((p.get("resume") or {}).get("seq_from", 0)),
    )
    resume = p.get("resume") or {}
    if resume.get("moved") and resume.get("entered"):
        return _moved_here(state, resume)
    if now >= state.schedule.entry_closes_at:
        return replace(state, screen=Screen.ENTRY_CLOSED), ()
    if p.get("face_verified"):
        return replace(state, screen=Screen.READ_FLOW), ()
    review = p.get("review") or {}
    if review.get("status") == "pending":
        return replace(state, screen=Screen.MANUAL_REVIEW), ()
    if state.face_tries >= MAX_FACE_TRIES and review.get("status") != "rejected":
        return (replace(state, screen=Screen.MANUAL_REVIEW),
                (RequestReview(None),))
    return replace(state, screen=Screen.FACE_LOGIN, face_tries=min(state.face_tries, MAX_FACE_TRIES - 1)), (
        Speak("face_camera"),)


def _moved_here(state: FlowState, resume: Mapping[str, Any]) -> Result:
    """The proctor moved the candidate here mid-exam: face login again, then continue the same attempt.

    The move was already counted as an interruption by the edge; the question, the answered ones and
    the time left all come from server time, so nothing the candidate did is lost or extended.
    """
    question = int(resume.get("question") or 0)
    answered = tuple(int(q) for q in resume.get("answered") or ())
    return (replace(state, screen=Screen.FACE_LOGIN, face_tries=0, resume_cause="moved", question=question,
                    answered=answered, interruptions=int(resume.get("interruptions", 0)),
                    interrupted_at=_optional_float(resume.get("moved_at")), lot=state.lot),
            (Speak("face_camera"),))


def _attempt_failed(state: FlowState, event: Event, now: float) -> Result:
    return replace(state, busy=False, notice=str(event.payload.get("code", "edge_error"))), ()


def _face_capture(state: FlowState, event: Event, now: float) -> Result:
    if state.busy:
        return state, ()
    return replace(state, busy=True, notice=None), (MatchFace(),)


def _face_result(state: FlowState, event: Event, now: float) -> Result:
    matched = bool(event.payload.get("matched"))
    distance = event.payload.get("distance")
    guidance = event.payload.get("guidance")
    if guidance and distance is None and not matched:
        # No usable frame (no face, several faces…): guidance only, the try is not spent.
        return replace(state, busy=False, notice=str(guidance)), (Speak(str(guidance)),)
    best = state.best_distance
    if distance is not None:
        best = distance if best is None else min(best, distance)
    liveness = event.payload.get("liveness")
    live_reason = str(liveness.get("reason")) if isinstance(liveness, Mapping) else None
    if matched and isinstance(liveness, Mapping) and not liveness.get("passed"):
        # The right face, but it did not turn as asked, or moved like a picture: a spent try.
        matched = False
    report = ReportFaceTry(distance, matched, live_reason)
    if matched:
        return (replace(state, screen=_after_face(state), busy=False, notice=None, best_distance=best),
                (report, ReportEvent("face_login_passed", {"distance": distance})))
    tries = state.face_tries + 1
    if tries >= MAX_FACE_TRIES:
        return (replace(state, screen=Screen.MANUAL_REVIEW, face_tries=tries, busy=False, best_distance=best,
                        notice="face_failed_review"),
                (report, RequestReview(best)))
    notice = "liveness_failed" if live_reason not in (None, "ok") else "face_no_match"
    return replace(state, face_tries=tries, busy=False, best_distance=best, notice=notice), (
        report, Speak(notice))


def _after_face(state: FlowState) -> Screen:
    """Where a passed face login leads: the reading, or after a move the spare station's device check
    (then straight back to the exam)."""
    return Screen.DEVICE_CHECK if state.resume_cause == "moved" else Screen.READ_FLOW


def _fallback_code(state: FlowState, event: Event, now: float) -> Result:
    code = "".join(ch for ch in str(event.payload.get("code", "")) if ch.isalnum()).upper()
    if state.busy:
        return state, ()
    if not 4 <= len(code) <= 16:
        return replace(state, notice="code_invalid"), ()
    return replace(state, busy=True, notice=None), (RedeemCode(code),)


def _review_result(state: FlowState, event: Event, now: float) -> Result:
    status = event.payload.get("status")
    if status == "approved":
        how = "fallback_code" if event.payload.get("reason") == "fallback_code" else "review"
        return (replace(state, screen=_after_face(state), notice=None, busy=False),
                (ReportEvent("face_login_reviewed", {"by": how}),))
    if status == "rejected":
        return replace(FlowState(), notice="review_rejected"), ()
    return state, ()


def _accept(state: FlowState, event: Event, now: float) -> Result:
    if not event.payload.get("read_to_end"):
        return replace(state, notice="read_to_end"), ()
    index = READING_ORDER.index(state.screen)
    if index + 1 < len(READING_ORDER):
        return replace(state, screen=READING_ORDER[index + 1], notice=None), ()
    if state.lot is not None:
        return replace(state, screen=Screen.DEVICE_CHECK, notice=None), ()
    return replace(state, screen=Screen.DRAW_LOT, notice=None), ()


def _draw_lot(state: FlowState, event: Event, now: float) -> Result:
    if state.busy:
        return state, ()
    return replace(state, busy=True), (DrawLot(),)


def _lot_drawn(state: FlowState, event: Event, now: float) -> Result:
    lot = int(event.payload["lot"])
    screen = Screen.DEVICE_CHECK if state.screen == Screen.DRAW_LOT else state.screen
    return replace(state, lot=lot, busy=False, screen=screen), ()


def _command_failed(state: FlowState, event: Event, now: float) -> Result:
    return replace(state, busy=False, notice=str(event.payload.get("code", "edge_error"))), ()


def _devices_ok(state: FlowState, event: Event, now: float) -> Result:
    if not event.payload.get("camera_ok"):
        return replace(state, notice="camera_dead"), ()
    if not event.payload.get("mic_ok"):
        return replace(state, notice="mic_silent"), ()
    if state.resume_cause == "moved":  # read and confirmed at the first station
        return replace(state, screen=Screen.RESUME, notice=None), ()
    return replace(state, screen=Screen.INFO_CONFIRM, notice=None), ()


def _refresh_devices(state: FlowState, event: Event, now: float) -> Result:
    return state, (RefreshDevices(),)


def _report_mistake(state: FlowState, event: Event, now: float) -> Result:
    text = str(event.payload.get("text", ""))[:500]
    return replace(state, notice="mistake_reported"), (ReportEvent("info_mistake", {"text": text}),)


def _confirm_info(state: FlowState, event: Event, now: float) -> Result:
    sch = state.schedule
    assert sch is not None
    if now < sch.waiting_opens_at:
        return replace(state, notice="waiting_not_open"), ()
    free, needed = event.payload.get("disk_free"), event.payload.get("disk_needed")
    if free is not None and needed is not None and free < needed:
        # Never start a recording that the disk cannot hold; staff must free space first.
        return replace(state, notice="disk_low"), (ReportEvent("disk_low", {"free": free, "needed": needed}),)
    return _enter(state, now)


def recording_bytes_needed(schedule: Schedule, bitrate_kbps: int, now: float) -> int:
    """Disk to keep free before recording: bitrate × the longest the attempt can record × 2."""
    seconds = schedule.ends_at - min(now, schedule.starts_at)
    return int(bitrate_kbps * 1000 / 8 * max(seconds, 0) * 2)


def _enter(state: FlowState, now: float) -> Result:
    """Into the waiting room (recording starts), or straight to the paper if the exam has begun."""
    sch = state.schedule
    assert sch is not None
    if now >= sch.entry_closes_at:
        return replace(state, screen=Screen.ENTRY_CLOSED, notice=None), (ReportEvent("entry_closed", {}),)
    if now < sch.starts_at:
        return (replace(state, screen=Screen.WAITING, recording=True, notice=None),
                (StartRecording(None), ReportEvent("entered_waiting_room", {}), Speak("waiting_room")))
    question = sch.scheduled_question(now) if sch.timing_mode == TimingMode.PER_QUESTION else 1
    return (replace(state, screen=Screen.ANSWERING, recording=True, question=question, notice=None),
            (StartRecording(question), FetchPaper(), ReportEvent("entered_late", {"question": question}),
             _question_started(question), Speak("exam_start")))


def _next_question(state: FlowState, event: Event, now: float) -> Result:
    sch = state.schedule
    assert sch is not None
    if sch.timing_mode != TimingMode.WHOLE_SESSION or state.question >= sch.questions:
        return state, ()
    number = state.question + 1
    return (replace(state, question=number, answered=_with(state.answered, state.question)),
            (CutSegment(number), _question_started(number), Speak("next_question")))


def _end_exam(state: FlowState, event: Event, now: float) -> Result:
    sch = state.schedule
    assert sch is not None
    if sch.timing_mode != TimingMode.WHOLE_SESSION or not sch.early_finish:
        return state, ()
    if not event.payload.get("confirmed"):
        return replace(state, notice="confirm_end"), ()
    return _finish(state, "ended_by_candidate")


def _refresh_question(state: FlowState, event: Event, now: float) -> Result:
    return state, (FetchPaper(),)


def _resume(state: FlowState, event: Event, now: float) -> Result:
    """Continue after an interruption, within the sitting's policy; the clock kept running."""
    sch = state.schedule
    assert sch is not None
    if state.resume_cause == "moved":
        return _resume_after_move(state, now)
    started = state.interrupted_at or now
    gap = now - started
    interruptions = state.interruptions + 1
    state = replace(state, interruptions=interruptions, interrupted_at=None)
    report = ReportEvent("interruption", {"start": started, "end": now, "gap_seconds": round(gap, 1),
                                          "count": interruptions, "cause": "station_restart"})
    if interruptions > sch.max_interruptions:
        result = _finish(replace(state, recording=False), "too_many_interruptions")
        return result[0], (report,) + result[1]
    if gap > sch.max_gap_seconds:
        result = _finish(replace(state, recording=False), "interruption_too_long")
        return result[0], (report,) + result[1]
    if now >= sch.ends_at:
        result = _finish(replace(state, recording=False), "time_up")
        return result[0], (report,) + result[1]
    return _continue(state, now, report)


def _continue(state: FlowState, now: float, report: ReportEvent) -> Result:
    """Back to the paper on the question server time says, recording again."""
    sch = state.schedule
    assert sch is not None
    if now < sch.starts_at:
        return replace(state, screen=Screen.WAITING, recording=True), (report, StartRecording(None))
    question = state.question or 1
    if sch.timing_mode == TimingMode.PER_QUESTION:
        question = sch.scheduled_question(now)
    answered = state.answered
    for q in range(1, question):
        answered = _with(answered, q)
    return (replace(state, screen=Screen.ANSWERING, recording=True, question=question, answered=answered),
            (report, StartRecording(question), _question_started(question), FetchPaper()))


def _resume_after_move(state: FlowState, now: float) -> Result:
    """Continue at the spare station. The edge counted the move against the policy when the proctor
    made it; the walk over is not an extra interruption, and the clock kept running."""
    sch = state.schedule
    assert sch is not None
    started = state.interrupted_at or now
    state = replace(state, resume_cause=None, interrupted_at=None)
    report = ReportEvent("resumed", {"cause": "moved", "start": started, "end": now,
                                     "gap_seconds": round(now - started, 1)})
    if now >= sch.ends_at:
        result = _finish(state, "time_up")
        return result[0], (report,) + result[1]
    return _continue(state, now, report)


def _moved_away(state: FlowState, event: Event, now: float) -> Result:
    """The proctor moved the candidate to another station: stop recording, hand the recording over."""
    if state.attempt_id is None or state.screen in (Screen.IDENTIFY, Screen.UPLOADING, Screen.DONE,
                                                     Screen.ENTRY_CLOSED, Screen.MOVED):
        return state, ()
    to = str(event.payload.get("to", ""))[:64]
    commands: list[Command] = [StopRecording()] if state.recording else []
    commands += [ReportEvent("moved_away", {"to": to, "question": state.question}), HandOver(state.attempt_id)]
    return (replace(state, screen=Screen.MOVED, recording=False, moved_to=to, moved_at=now, busy=False,
                    notice=None), tuple(commands))


def _handed_over(state: FlowState, event: Event, now: float) -> Result:
    """Every segment of this station is verified on the edge: ready for the next candidate (once the
    MOVED screen has been up for MOVED_NOTICE_SECONDS)."""
    if now - (state.moved_at or now) >= MOVED_NOTICE_SECONDS:
        return FlowState(), ()
    return replace(state, handed_over=True), ()


def _restored(state: FlowState, event: Event, now: float) -> Result:
    """The agent came back after a crash or power cut; ``last_alive`` is when it last wrote."""
    if state.screen in RECORDING_SCREENS:
        last_alive = float(event.payload.get("last_alive", now))
        return (replace(state, screen=Screen.RESUME, recording=False, interrupted_at=last_alive, busy=False),
                (ReportEvent("station_restarted", {"interrupted_at": last_alive}),))
    if state.screen == Screen.UPLOADING:
        # The recording is over; the upload and the edge's confirmation carry on where they were.
        return replace(state, busy=False), (FinishAttempt(state.end_reason or "time_up"),)
    if state.screen == Screen.MOVED and state.attempt_id is not None:
        return replace(state, busy=False), (HandOver(state.attempt_id),)  # the hand-over carries on
    return replace(state, busy=False), ()


def _paper_loaded(state: FlowState, event: Event, now: float) -> Result:
    return replace(state, notice=None if state.notice == "paper_pending" else state.notice), ()


def _uploads_verified(state: FlowState, event: Event, now: float) -> Result:
    return replace(state, screen=Screen.DONE, notice=None), (Speak("upload_ok"), ReportEvent("upload_verified", {}))


def _next_candidate(state: FlowState, event: Event, now: float) -> Result:
    return FlowState(), ()


def _tick(state: FlowState, now: float) -> Result:
    sch = state.schedule
    if sch is None:
        return state, ()
    if state.screen == Screen.MOVED:
        return _handed_over(state, Event("handed_over"), now) if state.handed_over else (state, ())
    if state.screen in BEFORE_ENTRY and now >= sch.entry_closes_at and state.resume_cause != "moved":
        return replace(state, screen=Screen.ENTRY_CLOSED, busy=False), (ReportEvent("entry_closed", {}),)
    if state.screen == Screen.DRAW_LOT and now >= sch.lot_deadline_at and not state.busy:
        return replace(state, busy=True), (DrawLot(),)
    if state.screen == Screen.WAITING and now >= sch.starts_at:
        first = 1
        return (replace(state, screen=Screen.ANSWERING, question=first),
                (CutSegment(first), FetchPaper(), _question_started(first), Speak("exam_start")))
    if state.screen in (Screen.DEVICE_CHECK, Screen.RESUME) and state.resume_cause == "moved":
        if now >= sch.ends_at:
            return _resume_after_move(state, now)
        return state, ()
    if state.screen == Screen.RESUME and state.interrupted_at is not None:
        if now - state.interrupted_at > sch.max_gap_seconds or now >= sch.ends_at:
            reason = "time_up" if now >= sch.ends_at else "interruption_too_long"
            state = replace(state, interruptions=state.interruptions + 1)
            result = _finish(state, reason)
            return result[0], (ReportEvent("interruption", {
                "start": state.interrupted_at, "end": now, "gap_seconds": round(now - state.interrupted_at, 1),
                "count": state.interruptions, "cause": "station_restart", "resumed": False}),) + result[1]
        return state, ()
    if state.screen == Screen.ANSWERING:
        if now >= sch.ends_at:
            return _finish(state, "time_up")
        countdown = state.question if sch.timing_mode == TimingMode.PER_QUESTION else 1
        length = (sch.question_seconds[state.question - 1] if sch.timing_mode == TimingMode.PER_QUESTION
                  else sch.total_seconds)
        left = time_left(state, now)
        if (length > 90 and left is not None and left <= 60 and state.minute_warned != countdown
                and (sch.timing_mode != TimingMode.PER_QUESTION or sch.scheduled_question(now) == state.question)):
            return replace(state, minute_warned=countdown), (Speak("one_minute_left"),)
        if sch.timing_mode == TimingMode.PER_QUESTION:
            due = sch.scheduled_question(now)
            if due != state.question:
                answered = state.answered
                for q in range(1, due):
                    answered = _with(answered, q)
                return (replace(state, question=due, answered=answered),
                        (CutSegment(due), _question_started(due), Speak("next_question")))
    return state, ()


def _finish(state: FlowState, reason: str) -> Result:
    answered = _with(state.answered, state.question) if state.question else state.answered
    commands: list[Command] = []
    if state.recording:
        commands.append(StopRecording())
    commands += [FinishAttempt(reason), Speak("answer_finished"), ReportEvent("answering_finished", {"reason": reason})]
    return (replace(state, screen=Screen.UPLOADING, recording=False, answered=answered, end_reason=reason,
                    busy=False, notice=None), tuple(commands))


def _question_started(number: int) -> ReportEvent:
    """The edge keeps the candidate's current question from these (for a move to another station)."""
    return ReportEvent("question_started", {"question": number})


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _with(items: tuple[int, ...], value: int) -> tuple[int, ...]:
    return items if value in items or value <= 0 else tuple(sorted(items + (value,)))


_HANDLERS = {
    (Screen.IDENTIFY, "identify"): _identify,
    (Screen.IDENTIFY, "attempt_opened"): _attempt_opened,
    (Screen.IDENTIFY, "attempt_failed"): _attempt_failed,
    (Screen.FACE_LOGIN, "face_capture"): _face_capture,
    (Screen.FACE_LOGIN, "face_result"): _face_result,
    (Screen.MANUAL_REVIEW, "review_result"): _review_result,
    (Screen.MANUAL_REVIEW, "fallback_code"): _fallback_code,
    (Screen.READ_FLOW, "accept"): _accept,
    (Screen.READ_PLEDGE, "accept"): _accept,
    (Screen.READ_NOTICE, "accept"): _accept,
    (Screen.DRAW_LOT, "draw_lot"): _draw_lot,
    (None, "lot_drawn"): _lot_drawn,
    (None, "command_failed"): _command_failed,
    (Screen.DEVICE_CHECK, "devices_ok"): _devices_ok,
    (Screen.DEVICE_CHECK, "refresh_devices"): _refresh_devices,
    (Screen.INFO_CONFIRM, "confirm_info"): _confirm_info,
    (Screen.INFO_CONFIRM, "report_mistake"): _report_mistake,
    (Screen.ANSWERING, "next_question"): _next_question,
    (Screen.ANSWERING, "end_exam"): _end_exam,
    (Screen.ANSWERING, "refresh_question"): _refresh_question,
    (Screen.ANSWERING, "paper_loaded"): _paper_loaded,
    (Screen.RESUME, "resume"): _resume,
    (None, "restored"): _restored,
    (None, "moved"): _moved_away,
    (Screen.MOVED, "handed_over"): _handed_over,
    (Screen.UPLOADING, "uploads_verified"): _uploads_verified,
    (Screen.DONE, "next_candidate"): _next_candidate,
    (Screen.ENTRY_CLOSED, "next_candidate"): _next_candidate,
}
