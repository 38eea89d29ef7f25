"""The simulated stations of ``bench/edge_scale.py``: one process runs a slice of them.

Each station is the station's own clients, not a copy: ``station.link.StatusPublisher`` (its own
MQTT login over the broker's TLS listener, pinned to the edge's certificate; retained status with
a last will) and ``station.link.EdgeClient`` (the station API with its bearer token, pinned
HTTPS). What each does, phase-shifted so the room does not pulse:
- its status every second (QoS 1, retained; ``ts`` is the publish time, the lag's origin);
- an event every ``event_seconds`` (QoS 1, a numbered ``bench_tick``);
- a 320 px camera snapshot every 5 s (QoS 0), the same JPEG for all;
- the API as a station polls it (``station/runtime/edge.py``, ``station/messages.py``): the clock
  (``GET /time``) every 5 s for its first 30 s (until the drift is fitted), then every 30 s; its
  help messages every 30 s (MQTT is up, so replies are pushed); on a pool of threads.
The results (what was sent, the last status ``ts`` of each station, every API latency) go to a
JSON file when the ``stop`` event is set; the processes stay connected until ``finish`` is set, so
the last statuses are not replaced by the last will while they are being checked.
"""
from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from examkiosk_wire.topics import StationStatus
from station.link import EdgeClient, StatusPublisher
from station.link.errors import EdgeRejected, EdgeUnavailable
from station.vision.snapshot import snapshot_jpeg

logger = logging.getLogger("bench.edge_scale.stations")

STATUS_SECONDS = 1.0
SNAPSHOT_SECONDS = 5.0
API_ROUTES = {"time": 30.0, "messages": 30.0}
CLOCK_FAST_SECONDS, CLOCK_FAST_FOR = 5.0, 30.0  # the clock's first syncs, until its drift is fitted


def _snapshot() -> bytes:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :, 1] = np.linspace(40, 200, 640, dtype=np.uint8)[None, :]
    frame[120:360, 220:420] = (60, 90, 180)
    return snapshot_jpeg(frame)


def _status(sid: str, n: int) -> StationStatus:
    return StationStatus(station=sid, online=True, state="answering", lot=n % 40 + 1, question=1 + n // 60 % 5,
                         time_left=float(600 - n % 600), mic_level=0.3, backlog=0, disk_free_mb=9000,
                         clock_offset_ms=0.2, clock_uncertainty_ms=0.3, version="bench", ts=time.time())


