"""The runtime's handler tables: every command of the flow has exactly one handler, every command kind
of the edge has one, and the edge's commands reach the right place (or are dropped) by their kind."""
from __future__ import annotations

import typing
from collections import Counter
from types import SimpleNamespace

import pytest

from examkiosk_wire.commands import CommandKind, MessagePush, Moved, PaperKey, ReviewResult, command
from examkiosk_wire.topics import StationCommand
from station import flow
from station.flow import COMMAND_TYPES, Event, FlowState, Screen
from station.runtime import edge_commands
from station.runtime.handlers import HANDLERS, MODULES, HandlerTableError, merge


def test_every_command_type_has_exactly_one_handler():
    assert set(COMMAND_TYPES) == set(typing_args_of_command())
    assert set(HANDLERS) == set(COMMAND_TYPES)
    counts = Counter(command for module in MODULES for command in module.HANDLERS)
    assert {c.__name__: n for c, n in counts.items() if n != 1} == {}
    assert all(callable(h) for h in HANDLERS.values())


def typing_args_of_command() -> tuple[type, ...]:
    return typing.get_args(flow.Command)


def test_the_table_check_refuses_a_missing_a_doubled_and_an_unknown_handler():
    tables = [m.HANDLERS for m in MODULES]
    with pytest.raises(HandlerTableError, match="missing .*'Speak'"):
        merge([{k: v for t in tables for k, v in t.items() if k is not flow.Speak}])
    with pytest.raises(HandlerTableError, match="twice .*'Speak'"):
        merge(tables + [{flow.Speak: lambda ctx, cmd: None}])
    with pytest.raises(HandlerTableError, match="not a command .*'Event'"):
        merge(tables + [{Event: lambda ctx, cmd: None}])


def test_every_command_kind_of_the_edge_has_its_handler():
    assert set(edge_commands.HANDLERS) == set(CommandKind)


class FakeContext:
    def __init__(self, attempt: str | None = "a-1"):
        self.state = FlowState(screen=Screen.ANSWERING, attempt_id=attempt)
        self.posted: list[Event] = []
        self.keys: list[dict] = []
        self.pushed: list[dict] = []
        self.papers = SimpleNamespace(key_pushed=self.keys.append)
        self.messages = SimpleNamespace(pushed=self.pushed.append)

    def post(self, name: str, payload: dict | None = None) -> None:
        self.posted.append(Event(name, payload or {}))


def test_the_edges_commands_reach_their_handlers():
    ctx = FakeContext()
    edge_commands.handle_command(ctx, command(PaperKey(sitting="s-1", key="a2V5")))
    edge_commands.handle_command(ctx, command(MessagePush(id=3, kind="reply", text="好", at=1.0, attempt="a-1")))
    edge_commands.handle_command(ctx, command(Moved(to="B-02"), attempt="a-1"))
    edge_commands.handle_command(ctx, command(ReviewResult(status="approved"), attempt="a-1"))
    edge_commands.handle_command(ctx, command(ReviewResult(status="pending"), attempt="a-1"))
    assert ctx.keys == [{"sitting": "s-1", "key": "a2V5"}]
    assert [(m["id"], m["kind"], m["text"]) for m in ctx.pushed] == [(3, "reply", "好")]
    assert ctx.posted == [Event("moved", {"to": "B-02"}), Event("review_result", {"status": "approved", "reason": ""})]


@pytest.mark.parametrize("cmd", [
    command(Moved(to="B-02"), attempt="a-other"),  # about another attempt
    command(ReviewResult(status="rejected")),  # about no attempt at all
    StationCommand(kind="reboot", payload={}, attempt="a-1"),  # a kind this station does not know
    StationCommand(kind="moved", payload={"to": 7}, attempt="a-1"),  # a payload of the wrong shape
    StationCommand(kind="paper_key", payload={"sitting": "s-1"}),
])
def test_commands_about_another_attempt_or_malformed_are_dropped(cmd):
    ctx = FakeContext()
    edge_commands.handle_command(ctx, cmd)
    assert (ctx.posted, ctx.keys, ctx.pushed) == ([], [], [])
