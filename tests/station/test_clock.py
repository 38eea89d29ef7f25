"""The station's estimate of the edge's clock: min-delay samples, asymmetric delay, drift, wall steps.

The estimator is pure arithmetic over (monotonic, edge time, round trip) samples, so it is tested on
a simulated timeline: ``Timeline`` is the station's clocks (a ClockSource whose monotonic runs at a
chosen rate against true time), ``SimulatedEdge`` answers ``time()`` as ``EdgeClient.time`` would,
after an outbound and before an inbound delay. ``tests/station/test_link.py`` syncs against a real
HTTP server.
"""
from __future__ import annotations

import random

import pytest

from station.link.clock import SKEW_ENV, Clock, SystemClock
from station.link.errors import EdgeUnavailable

EPOCH = 1_800_000_000.0


class Timeline:
    """True time, and the station's clocks: monotonic at ``rate`` (1 + ppm/1e6), wall = true + skew."""

    def __init__(self, *, ppm: float = 0.0, skew: float = 0.0):
        self.true = EPOCH
        self.rate = 1.0 + ppm / 1e6
        self.skew = skew
        self._mono0 = 1000.0

    def advance(self, seconds: float) -> None:
        self.true += seconds

    def monotonic(self) -> float:
        return self._mono0 + (self.true - EPOCH) * self.rate

    def wall(self) -> float:
        return self.true + self.skew


class SimulatedEdge:
    """The edge's ``GET /time`` on the timeline: it reads true time between the two delays."""

    def __init__(self, timeline: Timeline, delays):
        self.timeline, self.delays = timeline, delays
        self.down = False

    def time(self) -> float:
        if self.down:
            raise EdgeUnavailable("GET /time: connection refused")
        out, back = self.delays()
        self.timeline.advance(out)
        server = self.timeline.true
        self.timeline.advance(back)
        return server


def test_before_a_sync_it_is_the_wall_clock_with_no_uncertainty():
    timeline = Timeline(skew=3.0)
    clock = Clock(timeline)
    assert not clock.synced and clock.uncertainty is None and clock.drift_ppm is None
    assert clock.now() == timeline.wall()
    assert clock.monotonic_at(timeline.wall() + 2) == pytest.approx(timeline.monotonic() + 2)


def test_asymmetric_delay_the_error_stays_within_half_the_round_trip_and_the_uncertainty_covers_it():
    timeline = Timeline(skew=-1.5)
    clock = Clock(timeline)
    edge = SimulatedEdge(timeline, lambda: (0.040, 0.002))  # 40 ms out, 2 ms back
    clock.sync(edge, samples=5)
    error = clock.now() - timeline.true
    assert abs(error) <= 0.021 + 1e-9  # half of the 42 ms round trip
    assert error == pytest.approx(0.019, abs=1e-5)  # read 40 ms in, taken for the 21 ms midpoint: 19 ms ahead
    assert clock.uncertainty is not None and clock.uncertainty >= abs(error)
    assert clock.offset == pytest.approx(1.5 + error, abs=1e-6)  # the skew shows in the offset


def test_the_quickest_sample_wins_amid_slow_ones():
    timeline = Timeline()
    rng = random.Random(7)
    delays = iter([(0.2, 0.01), (0.001, 0.001), (0.15, 0.3), (0.08, 0.0)])
    clock = Clock(timeline)
    clock.sync(SimulatedEdge(timeline, lambda: next(delays)), samples=4)
    assert abs(clock.now() - timeline.true) <= 0.001 + 1e-9
    assert clock.uncertainty == pytest.approx(0.001 + 0.0005, abs=1e-4)
    # Later syncs through a congested link do not spoil it (min-delay over the window).
    slow = SimulatedEdge(timeline, lambda: (rng.uniform(0.05, 0.4), rng.uniform(0.0, 0.02)))
    for _ in range(3):
        timeline.advance(5)
        clock.sync(slow, samples=3)
    assert abs(clock.now() - timeline.true) < 0.003
    assert clock.uncertainty >= abs(clock.now() - timeline.true)


def test_drift_is_fitted_over_syncs_and_now_stays_within_the_uncertainty():
    timeline = Timeline(ppm=200.0)  # the station's oscillator runs 200 ppm fast
    rng = random.Random(3)
    edge = SimulatedEdge(timeline, lambda: (rng.uniform(0.001, 0.004), rng.uniform(0.001, 0.004)))
    clock = Clock(timeline)
    for _ in range(20):  # five minutes of syncs every 15 s
        clock.sync(edge, samples=5)
        error = clock.now() - timeline.true
        assert abs(error) <= clock.uncertainty, f"error {error * 1000:.2f} ms beyond ± {clock.uncertainty * 1000:.2f}"
        timeline.advance(15)
    assert clock.drift_ppm == pytest.approx(200.0, abs=20.0)
    # A minute without a sync: the fitted drift keeps it close (200 ppm alone would be 12 ms).
    timeline.advance(60)
    assert abs(clock.now() - timeline.true) < 0.004
    assert abs(clock.now() - timeline.true) <= clock.uncertainty


def test_monotonic_at_is_when_the_edge_reads_the_instant():
    timeline = Timeline(ppm=-150.0, skew=2.0)
    rng = random.Random(5)
    edge = SimulatedEdge(timeline, lambda: (rng.uniform(0.001, 0.003), rng.uniform(0.001, 0.003)))
    clock = Clock(timeline)
    for _ in range(10):
        clock.sync(edge, samples=3)
        timeline.advance(10)
    start = timeline.true + 42.0
    deadline = clock.monotonic_at(start)
    timeline.advance(42.0)  # true time is now the start
    assert deadline == pytest.approx(timeline.monotonic(), abs=clock.uncertainty)


def test_a_step_of_the_wall_clock_does_not_move_the_exam_clock():
    timeline = Timeline()
    clock = Clock(timeline)
    clock.sync(SimulatedEdge(timeline, lambda: (0.002, 0.002)), samples=3)
    before = clock.now() - timeline.true
    timeline.skew = 3600.0  # someone set the station's clock an hour ahead
    assert clock.now() - timeline.true == pytest.approx(before, abs=1e-9)
    assert clock.offset == pytest.approx(-3600.0 + before, abs=1e-6)


def test_a_failed_sync_keeps_the_estimate():
    timeline = Timeline()
    edge = SimulatedEdge(timeline, lambda: (0.002, 0.002))
    clock = Clock(timeline)
    clock.sync(edge, samples=3)
    edge.down = True
    with pytest.raises(EdgeUnavailable):
        clock.sync(edge, samples=2)
    assert clock.synced and abs(clock.now() - timeline.true) <= clock.uncertainty


def test_the_skew_hook_shifts_the_wall_clock(monkeypatch):
    monkeypatch.setenv(SKEW_ENV, "-1.25")
    source = SystemClock()
    assert source.skew == -1.25
    monkeypatch.setenv(SKEW_ENV, "soon")
    with pytest.raises(ValueError, match=SKEW_ENV):
        SystemClock()
    monkeypatch.delenv(SKEW_ENV)
    assert SystemClock().skew == 0.0
