"""The demo's supervision (provisioning/supervise.py) on real processes: a killed or failing process
comes back after the delay with one line saying so, a clean exit stays down, and one that keeps
failing is given up on without touching the others."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from provisioning.supervise import RestartPolicy, Supervisor

PROGRAMS = {
    "sleeper": ["sleep", "600"],
    "done": [sys.executable, "-c", "pass"],
    "crasher": [sys.executable, "-c", "raise SystemExit(3)"],
}


class Processes:
    """Real child processes by name, started again by name (what DemoCentre offers the supervisor)."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        self.starts: list[str] = []

    def respawn(self, name: str) -> None:
        self.processes[name] = subprocess.Popen(PROGRAMS[name])
        self.starts.append(name)

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.kill()
            proc.wait()


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def ended(procs: Processes, *names: str) -> None:
    deadline = time.monotonic() + 30
    while any(procs.processes[n].poll() is None for n in names):
        assert time.monotonic() < deadline, f"{names} did not end"
        time.sleep(0.05)


def test_a_killed_process_is_restarted_after_the_delay_and_a_clean_exit_is_not() -> None:
    procs, clock, lines = Processes(), Clock(), []
    supervisor = Supervisor(procs, RestartPolicy(delay=2, burst=5, interval=60), say=lines.append, now=clock)
    for name in ("sleeper", "done"):
        procs.respawn(name)
    try:
        first = procs.processes["sleeper"].pid
        os.kill(first, signal.SIGKILL)
        ended(procs, "sleeper", "done")
        supervisor.tick()
        assert lines == ["sleeper was killed by signal 9; restarting it in 2 s", "done exited cleanly; not restarted"]
        assert "sleeper" not in procs.processes
        clock.t = 1.9
        supervisor.tick()
        assert "sleeper" not in procs.processes, "restarted before its delay"
        clock.t = 2.0
        supervisor.tick()
        again = procs.processes["sleeper"]
        assert again.pid != first and again.poll() is None
        assert "done" not in procs.processes and procs.starts == ["sleeper", "done", "sleeper"]
    finally:
        procs.stop()


def test_a_process_that_keeps_failing_is_given_up_on_and_the_others_run_on() -> None:
    procs, clock, lines = Processes(), Clock(), []
    supervisor = Supervisor(procs, RestartPolicy(delay=1, burst=3, interval=60), say=lines.append, now=clock)
    procs.respawn("sleeper")
    procs.respawn("crasher")
    try:
        for _ in range(3):
            ended(procs, "crasher")
            supervisor.tick()
            clock.t += 1
            supervisor.tick()
        assert lines[:2] == ["crasher exited with code 3; restarting it in 1 s"] * 2
        assert lines[2] == "crasher exited with code 3; it failed 3 times in 60 s, so it is not restarted again (see its log)"
        assert supervisor.given_up == {"crasher"} and "crasher" not in procs.processes
        assert procs.processes["sleeper"].poll() is None and procs.starts.count("sleeper") == 1
    finally:
        procs.stop()


def test_failures_further_apart_than_the_interval_do_not_add_up() -> None:
    procs, clock, lines = Processes(), Clock(), []
    supervisor = Supervisor(procs, RestartPolicy(delay=1, burst=2, interval=10), say=lines.append, now=clock)
    procs.respawn("crasher")
    try:
        for _ in range(3):
            ended(procs, "crasher")
            supervisor.tick()
            clock.t += 11
            supervisor.tick()
        assert lines == ["crasher exited with code 3; restarting it in 1 s"] * 3
        assert not supervisor.given_up
    finally:
        procs.stop()
