"""The candidate state machine, driven on a controllable clock (no sleeps, no I/O)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from station import flow
from station.flow import (
    CutSegment,
    DrawLot,
    Event,
    FetchPaper,
    FinishAttempt,
    FlowState,
    MatchFace,
    OpenAttempt,
    ReportFaceTry,
    RequestReview,
    Screen,
    StartRecording,
    StopRecording,
    time_left,
    transition,
)

T0 = 1_800_000_000.0  # the sitting starts here (server time)


def sitting(mode: str = "per_question", **over) -> dict:
    data = {
        "id": "s1", "timing_mode": mode, "waiting_opens_at": T0 - 1800, "starts_at": T0,
        "entry_closes_at": T0 + 180, "lot_deadline_at": T0 - 60, "question_seconds": [300, 300],
        "total_seconds": 900 if mode == "whole_session" else 600, "max_interruptions": 1, "max_gap_seconds": 120,
    }
    data.update(over)
    return data


def opened(mode: str = "per_question", **attempt) -> Event:
    payload = {
        "id": "a1", "lot": None, "face_tries": 0, "face_verified": None, "review": None,
        "candidate": {"ticket_no": "20240001", "name": "张明", "id_number_masked": "110*************1X",
                      "seat": "A01", "descriptor": [0.1] * 128},
        "sitting": sitting(mode),
    }
    payload.update(attempt)
    return Event("attempt_opened", payload)


class Run:
    """Applies events in order and keeps every command, like the runner but without I/O."""

    def __init__(self, state: FlowState | None = None):
        self.state = state or FlowState()
        self.commands: list = []

    def __call__(self, name: str, now: float, **payload) -> tuple:
        self.state, cmds = transition(self.state, Event(name, payload), now)
        self.commands += cmds
        return cmds

    def event(self, event: Event, now: float) -> tuple:
        self.state, cmds = transition(self.state, event, now)
        self.commands += cmds
        return cmds


def to_info_confirm(run: Run, now: float, mode: str = "per_question") -> None:
    assert run("identify", now, ticket_no="20240001") == (OpenAttempt("20240001"),)
    run.event(opened(mode), now)
    assert run.state.screen == Screen.FACE_LOGIN
    assert run("face_capture", now) == (MatchFace(),)
    run("face_result", now, matched=True, distance=0.35)
    for screen in (Screen.READ_FLOW, Screen.READ_PLEDGE, Screen.READ_NOTICE):
        assert run.state.screen == screen
        run("accept", now, read_to_end=True)
    assert run.state.screen == Screen.DRAW_LOT
    assert run("draw_lot", now) == (DrawLot(),)
    run("lot_drawn", now, lot=7)
    assert run.state.screen == Screen.DEVICE_CHECK and run.state.lot == 7
    run("devices_ok", now, camera_ok=True, mic_ok=True)
    assert run.state.screen == Screen.INFO_CONFIRM


def test_whole_flow_per_question_auto_advances_on_server_time():
    run = Run()
    to_info_confirm(run, T0 - 900)
    cmds = run("confirm_info", T0 - 800)
    assert run.state.screen == Screen.WAITING and StartRecording(None) in cmds
    assert time_left(run.state, T0 - 800) == 800
    run("tick", T0 - 1)
    assert run.state.screen == Screen.WAITING
    cmds = run("tick", T0)
    assert run.state.screen == Screen.ANSWERING and run.state.question == 1
    assert CutSegment(1, at=T0) in cmds and FetchPaper() in cmds
    assert time_left(run.state, T0 + 100) == 200
    # no early end in per-question mode
    run("end_exam", T0 + 100, confirmed=True)
    run("next_question", T0 + 100)
    assert run.state.screen == Screen.ANSWERING and run.state.question == 1
    cmds = run("tick", T0 + 300)
    assert run.state.question == 2 and run.state.answered == (1,) and CutSegment(2, at=T0 + 300) in cmds
    cmds = run("tick", T0 + 600)
    assert run.state.screen == Screen.UPLOADING and run.state.answered == (1, 2)
    assert StopRecording() in cmds and FinishAttempt("time_up") in cmds
    run("uploads_verified", T0 + 620)
    assert run.state.screen == Screen.DONE
    run("next_candidate", T0 + 630)
    assert run.state == FlowState()


def test_whole_session_mode_allows_next_and_confirmed_early_end():
    run = Run()
    to_info_confirm(run, T0 - 900, mode="whole_session")
    run("confirm_info", T0 - 800)
    run("tick", T0)
    assert run.state.question == 1 and time_left(run.state, T0 + 100) == 800
    assert run("next_question", T0 + 200) [0] == CutSegment(2)
    assert run.state.question == 2 and run.state.answered == (1,)
    run("next_question", T0 + 210)
    assert run.state.question == 2  # no question 3
    run("end_exam", T0 + 300)
    assert run.state.screen == Screen.ANSWERING and run.state.notice == "confirm_end"
    cmds = run("end_exam", T0 + 301, confirmed=True)
    assert run.state.screen == Screen.UPLOADING and FinishAttempt("ended_by_candidate") in cmds


def test_whole_session_without_early_finish_runs_to_the_end():
    """The sitting's ``early_finish: false`` (staff sittings page): end_exam is ignored, time runs out."""
    run = Run()
    assert run("identify", T0 - 900, ticket_no="20240001")
    payload = dict(opened("whole_session").payload, sitting=sitting("whole_session", early_finish=False))
    run.event(Event("attempt_opened", payload), T0 - 900)
    assert run.state.schedule.early_finish is False
    run.state = replace(run.state, screen=Screen.ANSWERING, question=1, recording=True)
    assert run("end_exam", T0 + 300, confirmed=True) == () and run.state.screen == Screen.ANSWERING
    cmds = run("tick", T0 + 900)
    assert run.state.screen == Screen.UPLOADING and FinishAttempt("time_up") in cmds


