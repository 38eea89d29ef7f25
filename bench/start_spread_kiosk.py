"""What ``bench/start_spread.py`` does at the kiosks and on the host: drives a station's kiosk over its
HTTP API, probes the station's exam clock through it, opens the kiosk pages in Chromium with a
MutationObserver that stamps each screen change, and reads the host's CPU and memory."""
from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import requests

PROBES = 6  # kiosk requests per clock probe; the quickest counts
STEP_TIMEOUT = 120.0  # seconds any one step of driving a kiosk may take on a loaded machine
# Every change of the screen, the question number or the question text's loading, stamped in the
# host's true time (Chromium's clock is the host's) the moment the DOM changes.
STAMP_SCRIPT = """
(() => {
  const stamps = [];
  window.__ekStamps = stamps;
  let last = "";
  const note = () => {
    const html = document.documentElement;
    if (!html) return;
    const screen = html.dataset.screen || "";
    const q = document.querySelector("[data-live=question]");
    const qt = document.querySelector("[data-live=question-text]");
    const question = screen === "answering" && q ? q.textContent : null;
    const loaded = screen === "answering" && qt ? qt.dataset.loaded || null : null;
    const key = `${screen}|${question}|${loaded}`;
    if (key !== last) {
      last = key;
      stamps.push([performance.timeOrigin + performance.now(), screen, question, loaded]);
    }
  };
  new MutationObserver(note).observe(document, {subtree: true, childList: true, characterData: true,
                                                attributes: true, attributeFilter: ["data-screen", "data-loaded"]});
})();
"""


class Kiosk:
    """One station's kiosk, driven over its HTTP API as the page would (the same ``/api/event``)."""

    cancelled = threading.Event()  # set when the run is given up: every wait ends

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.http = requests.Session()

    def state(self) -> dict[str, Any]:
        return self.http.get(f"{self.url}/api/state", timeout=10).json()

    def send(self, name: str, **payload: Any) -> None:
        r = self.http.post(f"{self.url}/api/event", json={"name": name, "payload": payload}, timeout=10)
        if r.status_code != 202:
            raise RuntimeError(f"{self.url}: {name} refused: {r.status_code} {r.text}")

    def wait(self, predicate: Callable[[dict], bool], what: str, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        deadline, state = time.monotonic() + timeout, {}
        while time.monotonic() < deadline and not self.cancelled.is_set():
            try:
                state = self.state()
                if predicate(state):
                    return state
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.url}: {what} did not happen in {timeout:.0f} s; last screen "
                           f"{state.get('screen')} notice {state.get('notice')}")

    def enter_waiting_room(self, ticket: str) -> dict[str, Any]:
        """Identify -> face login -> read x3 -> lot -> devices -> confirm, as a candidate would."""
        self.wait(lambda s: s["screen"] == "identify" and s["server_ok"], "edge found")
        self.send("identify", ticket_no=ticket)
        self.wait(lambda s: s["screen"] == "face_login", "face login screen")
        self.send("face_capture")
        sent, tries = time.monotonic(), 1
        while True:  # a try with no usable frame (face too small in a pan...) is not spent: press again
            state = self.wait(lambda s, sent=sent: s["screen"] != "face_login" or (
                not s["busy"] and s["notice"] and time.monotonic() > sent + 2), "face result")
            if state["screen"] != "face_login" or tries >= 6:
                break
            self.send("face_capture")
            sent, tries = time.monotonic(), tries + 1
        for screen in ("read_flow", "read_pledge", "read_notice"):
            self.wait(lambda s, screen=screen: s["screen"] == screen, screen)
            self.send("accept", read_to_end=True)
        state = self.wait(lambda s: s["screen"] in ("draw_lot", "device_check"), "lot screen")
        if state["screen"] == "draw_lot":
            self.send("draw_lot")
        self.wait(lambda s: s["screen"] == "device_check" and s["camera_ok"] and s["mic_ok"], "devices working")
        self.send("devices_ok")
        self.wait(lambda s: s["screen"] == "info_confirm", "info confirm")
        self.send("confirm_info")
        return self.wait(lambda s: s["screen"] == "waiting", "waiting room")

    def clock_error(self) -> tuple[float, float]:
        """(station's exam clock - host true time, half round trip) of the quickest of PROBES requests:
        ``server_time`` is the station's ``clock.now()`` when it answered."""
        best: tuple[float, float] | None = None
        for _ in range(PROBES):
            t0 = time.time()
            server = self.state()["server_time"]
            t1 = time.time()
            if best is None or (t1 - t0) / 2 < best[1]:
                best = (server - (t0 + t1) / 2, (t1 - t0) / 2)
            time.sleep(0.05)
        assert best is not None
        return best


class StreamWatch:
    """A reader of the kiosk's own event stream (``/api/stream``, what the page listens to) that stamps
    the host's time when a snapshot first says ``screen``: the agent's side of the screen change,
    without the browser."""

    def __init__(self, url: str, screen: str, until: float):
        self.url, self.screen, self.until = url.rstrip("/"), screen, until
        self.at: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"stream {url}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.at is None and time.time() < self.until:
            try:
                with requests.get(f"{self.url}/api/stream", stream=True, timeout=(5, 5)) as r:
                    for line in r.iter_lines():
                        if line.startswith(b"data: ") and json.loads(line[6:])["screen"] == self.screen:
                            self.at = time.time()
                            return
                        if time.time() >= self.until:
                            return
            except requests.RequestException:
                time.sleep(0.2)


def open_pages(playwright: Any, browsers: list, urls: list[str], per_browser: int) -> list:
    """One page per kiosk, ``per_browser`` pages per headless Chromium, each stamping its screens;
    returns once every page shows the waiting room."""
    pages = []
    for i, url in enumerate(urls):
        if i % per_browser == 0:
            browsers.append(playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True))
        page = browsers[-1].new_page(viewport={"width": 1024, "height": 700})
        page.add_init_script(STAMP_SCRIPT)
        page.goto(url, wait_until="domcontentloaded", timeout=120_000)
        pages.append(page)
    for page in pages:
        page.wait_for_selector("html[data-screen=waiting]", timeout=120_000)
    return pages


def read_stamps(page: Any) -> dict[str, float | None]:
    """True-time stamps (s) of: the answering screen shown, question 1's text shown, question 2 shown,
    the answering screen left."""
    first: dict[str, float | None] = {"screen": None, "paper": None, "q2": None, "left": None}
    for t_ms, screen, question, loaded in page.evaluate("window.__ekStamps || []"):
        t = t_ms / 1000
        if screen == "answering":
            first["screen"] = first["screen"] or t
            if loaded == "yes" and question == "1":
                first["paper"] = first["paper"] or t
            if question == "2":
                first["q2"] = first["q2"] or t
        elif first["screen"] is not None and first["left"] is None:
            first["left"] = t
    return first


def runner_applied(log: Path, screen_change: str) -> float | None:
    """When the agent's runner applied a screen change (its log line ``screen a -> b``; the log's time is
    the agent's own ``time.time()``, which the skew hook does not touch)."""
    for line in log.read_text(errors="replace").splitlines():
        if f"screen {screen_change}" in line:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the host (/proc/stat)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def own_cpu() -> float:
    """utime + stime jiffies of this process's living descendants (the centre, the agents, Chromium)."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid], cpu[pid] = int(fields[1]), float(fields[11]) + float(fields[12])
    me, total = os.getpid(), 0.0
    for pid in cpu:
        p = pid
        while p in parent and p not in (0, 1, me):
            p = parent[p]
        if p == me and pid != me:
            total += cpu[pid]
    return total


def mem_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1e6
    return float("nan")
