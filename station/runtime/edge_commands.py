"""The commands the edge pushes over MQTT (``examkiosk_wire.commands``), each through its handler in
one explicit ``{CommandKind: handler}`` table, checked at import to handle every kind there is."""
from __future__ import annotations

import logging
from typing import Any, Callable

from examkiosk_wire.commands import (
    ABOUT_AN_ATTEMPT,
    CommandError,
    CommandKind,
    MessagePush,
    Moved,
    PaperKey,
    ReviewResult,
    Revoked,
    read_payload,
)
from examkiosk_wire.topics import StationCommand
from station.runtime.context import Context

logger = logging.getLogger(__name__)


def _revoked(ctx: Context, payload: Revoked) -> None:
    # The edge removes our broker login and token right after.
    logger.error("the edge revoked this station: its token and MQTT login no longer work; "
                 "enrol it again with `examkiosk-provision enrol --code ... --force`")


def _paper_key(ctx: Context, payload: PaperKey) -> None:
    """The start: the sealed paper's key (kept in memory only)."""
    ctx.papers.key_pushed(payload.to_payload())


def _message(ctx: Context, payload: MessagePush) -> None:
    """A reply or a broadcast: for the station, whatever the attempt."""
    ctx.messages.pushed(payload.to_payload())


def _moved(ctx: Context, payload: Moved) -> None:
    """The seat map moved the candidate to another station."""
    ctx.post("moved", {"to": payload.to})


def _review_result(ctx: Context, payload: ReviewResult) -> None:
    if payload.status in ("approved", "rejected"):
        ctx.post("review_result", {"status": payload.status, "reason": payload.reason})
    else:
        logger.info("the review is still %s", payload.status)


HANDLERS: dict[CommandKind, Callable[[Context, Any], None]] = {
    CommandKind.REVOKED: _revoked,
    CommandKind.PAPER_KEY: _paper_key,
    CommandKind.MESSAGE: _message,
    CommandKind.MOVED: _moved,
    CommandKind.REVIEW_RESULT: _review_result,
}
assert set(HANDLERS) == set(CommandKind), "every command kind of the edge needs its handler"


def handle_command(ctx: Context, command: StationCommand) -> None:
    """A command from the edge over MQTT: typed, checked against the current attempt, handled."""
    try:
        kind, payload = read_payload(command)
    except CommandError as exc:
        logger.warning("dropping a command from the edge: %s", exc)
        return
    if kind in ABOUT_AN_ATTEMPT and (command.attempt is None or command.attempt != ctx.state.attempt_id):
        logger.info("ignoring %s about attempt %s (current: %s)", kind, command.attempt, ctx.state.attempt_id)
        return
    HANDLERS[kind](ctx, payload)