def test_whole_session_times_out_at_total_seconds():
    run = Run()
    to_info_confirm(run, T0 - 900, mode="whole_session")
    run("confirm_info", T0 - 800)
    run("tick", T0)
    run("tick", T0 + 899)
    assert run.state.screen == Screen.ANSWERING
    run("tick", T0 + 900)
    assert run.state.screen == Screen.UPLOADING and run.state.end_reason == "time_up"


def test_three_failed_face_tries_request_manual_review_then_approval():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240002")
    run.event(opened(), T0 - 900)
    for attempt in (1, 2):
        run("face_capture", T0 - 899)
        cmds = run("face_result", T0 - 898, matched=False, distance=0.8 + attempt / 100)
        assert ReportFaceTry(0.8 + attempt / 100, False) in cmds
        assert run.state.screen == Screen.FACE_LOGIN and run.state.face_tries == attempt
    run("face_capture", T0 - 897)
    cmds = run("face_result", T0 - 896, matched=False, distance=0.9)
    assert run.state.screen == Screen.MANUAL_REVIEW
    assert RequestReview(pytest.approx(0.81)) in cmds
    run("review_result", T0 - 800, status="pending")
    assert run.state.screen == Screen.MANUAL_REVIEW
    run("review_result", T0 - 700, status="approved")
    assert run.state.screen == Screen.READ_FLOW


def test_rejected_review_returns_to_identify():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240002")
    run.event(opened(face_tries=3, review={"status": "pending"}), T0 - 900)
    assert run.state.screen == Screen.MANUAL_REVIEW
    run("review_result", T0 - 800, status="rejected")
    assert run.state.screen == Screen.IDENTIFY and run.state.notice == "review_rejected"


def test_guidance_without_a_face_does_not_spend_a_try():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240001")
    run.event(opened(), T0 - 900)
    run("face_capture", T0 - 899)
    run("face_result", T0 - 898, matched=False, distance=None, guidance="no_face")
    assert run.state.face_tries == 0 and run.state.notice == "no_face" and not run.state.busy


def test_a_matching_face_that_fails_liveness_spends_a_try():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240001")
    run.event(opened(), T0 - 900)
    for attempt in (1, 2, 3):
        run("face_capture", T0 - 899)
        cmds = run("face_result", T0 - 898, matched=True, distance=0.3,
                   liveness={"passed": False, "reason": "rigid", "yaw_change": 0.2, "non_rigid": 0.001})
        assert ReportFaceTry(0.3, False, "rigid") in cmds
        assert run.state.face_tries == attempt
    assert run.state.screen == Screen.MANUAL_REVIEW


def test_liveness_failure_tells_the_candidate_why():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240001")
    run.event(opened(), T0 - 900)
    run("face_capture", T0 - 899)
    cmds = run("face_result", T0 - 898, matched=True, distance=0.3, liveness={"passed": False, "reason": "no_turn"})
    assert run.state.screen == Screen.FACE_LOGIN and run.state.notice == "liveness_failed"
    assert flow.Speak("liveness_failed") in cmds
    run("face_capture", T0 - 897)
    cmds = run("face_result", T0 - 896, matched=True, distance=0.31, liveness={"passed": True, "reason": "ok"})
    assert run.state.screen == Screen.READ_FLOW
    assert ReportFaceTry(0.31, True, "ok") in cmds


