"""Handlers of the recording commands: start (or continue) each camera's chain, cut at a question
boundary, stop."""
from __future__ import annotations

from station import flow
from station.recording.base import CutAt
from station.runtime.context import Context


def start_recording(ctx: Context, cmd: flow.StartRecording) -> None:
    """One segment chain per camera; after a restart each chain continues from the journal."""
    attempt = ctx.state.attempt_id
    assert attempt is not None
    ctx.recording.record(attempt, cmd.question, ctx.capture.cameras())


def cut_segment(ctx: Context, cmd: flow.CutSegment) -> None:
    """The boundary at its scheduled instant (``cmd.at``, server time), placed by capture time: the
    exam clock says which monotonic reading that instant is."""
    at = None if cmd.at is None else CutAt(mono=ctx.clock.monotonic_at(cmd.at), server=cmd.at)
    ctx.recording.cut(cmd.question, at)


def stop_recording(ctx: Context, cmd: flow.StopRecording) -> None:
    ctx.recording.stop_all()


HANDLERS = {
    flow.StartRecording: start_recording,
    flow.CutSegment: cut_segment,
    flow.StopRecording: stop_recording,
}
