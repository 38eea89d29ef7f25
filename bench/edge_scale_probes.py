"""What ``bench/edge_scale.py`` watches the edge with: the database, the dashboards' stream, a bare
MQTT subscriber (the peer), the live room in Chromium, and the edge's processes in /proc."""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from edge_server.models import Event, Station
from examkiosk_wire import topics
from examkiosk_wire.pinning import pinned_session

logger = logging.getLogger("bench.edge_scale")
SAMPLE_SECONDS = 0.2


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))], 1)


class _Probe:
    """A thread collecting lags (ms) between ``begin()`` and ``end()``."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.active = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def begin(self) -> None:
        """Count from now (the thread has been watching since ``start``)."""
        self.active = True

    def end(self) -> None:
        self.active = False
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)

    def _run(self) -> None:
        raise NotImplementedError


def database_url(centre: Any) -> str:
    return centre.database_url or f"sqlite:///{centre.root / 'edge.db'}"


class DatabaseSampler(_Probe):
    """Reads every station's stored status every SAMPLE_SECONDS: a newly stored one's age is a lag."""

    def __init__(self, centre: Any):
        super().__init__()
        self.engine = create_engine(database_url(centre))
        self._seen: dict[str, float] = {}

    def _statuses(self) -> dict[str, float]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Station.id, Station.last_status)).all()
        return {sid: float((status or {}).get("ts") or 0.0) for sid, status in rows}

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            now_statuses = self._statuses()
            now = time.time()
            for sid, ts in now_statuses.items():
                if ts and ts != self._seen.get(sid):
                    self._seen[sid] = ts
                    if self.active:
                        self.lags.append((now - ts) * 1000)

    def settle(self, last_ts: dict[str, float], events_sent: int, timeout: float) -> dict[str, Any]:
        """Wait until every station's last status and every event is stored (or ``timeout``)."""
        started = time.monotonic()
        while True:
            statuses = self._statuses()
            stale = sorted(sid for sid, ts in last_ts.items() if abs(statuses.get(sid, 0.0) - ts) > 1e-6)
            with self.engine.connect() as conn:
                events = conn.scalar(select(func.count()).select_from(Event).where(
                    Event.source == "mqtt", Event.kind == "bench_tick"))
            if (not stale and events >= events_sent) or time.monotonic() - started > timeout:
                return {"stale_stations": stale, "events": int(events),
                        "seconds": round(time.monotonic() - started, 2)}
            time.sleep(0.5)


class BrokerPeer(_Probe):
    """A bare subscriber of every station's status, as the edge user: publish to delivery."""

    def __init__(self, centre: Any):
        super().__init__()
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-peer-{os.getpid()}")
        client.username_pw_set("edge", centre.secrets()["edge_mqtt"])
        client.on_connect = lambda c, *a: c.subscribe(topics.status_wildcard(centre.centre), 1)
        client.on_message = self._message
        client.connect("127.0.0.1", centre.ports.mqtt, keepalive=30)
        client.loop_start()
        self.client = client

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        if not self.active or message.retain:
            return
        try:
            ts = float(json.loads(message.payload)["ts"])
        except (ValueError, KeyError, TypeError):
            return
        if ts > 0:  # a last will carries none
            self.lags.append((time.time() - ts) * 1000)

    def _run(self) -> None:
        self._stop.wait()
        self.client.disconnect()
        self.client.loop_stop()


def staff_session(centre: Any, login: dict[str, str]):
    session = pinned_session(centre.fingerprint)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      session.get(f"{centre.web_url}/staff/login", timeout=30).text).group(1)
    r = session.post(f"{centre.web_url}/staff/login", timeout=30,
                     headers={"Referer": f"{centre.web_url}/staff/login"},  # CSRF over HTTPS wants it
                     data={"username": login["username"], "password": login["password"], "csrf_token": token})
    if "/staff/login" in r.url:
        raise RuntimeError("the benchmark's staff sign-in failed")
    return session


class StreamClient(_Probe):
    """The dashboards' SSE stream, signed in: a tile's age (from its status's publish) on arrival."""

    def __init__(self, centre: Any, login: dict[str, str]):
        super().__init__()
        self.session = staff_session(centre, login)
        self.url = f"{centre.web_url}/staff/api/stream"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.session.get(self.url, stream=True, timeout=30) as r:
                    event = None
                    for line in r.iter_lines(decode_unicode=True):
                        if self._stop.is_set():
                            return
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: ") and event == "tile" and self.active:
                            ts = json.loads(line[6:]).get("status_ts")
                            if ts:
                                self.lags.append((time.time() - ts) * 1000)
            except Exception as exc:  # noqa: BLE001 - reconnect, as a browser does
                logger.warning("dashboard stream: %s", exc)
                time.sleep(1)


PAGE_HOOK = """
window.__lags = [];
(() => {
  const Native = window.EventSource;
  function Hooked(url, opts) {
    const source = new Native(url, opts);
    source.addEventListener("tile", (e) => {
      const t = JSON.parse(e.data);
      if (t.status_ts) window.__lags.push(Date.now() - t.status_ts * 1000);
    });
    return source;
  }
  Hooked.prototype = Native.prototype;
  Hooked.CONNECTING = Native.CONNECTING; Hooked.OPEN = Native.OPEN; Hooked.CLOSED = Native.CLOSED;
  window.EventSource = Hooked;
})();
"""


class DashboardPage:
    """The live room in headless Chromium (the page a proctor opens), with every tile live."""

    def __init__(self, centre: Any, login: dict[str, str], stations: int):
        self.centre, self.login, self.stations = centre, login, stations
        self._pw = self._browser = self.page = None

    def open(self) -> dict[str, float]:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        context = self._browser.new_context(ignore_https_errors=True, viewport={"width": 1920, "height": 1080})
        page = context.new_page()
        page.add_init_script(PAGE_HOOK)
        page.goto(f"{self.centre.web_url}/staff/login")
        page.fill("input[name=username]", self.login["username"])
        page.fill("input[name=password]", self.login["password"])
        page.click("input[type=submit]")
        page.wait_for_load_state()
        started = time.perf_counter()
        page.goto(f"{self.centre.web_url}/staff/")
        page.wait_for_function(f"document.querySelectorAll('#stations [data-station][data-online=true]').length"
                               f" === {self.stations}", timeout=120_000)
        painted = (time.perf_counter() - started) * 1000
        page.evaluate("window.__lags.splice(0)")
        self.page = page
        return {"first_paint_ms": round(painted, 1)}

    def lags(self) -> list[float]:
        return [] if self.page is None else list(self.page.evaluate("window.__lags.splice(0)"))

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._pw is not None:
            self._pw.stop()


def _tree(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def _usage(pids: list[int]) -> tuple[float, float]:
    cpu = rss = 0.0
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page / 1e6
        except (OSError, IndexError, ValueError):
            continue
    return cpu, rss


def process_usage(centre: Any, names: list[str], simulators: list[Any]) -> dict[str, Any]:
    """CPU seconds so far and resident MB of each edge process (with its children) and of the simulator."""
    cpu, rss = {}, {}
    for name in names:
        proc = centre.processes.get(name)
        if proc is not None:
            cpu[name], rss[name] = _usage(_tree(proc.pid))
    sim_cpu, sim_rss = _usage([p.pid for p in simulators])
    cpu["simulator"], rss["simulator"] = sim_cpu, sim_rss
    return {"at": time.monotonic(), "cpu": cpu, "rss_mb": {k: round(v, 1) for k, v in rss.items()}}
