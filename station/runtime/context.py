"""What the command handlers share: the settings, the clock, the journal, the flow state the runner
keeps, the event queue back into the flow, a small pool for I/O that may block, and the components.

Handlers never block the runner's loop: what may block (the network, face matching) runs through
:meth:`Context.background`, whose result comes back as an event.
"""
from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from examkiosk_wire.chain import StationKey
from station.config import StationSettings
from station.flow import Event, FlowState
from station.link import Clock, EdgeClient, EdgeRejected, EdgeUnavailable
from station.link.outbox import EventOutbox
from station.messages import MessageBox
from station.paper import PaperKeeper
from station.runtime.capture import CaptureHub
from station.runtime.edge import EdgeSession
from station.runtime.recorders import Recording
from station.storage.journal import Journal
from station.storage.uploader import SegmentUploader

logger = logging.getLogger(__name__)


@dataclass
class Shown:
    """What the kiosk shows beyond the flow state, written by the handlers and the watchers."""

    paper: dict[str, Any] | None = None  # the opened paper (in memory only)
    last_cue: tuple[str, float] | None = None  # the last voice cue and when (wall time)
    live_guidance: str | None = None  # what the face-login screen tells the candidate (a guidance code)
    live_challenge: str | None = None  # the liveness challenge under way ("left" or "right")
    active_flags: tuple[str, ...] = ()  # the monitoring flags now up
    # The edge's last upload status of an attempt: (attempt, segments verified, segments expected).
    upload_check: tuple[str, int, int] | None = None


@dataclass
class FaceFrames:
    """Frames of the face login, as JPEG: the closest of all tries (for the proctor's manual review)
    and the one the last try was decided on (reported with the try)."""

    best: bytes | None = None
    best_distance: float | None = None
    last_try: bytes | None = None


class Context:
    def __init__(self, settings: StationSettings, *, clock: Clock, journal: Journal, key: StationKey,
                 stop: threading.Event):
        self.settings = settings
        self.clock = clock
        self.journal = journal
        self.key = key
        self.stop = stop
        self.state = FlowState()
        self.events: queue.Queue[Event] = queue.Queue()
        self.shown = Shown()
        self.face = FaceFrames()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="agent-io")
        # The components, set by the runner when it wires them.
        self.edge: EdgeSession
        self.outbox: EventOutbox
        self.uploader: SegmentUploader
        self.capture: CaptureHub
        self.recording: Recording
        self.papers: PaperKeeper
        self.messages: MessageBox

    # --- into the flow ------------------------------------------------------------------------
    def post(self, name: str, payload: dict[str, Any] | None = None) -> None:
        self.events.put(Event(name, payload or {}))

    def report(self, kind: str, payload: dict[str, Any]) -> None:
        """An event for staff, about the current attempt, through the outbox."""
        self.outbox.report(kind, payload, self.state.attempt_id)

    # --- I/O off the loop ---------------------------------------------------------------------
    def need_client(self) -> EdgeClient:
        client = self.edge.client
        if client is None:
            raise EdgeUnavailable("the edge server has not been found yet")
        return client

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._pool.submit(fn, *args)

    def background(self, work: Callable[[], Event | None], failure: str = "command_failed") -> None:
        """Run ``work`` on the pool; its event (or ``failure`` with the error's code) goes to the flow."""

        def run() -> None:
            try:
                result = work()
            except EdgeRejected as exc:
                logger.info("%s: the edge refused: %s (%s)", failure, exc.message, exc.code)
                result = Event(failure, {"code": exc.code, "message": exc.message})
            except EdgeUnavailable as exc:
                logger.warning("%s: %s", failure, exc)
                self.edge.link_ok = False
                result = Event(failure, {"code": "edge_unreachable", "message": str(exc)})
            except Exception as exc:
                logger.exception("background command failed")
                result = Event(failure, {"code": "station_error", "message": str(exc)})
            if result is not None:
                self.events.put(result)

        self._pool.submit(run)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
