"""The one entry point, ``transition(state, event, now) -> (state, commands)``: the tick's time-driven
steps here, every other event through the ``(screen, event name)`` table of ``entry`` and ``exam``."""
from __future__ import annotations

from dataclasses import replace

from station.flow import entry, exam
from station.flow.commands import CutSegment, DrawLot, FetchPaper, ReportEvent, Result, Speak
from station.flow.events import Event
from station.flow.exam import finish, handed_over, question_started, resume_after_move, with_item
from station.flow.states import BEFORE_ENTRY, FlowState, Screen, TimingMode, time_left

_HANDLERS = {**entry.HANDLERS, **exam.HANDLERS}


def transition(state: FlowState, event: Event, now: float) -> Result:
    """The one entry point: apply ``event`` at server time ``now``."""
    if event.name == "tick":
        return _tick(state, now)
    handler = _HANDLERS.get((state.screen, event.name)) or _HANDLERS.get((None, event.name))
    if handler is None:
        return state, ()
    return handler(state, event, now)


def _tick(state: FlowState, now: float) -> Result:
    sch = state.schedule
    if sch is None:
        return state, ()
    if state.screen == Screen.MOVED:
        return handed_over(state, Event("handed_over"), now) if state.handed_over else (state, ())
    if state.screen in BEFORE_ENTRY and now >= sch.entry_closes_at and state.resume_cause != "moved":
        return replace(state, screen=Screen.ENTRY_CLOSED, busy=False), (ReportEvent("entry_closed", {}),)
    if state.screen == Screen.DRAW_LOT and now >= sch.lot_deadline_at and not state.busy:
        return replace(state, busy=True), (DrawLot(),)
    if state.screen == Screen.WAITING and now >= sch.starts_at:
        first = 1
        return (replace(state, screen=Screen.ANSWERING, question=first),
                (CutSegment(first, at=sch.starts_at), FetchPaper(), question_started(first), Speak("exam_start")))
    if state.screen in (Screen.DEVICE_CHECK, Screen.RESUME) and state.resume_cause == "moved":
        if now >= sch.ends_at:
            return resume_after_move(state, now)
        return state, ()
    if state.screen == Screen.RESUME and state.interrupted_at is not None:
        if now - state.interrupted_at > sch.max_gap_seconds or now >= sch.ends_at:
            reason = "time_up" if now >= sch.ends_at else "interruption_too_long"
            state = replace(state, interruptions=state.interruptions + 1)
            result = finish(state, reason)
            return result[0], (ReportEvent("interruption", {
                "start": state.interrupted_at, "end": now, "gap_seconds": round(now - state.interrupted_at, 1),
                "count": state.interruptions, "cause": "station_restart", "resumed": False}),) + result[1]
        return state, ()
    if state.screen == Screen.ANSWERING:
        if now >= sch.ends_at:
            return finish(state, "time_up")
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
                    answered = with_item(answered, q)
                return (replace(state, question=due, answered=answered),
                        (CutSegment(due, at=sch.question_window(due)[0]), question_started(due), Speak("next_question")))
    return state, ()
