"""The commands the edge sends down to one station (its ``cmd`` topic, QoS 1), each with its typed payload.

A command travels as a :class:`examkiosk_wire.topics.StationCommand` (``kind``, ``payload``,
``attempt``, ``ts``). :class:`CommandKind` names every kind there is; :data:`PAYLOADS` gives each
kind its payload model, so the edge builds a payload with the model and the station reads it back
with :func:`read_payload`. Keys a newer edge adds are ignored; a known key of the wrong type makes
the command unusable (:class:`CommandError`), and the station logs and drops it.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from examkiosk_wire.topics import StationCommand


class CommandKind(StrEnum):
    REVOKED = "revoked"  # the station's token and broker login are being removed
    PAPER_KEY = "paper_key"  # the sitting has started: the sealed paper's key
    MESSAGE = "message"  # a staff reply or broadcast for the candidate's help panel
    MOVED = "moved"  # the seat map moved the candidate to another station
    REVIEW_RESULT = "review_result"  # a proctor decided a face-login review


class CommandError(ValueError):
    """A command the station cannot use: unknown kind or a payload of the wrong shape."""


class _Payload(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", populate_by_name=True)

    def to_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class Revoked(_Payload):
    station: str


class PaperKey(_Payload):
    sitting: str
    key: str  # base64 of the AES-256-GCM key (examkiosk_wire.sealed)


class MessagePush(_Payload):
    """One message as the station sees it (no staff names)."""

    id: int
    kind: Literal["help", "reply", "broadcast"]
    text: str = ""
    reason: str = ""
    thread: int | None = None
    attempt: str | None = None
    sitting: str | None = None
    sender: str = Field(default="staff", alias="from")
    at: float
    acknowledged: bool = False


class Moved(_Payload):
    to: str  # the seat the candidate goes to
    station: str | None = None


class ReviewResult(_Payload):
    status: Literal["approved", "rejected", "pending"]
    reason: str = ""


PAYLOADS: dict[CommandKind, type[_Payload]] = {
    CommandKind.REVOKED: Revoked,
    CommandKind.PAPER_KEY: PaperKey,
    CommandKind.MESSAGE: MessagePush,
    CommandKind.MOVED: Moved,
    CommandKind.REVIEW_RESULT: ReviewResult,
}
assert set(PAYLOADS) == set(CommandKind), "every command kind needs its payload model"

# Commands about one attempt: a station drops them unless that attempt is its current one.
ABOUT_AN_ATTEMPT = frozenset({CommandKind.MOVED, CommandKind.REVIEW_RESULT})


def command(payload: _Payload, *, attempt: str | None = None, ts: float = 0.0) -> StationCommand:
    """The StationCommand that carries ``payload`` (its kind follows from the payload's model)."""
    kind = next(k for k, model in PAYLOADS.items() if type(payload) is model)
    return StationCommand(kind=str(kind), payload=payload.to_payload(), attempt=attempt, ts=ts)


def read_payload(cmd: StationCommand) -> tuple[CommandKind, _Payload]:
    """The kind and typed payload of a received command; CommandError if it cannot be used."""
    try:
        kind = CommandKind(cmd.kind)
    except ValueError:
        raise CommandError(f"unknown command {cmd.kind!r}") from None
    try:
        return kind, PAYLOADS[kind].model_validate(cmd.payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise CommandError(f"{kind} command: {where}: {first['msg']}") from None
