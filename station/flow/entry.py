"""Transitions before the exam: the ticket, the face login and its review, the reading, the lot,
the device check and the confirmation that enters the waiting room."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from station.flow.commands import (
    DrawLot,
    MatchFace,
    OpenAttempt,
    RedeemCode,
    RefreshDevices,
    ReportEvent,
    ReportFaceTry,
    RequestReview,
    Result,
    Speak,
)
from station.flow.events import Event
from station.flow.exam import enter, optional_float
from station.flow.states import MAX_FACE_TRIES, READING_ORDER, Candidate, FlowState, Schedule, Screen


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
        face_threshold=optional_float(centre.get("face_threshold")),
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
                    interrupted_at=optional_float(resume.get("moved_at")), lot=state.lot),
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
    return enter(state, now)


HANDLERS = {
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
}
