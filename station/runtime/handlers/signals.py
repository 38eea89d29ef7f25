"""Handlers of the flow's small commands: a voice cue, an event for staff, a new look for the devices."""
from __future__ import annotations

import time

from station import flow
from station.runtime.context import Context


def speak(ctx: Context, cmd: flow.Speak) -> None:
    """The kiosk plays the cue (when voice is on) from the view's ``cue``."""
    ctx.shown.last_cue = (cmd.cue, time.time())


def report_event(ctx: Context, cmd: flow.ReportEvent) -> None:
    ctx.report(cmd.kind, dict(cmd.payload))


def refresh_devices(ctx: Context, cmd: flow.RefreshDevices) -> None:
    ctx.capture.refresh()


HANDLERS = {
    flow.Speak: speak,
    flow.ReportEvent: report_event,
    flow.RefreshDevices: refresh_devices,
}
