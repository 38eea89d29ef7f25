"""Moving a candidate to a spare station mid-exam, both stations' flows on a controllable clock."""
from __future__ import annotations

from dataclasses import replace

from station import flow
from station.flow import FlowState, ReportEvent, Screen, StartRecording, StopRecording, time_left
from tests.station.test_flow import T0, Run, answering, opened


def resume(**over) -> dict:
    data = {"moved": True, "moves": 1, "moved_at": T0 + 340, "entered": True, "question": 2,
            "question_started_at": T0 + 300, "answered": [1], "interruptions": 1, "seq_from": 10_000}
    data.update(over)
    return data


def kinds(commands) -> list[str]:
    return [c.kind for c in commands if isinstance(c, ReportEvent)]


def test_old_station_stops_hands_over_and_returns_to_identify():
    run = answering(T0 + 350)
    cmds = run("moved", T0 + 360, to="B07")
    assert run.state.screen == Screen.MOVED and run.state.moved_to == "B07" and not run.state.recording
    assert cmds[0] == StopRecording() and flow.HandOver("a1") in cmds and "moved_away" in kinds(cmds)
    assert run("tick", T0 + 900) == () and run.state.screen == Screen.MOVED, "the exam's end does not matter here"
    assert run("moved", T0 + 361, to="B07") == (), "a second notice (push and poll) changes nothing"
    # The agent restarts while uploading: the hand-over carries on.
    restarted = Run(FlowState.from_dict(run.state.to_dict()))
    assert restarted("restored", T0 + 400, last_alive=T0 + 390) == (flow.HandOver("a1"),)
    restarted("handed_over", T0 + 365)
    assert restarted.state.screen == Screen.MOVED, "the notice stays up long enough to read"
    restarted("tick", T0 + 369)
    assert restarted.state.screen == Screen.MOVED
    restarted("tick", T0 + 370)
    assert restarted.state == FlowState()


def test_move_is_ignored_once_the_attempt_is_over_or_before_one():
    assert Run()("moved", T0, to="B07") == ()
    run = answering(T0 + 700)  # time is up: uploading
    assert run.state.screen == Screen.UPLOADING
    assert run("moved", T0 + 701, to="B07") == () and run.state.screen == Screen.UPLOADING


def test_new_station_asks_for_the_face_again_then_continues_the_same_question_on_server_time():
    run = Run()
    run("identify", T0 + 345, ticket_no="20240001")
    run.event(opened(face_verified="face", lot=7, face_tries=2, resume=resume()), T0 + 350)
    assert run.state.screen == Screen.FACE_LOGIN and run.state.face_tries == 0, "face login is never skipped"
    assert run.state.seq_from == 10_000 and run.state.lot == 7
    run("tick", T0 + 355)
    assert run.state.screen == Screen.FACE_LOGIN, "entry cutoff (T0+180) does not shut out a moved candidate"
    run("face_capture", T0 + 360)
    run("face_result", T0 + 362, matched=True, distance=0.3)
    assert run.state.screen == Screen.DEVICE_CHECK, "the spare station's camera and microphone are checked"
    run("devices_ok", T0 + 363, camera_ok=True, mic_ok=False)
    assert run.state.screen == Screen.DEVICE_CHECK and run.state.notice == "mic_silent"
    run("devices_ok", T0 + 364, camera_ok=True, mic_ok=True)
    assert run.state.screen == Screen.RESUME, "no second reading, pledge or confirmation"
    run_q1 = Run(replace(run.state, question=1))  # moved during question 1, back during question 2
    assert time_left(run_q1.state, T0 + 362) == 238, "the countdown shows the question server time says"
    assert run("tick", T0 + 590) == (), "the walk over is no second interruption: no gap limit"
    cmds = run("resume", T0 + 400)
    assert run.state.screen == Screen.ANSWERING and run.state.question == 2 and run.state.answered == (1,)
    assert run.state.interruptions == 1 and "interruption" not in kinds(cmds) and "resumed" in kinds(cmds)
    assert StartRecording(2) in cmds and ReportEvent("question_started", {"question": 2}) in cmds
    assert time_left(run.state, T0 + 400) == 200  # question 2 ends at T0+600: the clock kept running
    run("tick", T0 + 600)
    assert run.state.screen == Screen.UPLOADING and run.state.answered == (1, 2)


def test_whole_session_move_keeps_the_candidates_question():
    run = Run()
    run("identify", T0 + 345, ticket_no="20240001")
    run.event(opened("whole_session", face_verified="face", resume=resume(question=2, answered=[1])), T0 + 350)
    run("face_capture", T0 + 360)
    run("face_result", T0 + 362, matched=True, distance=0.3)
    run("devices_ok", T0 + 365, camera_ok=True, mic_ok=True)
    run("resume", T0 + 380)
    assert run.state.question == 2 and run.state.answered == (1,)
    assert time_left(run.state, T0 + 380) == 900 - 380


def test_failed_face_then_review_also_leads_back_to_the_exam():
    run = Run()
    run("identify", T0 + 345, ticket_no="20240001")
    run.event(opened(face_verified="face", resume=resume()), T0 + 350)
    for i in range(3):
        run("face_capture", T0 + 351 + i)
        run("face_result", T0 + 351 + i, matched=False, distance=0.9)
    assert run.state.screen == Screen.MANUAL_REVIEW
    run("review_result", T0 + 370, status="approved")
    assert run.state.screen == Screen.DEVICE_CHECK and run.state.resume_cause == "moved"
    run("devices_ok", T0 + 372, camera_ok=True, mic_ok=True)
    assert run.state.screen == Screen.RESUME


def test_moved_candidate_who_arrives_after_the_end_finishes_without_recording():
    run = Run()
    run("identify", T0 + 345, ticket_no="20240001")
    run.event(opened(face_verified="face", resume=resume()), T0 + 590)
    run("face_capture", T0 + 595)
    run("face_result", T0 + 596, matched=True, distance=0.3)
    assert run("tick", T0 + 598) == () and run.state.screen == Screen.DEVICE_CHECK
    cmds = run("tick", T0 + 600)  # still at the device check when the exam ends
    assert run.state.screen == Screen.UPLOADING and run.state.end_reason == "time_up"
    assert flow.FinishAttempt("time_up") in cmds and StopRecording() not in cmds


def test_not_yet_entered_candidate_moved_before_the_start_takes_the_usual_path():
    run = Run()
    run("identify", T0 - 900, ticket_no="20240001")
    run.event(opened(resume=resume(entered=False, question=None, answered=[], interruptions=0)), T0 - 900)
    assert run.state.screen == Screen.FACE_LOGIN and run.state.resume_cause is None
    assert run.state.seq_from == 10_000


def test_each_question_start_is_reported_for_the_edge():
    run = answering(T0 + 350)
    started = [c.payload["question"] for c in run.commands
               if isinstance(c, ReportEvent) and c.kind == "question_started"]
    assert started == [1, 2]
