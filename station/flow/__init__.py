"""The candidate flow as one explicit state machine.

``transition(state, event, now) -> (state, commands)`` is pure: no I/O, no clock. ``now`` is
server time (epoch seconds, the station's clock offset applied) passed in by the runner, so a test
drives the whole exam on a controllable clock. Commands are what the runner must do through its
adapters (network, camera, recorder, speaker); their results come back as events.

Screens follow the seeds' order: identify → face login (3 tries, then manual review) → read the
flow, pledge and notice → draw a lot → device check → info confirmation → waiting room (recording
starts) → answering → upload → done.

``states`` holds the state and the schedule, ``events`` the event, ``commands`` the commands,
``entry`` and ``exam`` the transitions before and during the exam, ``transitions`` the entry point.
"""
from station.flow.commands import (
    COMMAND_TYPES,
    Command,
    CutSegment,
    DrawLot,
    FetchPaper,
    FinishAttempt,
    HandOver,
    MatchFace,
    OpenAttempt,
    RedeemCode,
    RefreshDevices,
    ReportEvent,
    ReportFaceTry,
    RequestReview,
    Result,
    Speak,
    StartRecording,
    StopRecording,
)
from station.flow.events import Event
from station.flow.states import (
    BEFORE_ENTRY,
    DISK_MARGIN,
    MAX_FACE_TRIES,
    MOVED_NOTICE_SECONDS,
    READING_ORDER,
    RECORDING_SCREENS,
    Candidate,
    FlowState,
    Schedule,
    Screen,
    TimingMode,
    disk_bytes_needed,
    recording_bytes_needed,
    time_left,
)
from station.flow.transitions import transition

__all__ = [
    "BEFORE_ENTRY", "COMMAND_TYPES", "DISK_MARGIN", "MAX_FACE_TRIES", "MOVED_NOTICE_SECONDS", "READING_ORDER",
    "RECORDING_SCREENS", "Candidate", "Command", "CutSegment", "DrawLot", "Event", "FetchPaper", "FinishAttempt",
    "FlowState", "HandOver", "MatchFace", "OpenAttempt", "RedeemCode", "RefreshDevices", "ReportEvent",
    "ReportFaceTry", "RequestReview", "Result", "Schedule", "Screen", "Speak", "StartRecording", "StopRecording",
    "TimingMode", "disk_bytes_needed", "recording_bytes_needed", "time_left", "transition",
]