def test_a_fallback_code_replaces_the_review():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240002")
    run.event(opened(face_tries=3, review={"status": "pending"}), T0 - 900)
    assert run.state.screen == Screen.MANUAL_REVIEW
    assert run("fallback_code", T0 - 890, code="12") == ()
    assert run.state.notice == "code_invalid"
    assert run("fallback_code", T0 - 889, code=" 1234-5678 ") == (flow.RedeemCode("12345678"),)
    assert run("fallback_code", T0 - 889, code="12345678") == (), "a second press while the first is out is ignored"
    run("command_failed", T0 - 888, code="code_expired")
    assert run.state.screen == Screen.MANUAL_REVIEW and run.state.notice == "code_expired" and not run.state.busy
    run("fallback_code", T0 - 887, code="87654321")
    cmds = run("review_result", T0 - 886, status="approved", reason="fallback_code")
    assert run.state.screen == Screen.READ_FLOW
    assert flow.ReportEvent("face_login_reviewed", {"by": "fallback_code"}) in cmds


def test_the_centres_face_threshold_and_voice_come_with_the_attempt():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240001")
    run.event(opened(centre={"face_threshold": 0.5, "voice_prompts": False}), T0 - 900)
    assert run.state.face_threshold == 0.5 and run.state.voice is False
    restored = FlowState.from_dict(run.state.to_dict())
    assert restored == run.state
    run2 = Run()
    run2("identify", T0 - 900, ticket_no="20240001")
    run2.event(opened(), T0 - 900)
    assert run2.state.face_threshold is None and run2.state.voice is None


def test_reading_requires_scrolling_to_the_end():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240001")
    run.event(opened(face_verified="face"), T0 - 900)
    assert run.state.screen == Screen.READ_FLOW
    run("accept", T0 - 899)
    assert run.state.screen == Screen.READ_FLOW and run.state.notice == "read_to_end"


def test_waiting_room_not_open_yet_and_entry_cutoff():
    run = Run()
    to_info_confirm(run, T0 - 3600)
    run("confirm_info", T0 - 1801)
    assert run.state.screen == Screen.INFO_CONFIRM and run.state.notice == "waiting_not_open"
    # A candidate still before the waiting room when entry closes is shut out.
    run("tick", T0 + 180)
    assert run.state.screen == Screen.ENTRY_CLOSED


def test_late_entry_before_cutoff_joins_the_running_question_without_extra_time():
    run = Run()
    to_info_confirm(run, T0 - 100)
    cmds = run("confirm_info", T0 + 120)
    assert run.state.screen == Screen.ANSWERING and run.state.question == 1
    assert StartRecording(1) in cmds
    assert time_left(run.state, T0 + 120) == 180


def test_opening_after_cutoff_shows_entry_closed():
    run = Run()
    run("identify", T0 + 200, ticket_no="20240001")
    run.event(opened(), T0 + 200)
    assert run.state.screen == Screen.ENTRY_CLOSED


def test_lot_is_drawn_automatically_after_the_deadline():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240001")
    run.event(opened(face_verified="face"), T0 - 900)
    for _ in range(3):
        run("accept", T0 - 900, read_to_end=True)
    assert run.state.screen == Screen.DRAW_LOT
    assert run("tick", T0 - 61) == ()
    assert run("tick", T0 - 60) == (DrawLot(),)
    assert run("tick", T0 - 59) == ()  # already in flight
    run("lot_drawn", T0 - 58, lot=3)
    assert run.state.screen == Screen.DEVICE_CHECK


def test_device_check_refuses_dead_camera_or_silent_mic():
    run = Run()
    to_info_confirm(run, T0 - 900)
    run.state = flow.FlowState.from_dict({**run.state.to_dict(), "screen": "device_check"})
    run("devices_ok", T0 - 800, camera_ok=False, mic_ok=True)
    assert run.state.notice == "camera_dead" and run.state.screen == Screen.DEVICE_CHECK
    run("devices_ok", T0 - 800, camera_ok=True, mic_ok=False)
    assert run.state.notice == "mic_silent" and run.state.screen == Screen.DEVICE_CHECK


