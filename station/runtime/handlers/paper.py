"""Handlers of the lot and the paper: draw the lot, open the sealed paper at the start (the key
pushed over MQTT, else asked from the API), and fetch its ciphertext ahead of it."""
from __future__ import annotations

import logging

from station import flow
from station.flow import Event
from station.link import EdgeRejected, EdgeUnavailable
from station.paper import PaperDamaged
from station.runtime.context import Context

logger = logging.getLogger(__name__)

# At the start, how long a station with a live broker waits for the pushed paper key before asking the API.
PUSH_GRACE_SECONDS = 2.0
KEY_TRIES = 240
KEY_PAUSE_SECONDS = 0.5


def draw_lot(ctx: Context, cmd: flow.DrawLot) -> None:
    attempt = ctx.state.attempt_id

    def work() -> Event:
        reply = ctx.need_client().draw_lot(attempt)
        return Event("lot_drawn", {"lot": reply.lot, "auto": reply.auto})

    ctx.background(work)


def prefetch_paper(ctx: Context, sitting: str) -> None:
    """Download the sealed paper while the candidate gets ready (it is opened at the start)."""
    try:
        ctx.papers.prefetch(sitting)
    except (EdgeUnavailable, EdgeRejected, PaperDamaged) as exc:
        logger.warning("could not fetch the sealed paper of %s ahead of the start: %s", sitting, exc)


def fetch_paper(ctx: Context, cmd: flow.FetchPaper) -> None:
    """Open the sealed paper at the start: the key pushed over MQTT, else asked from the API."""
    schedule = ctx.state.schedule
    if schedule is None:
        return
    sitting, attempt = schedule.sitting, ctx.state.attempt_id
    ctx.shown.paper = None  # never show the previous attempt's paper while this one opens

    def work() -> Event | None:
        for _ in range(KEY_TRIES):
            try:
                # With the broker up the push usually comes first; ask the API when it has not.
                grace = PUSH_GRACE_SECONDS if ctx.edge.mqtt_up else 0.0
                if not ctx.papers.has_key(sitting) and ctx.clock.now() >= schedule.starts_at + grace:
                    ctx.papers.fetch_key(sitting)
                if ctx.papers.has_key(sitting):
                    ctx.shown.paper = ctx.papers.open(sitting)
                    if ctx.clock.now() >= schedule.starts_at and attempt is not None:
                        ctx.papers.keep(sitting, attempt)  # no secret now: a restart without the edge opens it
                    return Event("paper_loaded", {})
            except PaperDamaged as exc:
                logger.error("the paper of %s cannot be opened: %s", sitting, exc)
                ctx.report("paper_damaged", {"sitting": sitting, "error": str(exc)})
                return Event("command_failed", {"code": "paper_damaged"})
            except EdgeRejected as exc:
                if exc.code not in ("paper_sealed", "paper_missing"):
                    raise
            except EdgeUnavailable:
                pass
            if ctx.stop.wait(KEY_PAUSE_SECONDS):
                return None
        return Event("command_failed", {"code": "paper_unavailable"})

    ctx.background(work)


HANDLERS = {
    flow.DrawLot: draw_lot,
    flow.FetchPaper: fetch_paper,
}
