"""The edge's clock seen from the station (the exam's clock).

Each sync asks ``GET /time`` several times; every reply is a sample (the midpoint of the request
on the station's monotonic clock, the edge's time, the round trip). The edge's time is then a
line over the monotonic clock, ``server = base + (1 + drift) * (mono - base_mono)``:

- the line goes through the samples with the smallest delay: a sample's error is at most half its
  round trip whatever the asymmetry of the two directions, so the quickest samples are the truth;
- over syncs spread in time (at least ``DRIFT_MIN_SPAN`` seconds), the drift of the station's
  oscillator against the edge's is the slope of a least-squares fit of the quick samples;
- ``uncertainty`` is half the round trip of the sample the line is anchored to, plus what the drift
  (or ``DRIFT_BOUND`` while it is not known) can have added since, plus a floor for the edge's own
  reading of its clock.

``now()`` is read off the monotonic clock, so a step of the station's wall clock (an NTP jump, a
wrong RTC) does not move the exam's clock once the first sync is done; before it, it is the wall.

Test hook: ``SystemClock`` adds the environment variable ``EXAMKIOSK_CLOCK_SKEW_SECONDS`` (seconds,
may be negative and fractional) to the wall clock it reports, standing for a station whose system
clock is wrong; the benchmark ``bench/start_spread.py`` skews stations with it. ``offset`` then shows
the skew while ``now()`` still tracks the edge.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from station.link.client import EdgeClient
from station.link.errors import EdgeUnavailable

logger = logging.getLogger(__name__)

SKEW_ENV = "EXAMKIOSK_CLOCK_SKEW_SECONDS"
WINDOW = 64  # samples kept (the quickest of each sync)
DRIFT_MIN_SPAN = 30.0  # seconds between the first and last quick sample before a drift is fitted
DRIFT_BOUND = 100e-6  # what an unknown drift may be (100 ppm: a poor crystal)
FLOOR = 0.0005  # seconds: the edge's reading of its clock, the reply's parsing


class ClockSource(Protocol):
    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The station's own clocks, the wall one shifted by ``EXAMKIOSK_CLOCK_SKEW_SECONDS`` (a test hook)."""

    def __init__(self, skew: float | None = None):
        if skew is None:
            raw = os.environ.get(SKEW_ENV, "").strip()
            try:
                skew = float(raw) if raw else 0.0
            except ValueError:
                raise ValueError(f"{SKEW_ENV}={raw!r} is not a number of seconds") from None
        self.skew = skew

    def wall(self) -> float:
        return time.time() + self.skew

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class Sample:
    mono: float  # midpoint of the request, station's monotonic clock
    server: float  # the edge's time in its reply
    rtt: float

    @property
    def offset(self) -> float:
        """Edge time minus monotonic time at the midpoint."""
        return self.server - self.mono


@dataclass(frozen=True)
class Line:
    """``server = base + (1 + drift) * (mono - base_mono)``; ``error`` at ``base_mono``."""

    base_mono: float
    base: float
    drift: float | None
    error: float

    def at(self, mono: float) -> float:
        return self.base + (1.0 + (self.drift or 0.0)) * (mono - self.base_mono)

    def mono_at(self, server: float) -> float:
        return self.base_mono + (server - self.base) / (1.0 + (self.drift or 0.0))

    def uncertainty(self, mono: float) -> float:
        growth = DRIFT_BOUND if self.drift is None else DRIFT_BOUND / 10
        return self.error + abs(mono - self.base_mono) * growth + FLOOR