def answering(now_in: float) -> Run:
    run = Run()
    to_info_confirm(run, T0 - 900)
    run("confirm_info", T0 - 800)
    run("tick", T0)
    run("tick", now_in)
    return run


def test_restart_mid_question_resumes_on_server_time_with_answers_kept():
    run = answering(T0 + 350)
    assert run.state.question == 2 and run.state.answered == (1,)
    state = FlowState.from_dict(run.state.to_dict())  # what the journal gives back
    run = Run(state)
    run("restored", T0 + 400, last_alive=T0 + 360)
    assert run.state.screen == Screen.RESUME and not run.state.recording
    cmds = run("resume", T0 + 430)
    assert run.state.screen == Screen.ANSWERING and run.state.question == 2
    assert run.state.answered == (1,) and run.state.interruptions == 1
    assert StartRecording(2) in cmds
    assert time_left(run.state, T0 + 430) == 170  # the clock kept running


def test_second_interruption_ends_the_attempt_early():
    run = answering(T0 + 100)
    run("restored", T0 + 110, last_alive=T0 + 100)
    run("resume", T0 + 120)
    run("restored", T0 + 200, last_alive=T0 + 190)
    cmds = run("resume", T0 + 210)
    assert run.state.screen == Screen.UPLOADING and run.state.end_reason == "too_many_interruptions"
    assert FinishAttempt("too_many_interruptions") in cmds


def test_gap_longer_than_policy_ends_the_attempt():
    run = answering(T0 + 100)
    run("restored", T0 + 300, last_alive=T0 + 100)
    run("resume", T0 + 300)
    assert run.state.end_reason == "interruption_too_long"


def test_resume_screen_times_out_by_itself():
    run = answering(T0 + 100)
    run("restored", T0 + 110, last_alive=T0 + 100)
    run("tick", T0 + 219)
    assert run.state.screen == Screen.RESUME
    run("tick", T0 + 221)
    assert run.state.screen == Screen.UPLOADING and run.state.end_reason == "interruption_too_long"


def test_restart_before_waiting_room_just_restores_the_screen():
    run = Run()
    to_info_confirm(run, T0 - 900)
    run("restored", T0 - 800, last_alive=T0 - 850)
    assert run.state.screen == Screen.INFO_CONFIRM


def test_events_that_do_not_belong_to_the_screen_are_ignored():
    state = FlowState()
    for name in ("accept", "draw_lot", "resume", "end_exam", "face_capture", "confirm_info"):
        assert transition(state, Event(name, {}), T0) == (state, ())


def test_bad_ticket_is_refused_without_a_request():
    run = Run()
    assert run("identify", T0, ticket_no="../etc") == ()
    assert run.state.notice == "ticket_invalid"


def test_state_round_trips_through_dict():
    run = answering(T0 + 350)
    assert FlowState.from_dict(run.state.to_dict()) == run.state


def test_disk_guard_refuses_to_start_recording_without_space():
    run = Run()
    to_info_confirm(run, T0 - 900)
    needed = flow.recording_bytes_needed(run.state.schedule, 2500, T0 - 800)
    assert needed == int(2500 * 1000 / 8 * (800 + 600) * 2)  # waiting room + exam, twice over
    cmds = run("confirm_info", T0 - 800, disk_free=needed - 1, disk_needed=needed)
    assert run.state.screen == Screen.INFO_CONFIRM and run.state.notice == "disk_low"
    assert cmds[0].kind == "disk_low" and not any(isinstance(c, StartRecording) for c in cmds)
    run("confirm_info", T0 - 799, disk_free=needed, disk_needed=needed)
    assert run.state.screen == Screen.WAITING


def test_restart_during_upload_carries_on_uploading():
    run = answering(T0 + 599)
    run("tick", T0 + 600)
    assert run.state.screen == Screen.UPLOADING
    cmds = run("restored", T0 + 610, last_alive=T0 + 605)
    assert run.state.screen == Screen.UPLOADING and cmds == (FinishAttempt("time_up"),)


def test_one_minute_warning_once_per_countdown():
    from station.flow import Speak

    run = answering(T0 + 100)
    assert run("tick", T0 + 239) == ()
    assert run("tick", T0 + 240) == (Speak("one_minute_left"),)
    assert run("tick", T0 + 241) == ()
    run("tick", T0 + 300)  # question 2
    assert Speak("one_minute_left") not in run("tick", T0 + 539)
    assert run("tick", T0 + 540) == (Speak("one_minute_left"),)
