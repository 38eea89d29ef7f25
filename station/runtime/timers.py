"""The flow's next instant as a timer on the exam clock, so the start, each question boundary of
per-question mode and the end happen at their instant rather than on the next tick.

``next_instant`` (pure) reads the instant off the flow state; ``FlowTimer`` sleeps on the monotonic
clock until ``clock.monotonic_at(instant)`` and then posts a ``tick`` carrying the instant, which the
runner applies with ``now`` at least that instant. It is re-armed after every event the runner applies;
the wait is cut into slices of at most ``SLICE_SECONDS``, so a new clock estimate moves the deadline.
The runner's periodic ticks stay as the safety net.
"""
from __future__ import annotations

import threading
from typing import Callable

from station.flow import Event, FlowState, Screen
from station.flow.states import TimingMode
from station.link.clock import Clock

SLICE_SECONDS = 0.5


def next_instant(state: FlowState) -> float | None:
    """The server-time instant at which the flow moves on by itself, or None."""
    sch = state.schedule
    if sch is None:
        return None
    if state.screen == Screen.WAITING:
        return sch.starts_at
    if state.screen == Screen.ANSWERING:
        if sch.timing_mode == TimingMode.PER_QUESTION and 1 <= state.question <= sch.questions:
            return min(sch.question_window(state.question)[1], sch.ends_at)
        return sch.ends_at
    return None


class FlowTimer:
    """Posts ``Event("tick", {"at": instant})`` when the edge's clock reaches the armed instant."""

    def __init__(self, clock: Clock, post: Callable[[Event], None], stop: threading.Event, *,
                 slice_seconds: float = SLICE_SECONDS):
        self._clock, self._post, self._stop = clock, post, stop
        self._slice = slice_seconds
        self._instant: float | None = None
        self._fired: float | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="flow-timer", daemon=True)

    def arm(self, instant: float | None) -> None:
        """Fire at ``instant`` (server time); None disarms. The same instant fires once."""
        with self._changed:
            if instant != self._instant:
                self._instant = instant
                self._changed.notify()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        source = self._clock.source
        with self._changed:
            while not self._stop.is_set():
                instant = self._instant
                if instant is None or instant == self._fired:
                    self._changed.wait(self._slice)
                    continue
                left = self._clock.monotonic_at(instant) - source.monotonic()
                if left > 0:
                    self._changed.wait(min(left, self._slice))
                    continue
                self._fired = instant
                self._post(Event("tick", {"at": instant}))
