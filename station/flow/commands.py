"""What the flow asks the runner to do: one frozen dataclass per command. Their results come back
as events. ``COMMAND_TYPES`` lists them all (the runtime's handler table is checked against it)."""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from station.flow.states import FlowState


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
    # The boundary's scheduled instant (server time): frames captured before it end the old segment,
    # and the new one starts at it. None: at the next frame (a candidate's 下一题).
    at: float | None = None


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

COMMAND_TYPES: tuple[type, ...] = typing.get_args(Command)
