"""The runtime loop's watchdog names a loop that stopped moving, and where it is stuck."""
from __future__ import annotations

import logging
import threading

from station.runtime.watchdog import LoopWatchdog


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def hold_the_loop(dog: LoopWatchdog, beaten: threading.Event, release: threading.Event) -> None:
    dog.beat()
    beaten.set()
    release.wait(30)  # stands for a call that does not return (a lock, a disk that hangs)
    dog.beat()


def test_a_stalled_loop_is_logged_with_its_stack_once_and_its_recovery(caplog) -> None:
    now = FakeMonotonic()
    dog = LoopWatchdog(threading.Event(), stall_seconds=10, now=now)
    dog.check()  # before the loop's first beat: nothing to watch
    beaten, release = threading.Event(), threading.Event()
    loop = threading.Thread(target=hold_the_loop, args=(dog, beaten, release), name="runtime-loop")
    caplog.set_level(logging.WARNING, logger="station.runtime.watchdog")
    loop.start()
    try:
        assert beaten.wait(10), "the loop thread did not beat"
        now.t += 9
        dog.check()
        assert caplog.records == [], "9 s without a beat is not a stall yet"
        now.t += 2
        dog.check()
        dog.check()  # one stall, one warning
        [warning] = caplog.records
        text = warning.getMessage()
        assert "has not moved for 11 s" in text
        # The loop's own thread leads, down to the call it waits in.
        assert text.index("--- thread runtime-loop") < text.index("--- thread MainThread")
        assert "in hold_the_loop" in text.split("--- thread MainThread")[0]
    finally:
        now.t += 1
        release.set()
        loop.join(10)
    dog.check()
    assert caplog.records[-1].getMessage() == "the runtime loop moves again after 12.0 s"
