"""What the lockdown tests run the kiosk browser with: the kiosk unit's own command line, the
policies ``install-station`` wrote, an X server (Xvfb) for real key presses, and a supervisor
doing what systemd does for the unit (wipe the profile, start, restart after ``RestartSec`` when
the browser exits, whatever its status: ``Restart=on-failure`` + ``RestartForceExitStatus=0``).

Chromium reads its managed policies only from ``/etc/chromium/policies/managed``. The browser
under test gets the installed root's ``etc/chromium`` bind-mounted over ``/etc/chromium`` in a
mount namespace of its own (``unshare --mount``), so the lockdown applies to it alone: this
machine's /etc is not changed and other browsers the suite runs at the same time are not locked.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import requests

from tests.test_systemd_units import UNIT_DIR, parse_unit

KIOSK_UNIT = UNIT_DIR / "examkiosk-kiosk.service"
UNIT_URL = "http://127.0.0.1:8700/"
TOOLS = ("Xvfb", "xdotool", "unshare", "chromium")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def unit_command() -> tuple[str, list[str]]:
    """The kiosk unit's ``ExecStart``: (the compositor, the browser's argv after ``--``)."""
    (start,) = parse_unit(KIOSK_UNIT)["Service"]["ExecStart"]
    argv = shlex.split(start)
    split = argv.index("--")
    return argv[0], argv[split + 1:]


def restart_delay() -> float:
    return float(parse_unit(KIOSK_UNIT)["Service"]["RestartSec"][0])


def browser_argv(url: str, profile: Path, debug_port: int, *, ozone: str = "x11", sandbox: bool = False) -> list[str]:
    """The unit's browser command line for a test: its own URL and profile directory, drawn on X
    (or wayland), with the debugging port on loopback that the unit itself never has."""
    _, argv = unit_command()
    out = []
    for arg in argv:
        if arg == UNIT_URL:
            arg = url
        elif arg.startswith("--user-data-dir="):
            arg = f"--user-data-dir={profile}"
        elif arg.startswith("--ozone-platform="):
            arg = f"--ozone-platform={ozone}"
        out.append(arg)
    extra = [f"--remote-debugging-port={debug_port}", "--remote-debugging-address=127.0.0.1"]
    if not sandbox:
        extra.append("--no-sandbox")  # Chromium's sandbox refuses root; the unit runs as the kiosk user
    return [out[0], *extra, *out[1:]]


def with_policies(root: Path, argv: list[str]) -> list[str]:
    """``argv`` run where ``/etc/chromium`` is ``root``'s (a private mount namespace)."""
    script = 'mount --bind "$0" /etc/chromium && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(root / "etc/chromium"), *argv]


class Xvfb:
    """An X server on a display it picks itself (``-displayfd``)."""

    def __init__(self, log: Path, size: str = "1280x800x24"):
        read, write = os.pipe()
        self._log = log.open("w")
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", size, "-nolisten", "tcp"],
                                     pass_fds=(write,), stdout=self._log, stderr=subprocess.STDOUT)
        os.close(write)
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError(f"Xvfb did not start: {log.read_text()[-500:]}")
        self.display = f":{number}"

    def xdotool(self, *args: str) -> str:
        result = subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": self.display}, capture_output=True,
                                text=True, timeout=20, check=False)
        return result.stdout

    def visible_windows(self) -> set[str]:
        return set(self.xdotool("search", "--onlyvisible", "--name", "").split())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


class Supervisor:
    """Runs the browser as the kiosk unit does under systemd: profile wiped before every start,
    restarted ``RestartSec`` after it exits for any reason."""

    def __init__(self, argv_for: callable, profile: Path, env: dict[str, str], log: Path):
        self._argv_for, self._profile, self._env = argv_for, profile, env
        self._log = log.open("a")
        self._stop = threading.Event()
        self.url = ""
        self.starts = 0
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="kiosk-supervisor", daemon=True)

    def start(self, url: str) -> None:
        self.url = url
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            shutil.rmtree(self._profile, ignore_errors=True)  # the unit's ExecStartPre
            with self._lock:
                self.proc = subprocess.Popen(self._argv_for(self.url), env=self._env, stdout=self._log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
                self.starts += 1
            self.proc.wait()
            self._stop.wait(restart_delay())

    def restart(self, url: str) -> None:
        """Close the browser (as a person would) and have it come back showing ``url``."""
        self.url = url
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 15)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        self._thread.join(15)
        self._log.close()


def shown_pages(port: int) -> list[str]:
    """The URLs of the pages a person can see: every page target but the browser frame's own
    WebUI parts (``*.top-chrome``, e.g. the omnibox popup, present from the start)."""
    try:
        found = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
    except (OSError, ValueError):
        return []
    return sorted(t["url"] for t in found
                  if t.get("type") == "page" and ".top-chrome/" not in t.get("url", ""))


def wait_quiet(seconds: float) -> None:
    """Give a key's effect (a new tab, a dialog) time to appear: what a test then checks is
    what stays, so this is a settling time, not a timing goal."""
    time.sleep(seconds)