def run_stations(spec: dict[str, Any], ready, go, stop, finish, out_path: str) -> None:
    """The body of one simulator process (``multiprocessing``, fork)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(processName)s %(message)s")
    stations = spec["stations"]
    publishers: dict[str, StatusPublisher] = {}
    for st in stations:
        publisher = StatusPublisher("127.0.0.1", spec["mqtt_tls_port"], st["id"], st["mqtt"], spec["centre"], st["id"],
                                    version="bench", tls=True, fingerprint=spec["fingerprint"], keepalive=30)
        publisher.start()
        publishers[st["id"]] = publisher
    deadline = time.monotonic() + spec["connect_timeout"]
    for sid, publisher in publishers.items():
        if not publisher.wait_connected(max(0.1, deadline - time.monotonic())):
            logger.error("station %s did not connect to the broker", sid)
    clients = {st["id"]: EdgeClient(spec["api_url"], st["token"], timeout=10.0, fingerprint=spec["fingerprint"])
               for st in stations}
    ready.set()
    go.wait()

    sent: dict[str, int] = {"status": 0, "event": 0, "snapshot": 0}
    last_ts: dict[str, float] = {}
    events_sent: dict[str, int] = {}
    api: dict[str, list[float]] = {route: [] for route in API_ROUTES}
    api_errors: dict[str, int] = {route: 0 for route in API_ROUTES}
    lock = threading.Lock()
    jpeg = _snapshot()

    def call(sid: str, route: str) -> None:
        client = clients[sid]
        started = time.perf_counter()
        try:
            if route == "time":
                client.time()
            else:
                client.messages(0)
        except (EdgeUnavailable, EdgeRejected) as exc:
            with lock:
                api_errors[route] += 1
            logger.warning("%s %s: %s", sid, route, exc)
            return
        with lock:
            api[route].append((time.perf_counter() - started) * 1000)

    pool = ThreadPoolExecutor(max_workers=spec["api_threads"])
    count = len(stations)
    start = time.monotonic()
    queue: list[tuple[float, int, str, str]] = []
    for i, st in enumerate(stations):
        phase = (i + spec["phase"]) / max(count, 1)
        queue.append((start + phase * STATUS_SECONDS, i, st["id"], "status"))
        queue.append((start + phase * SNAPSHOT_SECONDS, i, st["id"], "snapshot"))
        queue.append((start + phase * spec["event_seconds"], i, st["id"], "event"))
        queue.append((start + phase * CLOCK_FAST_SECONDS, i, st["id"], "time"))
        queue.append((start + phase * API_ROUTES["messages"], i, st["id"], "messages"))
    heapq.heapify(queue)
    ticks: dict[str, int] = {}
    behind = 0.0
    while queue and not stop.is_set():
        due, i, sid, what = heapq.heappop(queue)
        wait = due - time.monotonic()
        if wait > 0:
            if stop.wait(wait):
                break
        else:
            behind = max(behind, -wait)
        publisher = publishers[sid]
        if what == "status":
            n = ticks[sid] = ticks.get(sid, 0) + 1
            status = _status(sid, n)
            publisher.publish_status(status)
            last_ts[sid] = status.ts
            sent["status"] += 1
            heapq.heappush(queue, (due + STATUS_SECONDS, i, sid, what))
        elif what == "snapshot":
            publisher.publish_snapshot(jpeg)
            sent["snapshot"] += 1
            heapq.heappush(queue, (due + SNAPSHOT_SECONDS, i, sid, what))
        elif what == "event":
            n = events_sent[sid] = events_sent.get(sid, 0) + 1
            publisher.publish_event("bench_tick", {"n": n})
            sent["event"] += 1
            heapq.heappush(queue, (due + spec["event_seconds"], i, sid, what))
        else:
            pool.submit(call, sid, what)
            every = CLOCK_FAST_SECONDS if what == "time" and due - start < CLOCK_FAST_FOR else API_ROUTES[what]
            heapq.heappush(queue, (due + every, i, sid, what))
    pool.shutdown(wait=True, cancel_futures=True)  # calls still queued at the stop are not made
    with open(out_path, "w") as out:
        json.dump({"sent": sent, "last_ts": last_ts, "events_sent": events_sent, "api": api, "api_errors": api_errors,
                   "schedule_behind_s": round(behind, 3),
                   "disconnected": sorted(sid for sid, p in publishers.items() if not p.connected)}, out)
    finish.wait()
    for publisher in publishers.values():  # no goodbye: the bench has already read what it needs
        publisher._client.loop_stop()
    for client in clients.values():
        client.close()


def run_api_probe(spec: dict[str, Any], go, stop, out_path: str) -> None:
    """One station's client in a process of its own asking ``GET /time`` every 0.2 s: what a station
    sees of the API, free of the simulator's own contention (hundreds of threads per process)."""
    client = EdgeClient(spec["api_url"], spec["token"], timeout=10.0, fingerprint=spec["fingerprint"])
    go.wait()
    times: list[float] = []
    errors = 0
    while not stop.wait(0.2):
        started = time.perf_counter()
        try:
            client.time()
        except (EdgeUnavailable, EdgeRejected):
            errors += 1
            continue
        times.append((time.perf_counter() - started) * 1000)
    client.close()
    with open(out_path, "w") as out:
        json.dump({"ms": times, "errors": errors}, out)
