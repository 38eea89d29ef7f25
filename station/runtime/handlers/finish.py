"""Handlers of the end of an attempt here: finish it (wait until the edge has verified every
segment), or hand it over after a move (declare this station's segments and free the station once
the edge has verified them). The paper's key and the paper leave memory when the answering ends."""
from __future__ import annotations

import logging

from station import flow
from station.flow import Event
from station.link import EdgeRejected, EdgeUnavailable
from station.runtime.context import Context

logger = logging.getLogger(__name__)

WAIT_SECONDS = 1.0


def forget_paper(ctx: Context) -> None:
    """The candidate can no longer see the paper: its key and its text leave memory."""
    ctx.papers.forget()
    ctx.shown.paper = None


def _journaled(ctx: Context, attempt: str) -> bool:
    """Every sealed segment of ``attempt`` is in the journal (a waiting one is retried first)."""
    ctx.recording.retry()
    waiting = ctx.recording.waiting(attempt)
    if waiting:
        logger.warning("attempt %s: %d sealed segments wait to be journaled (%s)", attempt, len(waiting),
                       ", ".join(waiting[:3]))
    return not waiting


def finish_attempt(ctx: Context, cmd: flow.FinishAttempt) -> None:
    attempt = ctx.state.attempt_id
    forget_paper(ctx)

    def work() -> Event | None:
        # Every segment is journaled before upload; wait for the uploader to catch up.
        while not ctx.stop.is_set():
            try:
                if _journaled(ctx, attempt):
                    names = [s.name for s in ctx.journal.segments_of(attempt)]
                    if not any(s.attempt_id == attempt for s in ctx.journal.pending()):
                        status = ctx.need_client().finish(attempt, names, reason=cmd.reason)
                        ctx.shown.upload_check = (attempt, status.verified, status.expected)  # the watch-back shows it
                        if status.complete:
                            return Event("uploads_verified", {})
                    ctx.uploader.wake()
            except (EdgeUnavailable, EdgeRejected) as exc:
                logger.info("waiting for the edge to confirm the upload: %s", exc)
            ctx.stop.wait(WAIT_SECONDS)
        return None

    ctx.background(work)


def hand_over(ctx: Context, cmd: flow.HandOver) -> None:
    """The candidate moved on: declare this station's segments (the attempt goes on elsewhere),
    upload them all, and free the station once the edge has verified every one."""
    attempt = cmd.attempt_id
    forget_paper(ctx)

    def work() -> Event | None:
        while not ctx.stop.is_set():
            try:
                if _journaled(ctx, attempt):
                    names = [s.name for s in ctx.journal.segments_of(attempt)]
                    status = ctx.need_client().finish(attempt, names, reason="moved")
                    uploaded = not any(s.attempt_id == attempt for s in ctx.journal.pending())
                    if uploaded and not set(names) & set(status.missing):
                        logger.info("attempt %s handed over: %d segments verified", attempt, len(names))
                        return Event("handed_over", {})
                ctx.uploader.wake()
            except (EdgeUnavailable, EdgeRejected) as exc:
                logger.info("waiting to hand attempt %s over: %s", attempt, exc)
            ctx.stop.wait(WAIT_SECONDS)
        return None

    ctx.background(work)


HANDLERS = {
    flow.FinishAttempt: finish_attempt,
    flow.HandOver: hand_over,
}
