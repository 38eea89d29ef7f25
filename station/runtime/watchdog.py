"""The runtime loop's watchdog: a loop that stops moving is named in the log, with every thread's stack.

The loop (``station.runtime.runner.Runtime.run``) beats once per turn, at least every tick. When no
beat came for ``stall_seconds`` the watchdog logs one warning with where each thread of the agent is
(the loop thread first), and one line when the loop moves again: a station whose screen froze tells
its IT person why, instead of only that it did. It logs and nothing else: the journal, the outbox or
the network may be what holds the loop, so it touches none of them.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from typing import Callable

logger = logging.getLogger(__name__)

STALL_SECONDS = 10.0


def thread_stacks(first: int | None = None) -> str:
    """Every thread's stack, as text; thread ``first`` (an ident) leads."""
    names = {t.ident: t.name for t in threading.enumerate()}
    frames = sorted(sys._current_frames().items(), key=lambda item: item[0] != first)
    return "\n".join(f"--- thread {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}"
                     for ident, frame in frames)


class LoopWatchdog:
    """A component: ``beat()`` from the loop, a thread of its own that watches the beats."""

    def __init__(self, stop: threading.Event, *, stall_seconds: float = STALL_SECONDS,
                 now: Callable[[], float] = time.monotonic):
        self._stop = stop
        self._stall = stall_seconds
        self._now = now
        self._beat: float | None = None  # no beat yet: the loop has not started
        self._loop_thread: int | None = None
        self._stalled_since: float | None = None  # the last beat before the stall now reported
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)

    def beat(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat = self._now()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The stop event ends it."""

    def check(self) -> None:
        """One look at the beats (the thread calls it every second)."""
        beat, now = self._beat, self._now()
        if beat is None:
            return
        if self._stalled_since is not None and beat != self._stalled_since:
            logger.warning("the runtime loop moves again after %.1f s", beat - self._stalled_since)
            self._stalled_since = None
        if self._stalled_since is None and now - beat >= self._stall:
            self._stalled_since = beat
            logger.warning("the runtime loop has not moved for %.0f s; where each thread is:\n%s",
                           now - beat, thread_stacks(first=self._loop_thread))

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self._stall / 4)):
            self.check()
