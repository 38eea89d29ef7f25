"""The flow timer: the start, per-question boundaries and the end fire at their instant on the exam
clock, driven here by a controllable clock source (``Timeline`` of test_clock.py)."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import replace

import pytest

from station import flow
from station.flow import Event, FlowState, Schedule, Screen
from station.flow.states import TimingMode
from station.link.clock import Clock
from station.runtime.timers import FlowTimer, next_instant
from tests.station.test_clock import SimulatedEdge, Timeline

START = 1_800_000_100.0


def schedule(mode: TimingMode = TimingMode.PER_QUESTION) -> Schedule:
    return Schedule(sitting="s1", timing_mode=mode, waiting_opens_at=START - 600, starts_at=START,
                    entry_closes_at=START + 300, lot_deadline_at=START - 60, question_seconds=(30, 40),
                    total_seconds=70)


def test_next_instant_is_the_start_then_each_boundary_then_the_end():
    waiting = FlowState(screen=Screen.WAITING, schedule=schedule(), attempt_id="a1", recording=True)
    assert next_instant(waiting) == START
    answering = replace(waiting, screen=Screen.ANSWERING, question=1)
    assert next_instant(answering) == START + 30
    assert next_instant(replace(answering, question=2)) == START + 70
    whole = replace(answering, schedule=schedule(TimingMode.WHOLE_SESSION))
    assert next_instant(whole) == START + 70
    assert next_instant(replace(waiting, screen=Screen.UPLOADING)) is None
    assert next_instant(FlowState()) is None


@pytest.fixture
def timed():
    """A timer on a synced clock over a controllable timeline; yields (timeline, clock, timer, fired)."""
    timeline = Timeline(ppm=50.0, skew=1.7)
    timeline.true = START - 20
    clock = Clock(timeline)
    clock.sync(SimulatedEdge(timeline, lambda: (0.001, 0.001)), samples=3)
    fired: queue.Queue[Event] = queue.Queue()
    stop = threading.Event()
    timer = FlowTimer(clock, fired.put, stop, slice_seconds=0.01)
    timer.start()
    try:
        yield timeline, clock, timer, fired
    finally:
        stop.set()
        timer.stop()


def wait_for(fired: queue.Queue[Event], what: str, timeout: float = 10.0) -> Event:
    try:
        return fired.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"the timer did not fire {what} within {timeout} s") from None


def test_the_start_fires_once_when_the_edge_clock_reaches_it_and_the_flow_starts_answering(timed):
    timeline, clock, timer, fired = timed
    state = FlowState(screen=Screen.WAITING, schedule=schedule(), attempt_id="a1", recording=True)
    timer.arm(next_instant(state))
    timeline.true = START - 0.002  # 2 ms before the start on the edge's clock
    time.sleep(0.1)  # ten slices of the timer: none may fire early
    assert fired.empty(), "the timer fired before the edge's clock reached the start"
    timeline.true = START + 0.0005
    event = wait_for(fired, "at the start")
    assert event == Event("tick", {"at": START})
    # The runner applies it with now at least the instant: the paper opens on question 1, segment cut.
    new, commands = flow.transition(state, event, max(clock.now(), event.payload["at"]))
    assert (new.screen, new.question) == (Screen.ANSWERING, 1)
    assert flow.CutSegment(1, at=START) in commands
    # Re-arming the same instant does not fire again; the next boundary does, when it comes.
    timer.arm(START)
    time.sleep(0.1)
    assert fired.empty()
    timer.arm(next_instant(new))
    timeline.true = START + 30
    assert wait_for(fired, "at the end of question 1") == Event("tick", {"at": START + 30})


def test_a_rearm_moves_the_deadline_and_disarming_cancels(timed):
    timeline, clock, timer, fired = timed
    timer.arm(START)
    timer.arm(START + 10)  # the proctor moved the start
    timeline.true = START + 1
    time.sleep(0.1)
    assert fired.empty(), "the timer fired at the old instant"
    timer.arm(None)
    timeline.true = START + 11
    time.sleep(0.1)
    assert fired.empty(), "a disarmed timer fired"
    timer.arm(START + 10)
    assert wait_for(fired, "once armed again past its instant") == Event("tick", {"at": START + 10})


def test_a_new_clock_estimate_moves_the_deadline(timed):
    timeline, clock, timer, fired = timed
    timer.arm(START)
    # The edge's clock was 0.5 s ahead of what the first sync said: a sync with a quicker reply shows it.
    timeline.true = START - 0.3  # the edge says START + 0.2
    server_ahead = SimulatedEdge(timeline, lambda: (0.0001, 0.0001))
    real_time = server_ahead.time
    server_ahead.time = lambda: real_time() + 0.5
    clock.sync(server_ahead, samples=1)
    assert wait_for(fired, "after the estimate moved the start 0.5 s earlier") == Event("tick", {"at": START})
    assert timeline.true < START