def fit(samples: list[Sample]) -> Line:
    """The line through the quick samples (pure; ``samples`` in time order, at least one)."""
    best = min(s.rtt for s in samples)
    quick = [s for s in samples if s.rtt <= best * 1.5 + 0.001]
    latest = quick[-1]
    if quick[-1].mono - quick[0].mono >= DRIFT_MIN_SPAN and len(quick) >= 3:
        n = len(quick)
        mx = sum(s.mono for s in quick) / n
        my = sum(s.offset for s in quick) / n
        sxx = sum((s.mono - mx) ** 2 for s in quick)
        slope = sum((s.mono - mx) * (s.offset - my) for s in quick) / sxx
        base = my + slope * (latest.mono - mx) + latest.mono
        residual = max(abs(s.offset - (my + slope * (s.mono - mx))) for s in quick)
        return Line(base_mono=latest.mono, base=base, drift=slope, error=best / 2 + residual)
    # No drift yet: the sample whose error, grown by the worst drift since, is smallest now.
    now = samples[-1].mono
    anchor = min(quick, key=lambda s: s.rtt / 2 + (now - s.mono) * DRIFT_BOUND)
    return Line(base_mono=anchor.mono, base=anchor.server, drift=None, error=anchor.rtt / 2)


class Clock:
    """The edge's clock seen from the station, kept by ``sync`` (see the module's docstring)."""

    def __init__(self, source: ClockSource | None = None):
        self.source = source or SystemClock()
        self._lock = threading.Lock()
        self._samples: collections.deque[Sample] = collections.deque(maxlen=WINDOW)
        self._line: Line | None = None
        self._rtt: float | None = None

    def sync(self, client: EdgeClient, samples: int = 5) -> float:
        """Sample ``GET /time`` ``samples`` times, keep the quickest and refit; returns the offset."""
        best: Sample | None = None
        error: EdgeUnavailable | None = None
        for _ in range(max(1, samples)):
            mono0 = self.source.monotonic()
            try:
                server = client.time()
            except EdgeUnavailable as exc:
                error = exc
                continue
            mono1 = self.source.monotonic()
            sample = Sample(mono=(mono0 + mono1) / 2, server=server, rtt=mono1 - mono0)
            if best is None or sample.rtt < best.rtt:
                best = sample
        if best is None:
            assert error is not None
            raise error
        self.add(best)
        logger.info("clock offset to the edge %+.1f ms ± %.1f ms (round trip %.1f ms, drift %s)",
                    self.offset * 1000, (self.uncertainty or 0) * 1000, best.rtt * 1000,
                    "unknown" if self.drift_ppm is None else f"{self.drift_ppm:+.1f} ppm")
        return self.offset

    def add(self, sample: Sample) -> None:
        """One sample into the window (what ``sync`` does with its quickest reply)."""
        with self._lock:
            self._samples.append(sample)
            self._rtt = sample.rtt
            self._line = fit(list(self._samples))

    # --- readings --------------------------------------------------------------------------------
    def now(self) -> float:
        """The edge's time, in seconds since the epoch (the wall clock before the first sync)."""
        with self._lock:
            line = self._line
        return self.source.wall() if line is None else line.at(self.source.monotonic())

    def monotonic_at(self, server_ts: float) -> float:
        """The source's monotonic reading at which the edge's clock will read ``server_ts``."""
        with self._lock:
            line = self._line
        if line is None:
            return self.source.monotonic() + (server_ts - self.source.wall())
        return line.mono_at(server_ts)

    @property
    def offset(self) -> float:
        """The edge's time minus the station's wall clock (0 before the first sync)."""
        with self._lock:
            line = self._line
        if line is None:
            return 0.0
        return line.at(self.source.monotonic()) - self.source.wall()

    @property
    def uncertainty(self) -> float | None:
        """Seconds ``now()`` may be off the edge's clock; None before the first sync."""
        with self._lock:
            line = self._line
        return None if line is None else line.uncertainty(self.source.monotonic())

    @property
    def drift_ppm(self) -> float | None:
        """How fast the station's clock runs against the edge's, in ppm (positive: fast); None until fitted."""
        with self._lock:
            line = self._line
        if line is None or line.drift is None:
            return None
        return -line.drift / (1.0 + line.drift) * 1e6

    @property
    def rtt(self) -> float | None:
        """The round trip of the last sync's quickest request."""
        with self._lock:
            return self._rtt

    @property
    def synced(self) -> bool:
        with self._lock:
            return self._line is not None
