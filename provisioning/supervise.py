"""The demo's process supervision, as systemd does it on the appliance (``Restart=on-failure``).

A process that dies with a failure (a non-zero exit status or a signal, ``kill -9`` included) is
started again after ``RestartSec`` with one console line saying so; one that exits cleanly stays
stopped. A process that fails ``burst`` times within ``interval`` seconds is given up on, with a line
saying so (systemd's start limit): the rest of the centre keeps running. Only Ctrl-C stops all.
"""
from __future__ import annotations

import subprocess
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol


@dataclass(frozen=True)
class RestartPolicy:
    delay: float = 2.0  # RestartSec
    burst: int = 5  # StartLimitBurst
    interval: float = 60.0  # StartLimitIntervalSec


class Supervised(Protocol):
    """What is supervised: the running processes by name, and how to start one again."""

    processes: dict[str, subprocess.Popen]

    def respawn(self, name: str) -> None: ...


class Supervisor:
    def __init__(self, target: Supervised, policy: RestartPolicy = RestartPolicy(), *,
                 say: Callable[[str], None] = print, now: Callable[[], float] = time.monotonic):
        self._target = target
        self._policy = policy
        self._say = say
        self._now = now
        self._due: dict[str, float] = {}  # name -> when it starts again
        self._failures: dict[str, deque[float]] = {}
        self.given_up: set[str] = set()

    def tick(self) -> None:
        """Note the processes that ended; start again those whose delay is over."""
        now = self._now()
        for name, proc in list(self._target.processes.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._target.processes[name]
            self._ended(name, code, now)
        for name, at in list(self._due.items()):
            if now >= at:
                del self._due[name]
                self._target.respawn(name)

    def _ended(self, name: str, code: int, now: float) -> None:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if code == 0:
            self._say(f"{name} exited cleanly; not restarted")
            return
        failures = self._failures.setdefault(name, deque())
        failures.append(now)
        while failures and failures[0] < now - self._policy.interval:
            failures.popleft()
        if len(failures) >= self._policy.burst:
            self.given_up.add(name)
            self._say(f"{name} {how}; it failed {len(failures)} times in {self._policy.interval:.0f} s, "
                      f"so it is not restarted again (see its log)")
            return
        self._due[name] = now + self._policy.delay
        self._say(f"{name} {how}; restarting it in {self._policy.delay:.0f} s")
