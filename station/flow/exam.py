"""Transitions of the exam itself: the waiting room and the answering, interruptions and resuming,
a move to another station, the end and the upload."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from station.flow.commands import (
    Command,
    CutSegment,
    FetchPaper,
    FinishAttempt,
    HandOver,
    ReportEvent,
    Result,
    Speak,
    StartRecording,
    StopRecording,
)
from station.flow.events import Event
from station.flow.states import MOVED_NOTICE_SECONDS, RECORDING_SCREENS, FlowState, Screen, TimingMode


def enter(state: FlowState, now: float) -> Result:
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
             question_started(question), Speak("exam_start")))


def _next_question(state: FlowState, event: Event, now: float) -> Result:
    sch = state.schedule
    assert sch is not None
    if sch.timing_mode != TimingMode.WHOLE_SESSION or state.question >= sch.questions:
        return state, ()
    number = state.question + 1
    return (replace(state, question=number, answered=with_item(state.answered, state.question)),
            (CutSegment(number), question_started(number), Speak("next_question")))


def _end_exam(state: FlowState, event: Event, now: float) -> Result:
    sch = state.schedule
    assert sch is not None
    if sch.timing_mode != TimingMode.WHOLE_SESSION or not sch.early_finish:
        return state, ()
    if not event.payload.get("confirmed"):
        return replace(state, notice="confirm_end"), ()
    return finish(state, "ended_by_candidate")


def _refresh_question(state: FlowState, event: Event, now: float) -> Result:
    return state, (FetchPaper(),)


def _resume(state: FlowState, event: Event, now: float) -> Result:
    """Continue after an interruption, within the sitting's policy; the clock kept running."""
    sch = state.schedule
    assert sch is not None
    if state.resume_cause == "moved":
        return resume_after_move(state, now)
    started = state.interrupted_at or now
    gap = now - started
    interruptions = state.interruptions + 1
    state = replace(state, interruptions=interruptions, interrupted_at=None)
    report = ReportEvent("interruption", {"start": started, "end": now, "gap_seconds": round(gap, 1),
                                          "count": interruptions, "cause": "station_restart"})
    if interruptions > sch.max_interruptions:
        result = finish(replace(state, recording=False), "too_many_interruptions")
        return result[0], (report,) + result[1]
    if gap > sch.max_gap_seconds:
        result = finish(replace(state, recording=False), "interruption_too_long")
        return result[0], (report,) + result[1]
    if now >= sch.ends_at:
        result = finish(replace(state, recording=False), "time_up")
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
        answered = with_item(answered, q)
    return (replace(state, screen=Screen.ANSWERING, recording=True, question=question, answered=answered),
            (report, StartRecording(question), question_started(question), FetchPaper()))


def resume_after_move(state: FlowState, now: float) -> Result:
    """Continue at the spare station. The edge counted the move against the policy when the proctor
    made it; the walk over is not an extra interruption, and the clock kept running."""
    sch = state.schedule
    assert sch is not None
    started = state.interrupted_at or now
    state = replace(state, resume_cause=None, interrupted_at=None)
    report = ReportEvent("resumed", {"cause": "moved", "start": started, "end": now,
                                     "gap_seconds": round(now - started, 1)})
    if now >= sch.ends_at:
        result = finish(state, "time_up")
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


def handed_over(state: FlowState, event: Event, now: float) -> Result:
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

def finish(state: FlowState, reason: str) -> Result:
    answered = with_item(state.answered, state.question) if state.question else state.answered
    commands: list[Command] = []
    if state.recording:
        commands.append(StopRecording())
    commands += [FinishAttempt(reason), Speak("answer_finished"), ReportEvent("answering_finished", {"reason": reason})]
    return (replace(state, screen=Screen.UPLOADING, recording=False, answered=answered, end_reason=reason,
                    busy=False, notice=None), tuple(commands))


def question_started(number: int) -> ReportEvent:
    """The edge keeps the candidate's current question from these (for a move to another station)."""
    return ReportEvent("question_started", {"question": number})


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def with_item(items: tuple[int, ...], value: int) -> tuple[int, ...]:
    return items if value in items or value <= 0 else tuple(sorted(items + (value,)))


HANDLERS = {
    (Screen.ANSWERING, "next_question"): _next_question,
    (Screen.ANSWERING, "end_exam"): _end_exam,
    (Screen.ANSWERING, "refresh_question"): _refresh_question,
    (Screen.ANSWERING, "paper_loaded"): _paper_loaded,
    (Screen.RESUME, "resume"): _resume,
    (None, "restored"): _restored,
    (None, "moved"): _moved_away,
    (Screen.MOVED, "handed_over"): handed_over,
    (Screen.UPLOADING, "uploads_verified"): _uploads_verified,
    (Screen.DONE, "next_candidate"): _next_candidate,
    (Screen.ENTRY_CLOSED, "next_candidate"): _next_candidate,
}
