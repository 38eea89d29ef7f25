"""What the demo does with the programs it runs, by name: start one again as it was started, print
its threads' stacks into its log, read its log's end, notice one that ended, stop them together.

``DemoCentre`` (provisioning/demo.py) is one: it has ``processes`` (name -> Popen), ``spawned``
(name -> how it was started), ``logs`` (the folder of ``<name>.log``) and ``spawn``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


class ProcessControl:
    processes: dict[str, subprocess.Popen]
    spawned: dict[str, tuple[list[str], str | None, dict[str, str] | None]]
    logs: Path

    def spawn(self, name: str, argv: list[str], station_id: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        raise NotImplementedError

    def respawn(self, name: str) -> None:
        """Start a process that ended again, as it was started (``provisioning.supervise``)."""
        argv, station_id, env = self.spawned[name]
        self.spawn(name, argv, station_id=station_id, env=env)

    def dump_stacks(self, name: str) -> None:
        """Have a running process print every thread's stack into its log (SIGUSR1,
        ``examkiosk_wire.program``): for the error message of a test that found it stuck."""
        proc = self.processes.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)  # faulthandler writes at once; give the file a moment

    def log_tail(self, name: str, chars: int = 3000) -> str:
        """The end of a process's log (``edge-web``, ``station-st-01``, ...), for an error message."""
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else f"(no log {path})"

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{self.log_tail(name)}")

    def stop_process(self, name: str, timeout: float = 10) -> None:
        self._stop_together([name], timeout)

    def _stop_together(self, names: list[str], timeout: float = 10) -> None:
        """SIGTERM to each, then wait for all of them at once (SIGKILL for whoever is still there)."""
        procs = [p for p in (self.processes.pop(n, None) for n in names) if p is not None and p.poll() is None]
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop(self) -> None:
        """Stations first (they may still report to the edge), then the edge and the services."""
        names = list(reversed(list(self.processes)))
        stations = [n for n in names if n.startswith("station-")]
        self._stop_together(stations)
        self._stop_together([n for n in names if n not in stations])
