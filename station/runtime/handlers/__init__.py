"""The flow's commands, each to exactly one handler: one explicit ``{command type: handler}`` table
(``HANDLERS``), merged from the handler modules by concern and checked at import, so a command
without a handler, or with two, fails the import and not an exam.

- ``login``: the ticket, the face match and liveness, face tries, the review, fallback codes.
- ``paper``: the lot and the sealed paper.
- ``recording``: start, cut and stop the recorders.
- ``finish``: the end of the attempt and the hand-over after a move.
- ``signals``: voice cues, events for staff, the devices looked for again.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from station.flow import COMMAND_TYPES
from station.runtime.handlers import finish, login, paper, recording, signals

Handler = Callable[[Any, Any], None]


class HandlerTableError(AssertionError):
    """A command type of the flow has no handler, or more than one, or a handler has no command."""


def merge(tables: Iterable[Mapping[type, Handler]], commands: Iterable[type] = COMMAND_TYPES) -> dict[type, Handler]:
    """One table from the modules' tables; HandlerTableError unless every command has exactly one."""
    merged: dict[type, Handler] = {}
    twice = []
    for table in tables:
        for command, handler in table.items():
            if command in merged:
                twice.append(command.__name__)
            merged[command] = handler
    expected = set(commands)
    missing = sorted(c.__name__ for c in expected - set(merged))
    unknown = sorted(c.__name__ for c in set(merged) - expected)
    if twice or missing or unknown:
        raise HandlerTableError(f"command handlers: twice {twice}, missing {missing}, not a command {unknown}")
    return merged


MODULES = (login, paper, recording, finish, signals)
HANDLERS: dict[type, Handler] = merge(m.HANDLERS for m in MODULES)
