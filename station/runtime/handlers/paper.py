"""Handlers of the lot and the paper: draw the lot, fetch the sealed paper's ciphertext ahead of the
start and open it in memory as soon as its key comes (the edge sends it ``[papers] key_lead_seconds``
before the start: pushed over MQTT, else asked from the API), and show it at the start.

At the start (``FetchPaper``, at the instant of the station's timer) a paper already open in memory
is shown at once, on the loop; otherwise it is opened in the background as soon as its key comes.
Its key is sealed into the journal only then (``PaperKeeper.keep``), never before the start.
"""
from __future__ import annotations

import logging
import threading

from station import flow
from station.flow import Event
from station.link import EdgeRejected, EdgeUnavailable
from station.paper import PaperDamaged
from station.runtime.context import Context

logger = logging.getLogger(__name__)

KEY_TRIES = 240
KEY_PAUSE_SECONDS = 0.5
# Before the start, how long ahead of it the station asks the API for the key when no push came (the
# edge's lead is 5 s by default; asked too early, the key route answers ``paper_sealed`` and the
# station asks again every KEY_PAUSE_SECONDS).
KEY_ASK_AHEAD_SECONDS = 3.0
AHEAD_POLL_SECONDS = 0.1  # how often the wait ahead of the start looks for the pushed key
ATTEMPT_WAIT_SECONDS = 60.0  # how long it waits for the attempt it was started for to be the flow's


def draw_lot(ctx: Context, cmd: flow.DrawLot) -> None:
    attempt = ctx.state.attempt_id

    def work() -> Event:
        reply = ctx.need_client().draw_lot(attempt)
        return Event("lot_drawn", {"lot": reply.lot, "auto": reply.auto})

    ctx.background(work)


def prefetch_paper(ctx: Context, sitting: str) -> None:
    """Download the sealed paper while the candidate gets ready, then open it in memory once its key
    comes ahead of the start (:func:`open_ahead`, on a thread of its own: it waits for the start)."""
    try:
        ctx.papers.prefetch(sitting)
    except (EdgeUnavailable, EdgeRejected, PaperDamaged) as exc:
        logger.warning("could not fetch the sealed paper of %s ahead of the start: %s", sitting, exc)
    threading.Thread(target=open_ahead, args=(ctx, sitting), name="paper-ahead", daemon=True).start()


def open_ahead(ctx: Context, sitting: str) -> bool:
    """Until the start of ``sitting``: open its paper in memory as soon as the key is here (pushed,
    or asked from the API from KEY_ASK_AHEAD_SECONDS before the start); True once open. It ends at
    the start, when the attempt is no longer of this sitting (or never becomes one within
    ATTEMPT_WAIT_SECONDS), or at the agent's stop."""
    seen, waited = False, 0.0
    while not ctx.stop.is_set():
        schedule = ctx.state.schedule
        if ctx.papers.opened(sitting) is not None:
            return True
        if schedule is None or schedule.sitting != sitting:
            if seen or waited > ATTEMPT_WAIT_SECONDS:
                return False  # the attempt ended, or never opened here
            waited += AHEAD_POLL_SECONDS
            ctx.stop.wait(AHEAD_POLL_SECONDS)
            continue
        seen = True
        if ctx.clock.now() >= schedule.starts_at:
            return False  # the start's own FetchPaper takes over
        try:
            if not ctx.papers.has_key(sitting) and ctx.clock.now() >= schedule.starts_at - KEY_ASK_AHEAD_SECONDS:
                ctx.papers.fetch_key(sitting)
            if ctx.papers.has_key(sitting):
                ctx.papers.open(sitting)
                logger.info("paper of %s open in memory ahead of the start", sitting)
                return True
        except PaperDamaged as exc:
            logger.error("the paper of %s cannot be opened ahead of the start: %s", sitting, exc)
            return False  # the start's FetchPaper reports it
        except (EdgeRejected, EdgeUnavailable) as exc:
            logger.debug("paper key of %s not here yet: %s", sitting, exc)
        ctx.stop.wait(AHEAD_POLL_SECONDS)
    return False


def fetch_paper(ctx: Context, cmd: flow.FetchPaper) -> None:
    """Show the sealed paper at the start: at once when it was opened ahead, else in the background
    as soon as its key comes (pushed over MQTT, else asked from the API)."""
    schedule = ctx.state.schedule
    if schedule is None:
        return
    sitting, attempt = schedule.sitting, ctx.state.attempt_id
    ctx.shown.paper = ctx.papers.opened(sitting)  # opened ahead: shown at this very instant
    if ctx.shown.paper is not None:
        if attempt is not None:
            ctx.papers.keep(sitting, attempt)  # the start has passed (this command comes at or after it)
        ctx.post("paper_loaded")
        return

    def work() -> Event | None:
        for _ in range(KEY_TRIES):
            try:
                # The key was due before the start: a station that has none missed the push.
                if not ctx.papers.has_key(sitting):
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
