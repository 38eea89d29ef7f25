"""The flow's state: the screens, a sitting's schedule, the candidate and the ``FlowState`` the
journal writes through; ``time_left`` and the disk the recording needs, derived from them."""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
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
    kind: str = "formal"  # the sitting's kind: "formal" or "mock" (only a mock is watched back)

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
            kind=str(data.get("kind", "formal")),
        )

    @property
    def mock(self) -> bool:
        return self.kind == "mock"

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
    # The first segment sequence number this station may use for the attempt (examkiosk_wire.chain.move_seq_base).
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


# Disk kept free for a recording: its bytes at the configured bitrate, twice over (the segments
# being written, plus the ones still waiting for the upload).
DISK_MARGIN = 2


def disk_bytes_needed(bitrate_kbps: int, seconds: float) -> int:
    """Disk to keep free to record ``seconds`` at ``bitrate_kbps``: the one formula the flow and the
    station's disk watch both use."""
    return int(bitrate_kbps * 1000 / 8 * max(seconds, 0) * DISK_MARGIN)


def recording_bytes_needed(schedule: Schedule, bitrate_kbps: int, now: float) -> int:
    """Disk to keep free before recording: bitrate × the longest the attempt can record × 2."""
    return disk_bytes_needed(bitrate_kbps, schedule.ends_at - min(now, schedule.starts_at))
