"""Benchmark of a staff sign-in flood against the station API; prints one JSON line on stdout (logs on stderr).

Issue 11, finding 3: 200 parallel wrong-password sign-ins stalled the stations (``GET /api/v1/time``
took 9.9 s) because stations and staff shared one gunicorn instance, and the lockout recorded 12
failures against a limit of 5.

What it starts, all on loopback and all stopped at the end: a private ``redis-server`` on a free
port, and per configuration a migrated SQLite edge (``flask db upgrade`` in a subprocess, as the
unit's ``ExecStartPre``) with a staff user, a centre and an enrolled station (its bearer token),
served over HTTPS with the edge's own certificate by gunicorn:

- ``split``, as the units run it: two instances of 2 workers x 8 threads, ``serve = "stations"``
  (examkiosk-edge-api) and ``serve = "staff"`` (examkiosk-edge-web, at the unit's ``Nice=5``). Each
  instance reads its own config file that differs only in ``serve`` (the units set the same key
  with ``EXAMKIOSK_SERVE``);
- ``shared``, the peer, as before the change: one instance with ``serve = "all"``, 2 workers x 4
  threads, that both the flood and the station talk to. Same code, same limiter, own Redis database.

The flood: 200 threads, each with a ``requests.Session`` of its own, fetch the sign-in page (a real
CSRF token), wait at a barrier, then post a wrong password for the same user, all at once. Meanwhile
a station, in a process of its own (so the flood's threads do not hold its GIL), calls
``GET /api/v1/time`` with its bearer token every 20 ms over one keep-alive session; its latencies
while the flood runs (first page fetch to last answer) are ``station_api_ms_p50``/``_p99``
(``_p99_posts``: while the posts alone run). The flood's client runs in a process of its own at
nice 10: in a centre the flood comes from other machines, whose CPU is not the edge's. A client
thread that gets the CPU too late to send its TLS hello is dropped by gunicorn (it closes
connections that send nothing for a while): those show as ``SSLError`` in ``answers``; they never
reached the app.

Reports: the split run's station latencies, ``failures_recorded`` (``login_attempt`` rows with
ok = false for the user, read from the database afterwards) against ``limit`` (MAX_FAILURES),
``refused`` (429 answers), ``audit_rows_lockout`` (``staff_login_locked`` events), the same for
the peer under ``peer_*``, and the 1-minute load average before and after (other work on the machine
skews every figure). Targets (issue 11): station_api_ms_p99 < 200 during the flood, failures_recorded
== limit.

Run: ``.venv/bin/python bench/login_flood.py`` (``--logins 200``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository, for tests.services
from examkiosk_wire.pinning import certificate_fingerprint, pinned_session  # noqa: E402
from provisioning.toml_file import write_toml  # noqa: E402
from tests.services import EdgeWebProc, RedisProc, start_edge_web, start_redis  # noqa: E402

# The edge's own modules are imported where the edge is prepared and read, not here: the station
# probe and the flood run in spawned processes that import this module, and they stay as light as
# a station or a browser (no Flask app, no SQLAlchemy models).

logger = logging.getLogger("bench.login_flood")

USER = "flood-target"
PASSWORD = "the right password, not tried"
TOKEN = "bench-station-token-0123456789abcdef"
STATION = "st-bench"
PROBE_INTERVAL = 0.02
CLIENT_NICE = 10
STAFF_NICE = 5  # Nice= of systemd/examkiosk-edge-web.service
REQUEST_TIMEOUT = 60.0
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass
class Edge:
    """One configuration: where the flood goes, where the station calls, the database."""

    name: str
    staff_url: str
    api_url: str
    fp: str
    database: Path
    servers: list[EdgeWebProc]


# --- the edge ---------------------------------------------------------------------------------------

def edge_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_") and k != "DATABASE_URL"}
    env.update(EXAMKIOSK_EDGE_CONFIG=str(config), PYTHONPATH=str(REPO))
    return env


def prepare_edge(root: Path, redis_url: str, serves: list[str]) -> tuple[dict[str, Path], Any]:
    """A config file per ``serve`` (otherwise alike), the migrated database, a user and a station."""
    root.mkdir(parents=True)
    common = {
        "secret_key": "bench-secret-key", "database_url": f"sqlite:///{root / 'edge.db'}",
        "data_dir": str(root / "data"), "redis_url": redis_url, "testing": False,
        "discovery": {"enabled": False}, "storage": {"directory": str(root / "central")},
    }
    configs = {}
    for serve in serves:
        configs[serve] = root / f"edge-{serve}.toml"
        write_toml(configs[serve], {**common, "serve": serve})
    first = configs[serves[0]]
    migrate = subprocess.run([sys.executable, "-m", "flask", "--app", "edge_server:create_app", "db", "upgrade"],
                             env=edge_env(first), cwd=root, capture_output=True, text=True, timeout=300,
                             check=False)
    if migrate.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{migrate.stderr[-3000:]}")

    from edge_server import create_app  # the edge only in this process (see the imports above)
    from edge_server.config import load_settings
    from edge_server.extensions import db
    from edge_server.identity import edge_fingerprint
    from edge_server.models import Centre, StaffRole
    from edge_server.services.staff import create_user
    from edge_server.services.stations import create_station

    settings = load_settings(first)
    app = create_app(settings)
    with app.app_context():
        db.session.add(Centre(id="c1", name="Bench centre"))
        create_station(db.session, STATION, "c1", token=TOKEN)
        create_user(db.session, USER, PASSWORD, StaffRole.PROCTOR, "c1")
        db.session.commit()
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    edge_fingerprint(settings)  # makes the TLS certificate, as the unit's ExecStartPre does
    return configs, settings


@contextlib.contextmanager
def running_edge(name: str, root: Path, redis_url: str, instances: dict[str, tuple[int, int]]) -> Iterator[Edge]:
    """``instances``: serve -> (workers, threads), each its own gunicorn; the staff instance at the
    unit's ``Nice=`` (examkiosk-edge-web.service)."""
    configs, settings = prepare_edge(root, redis_url, list(instances))
    servers: dict[str, EdgeWebProc] = {}
    try:
        for serve, (workers, threads) in instances.items():
            servers[serve] = start_edge_web(configs[serve], root / f"gunicorn-{serve}.log", workers=workers,
                                            threads=threads, certfile=settings.tls_path)
            if serve == "staff":
                renice(servers[serve].proc.pid, STAFF_NICE)
            logger.info("%s: serve=%s under gunicorn %dx%d at %s", name, serve, workers, threads, servers[serve].url)
        staff = servers.get("staff", servers.get("all"))
        api = servers.get("stations", servers.get("all"))
        yield Edge(name, staff.url, api.url, certificate_fingerprint(settings.tls_path), root / "edge.db",
                   list(servers.values()))
    finally:
        for server in servers.values():
            server.stop()
            if server.proc.returncode not in (0, -15):
                logger.warning("gunicorn exited with %s; its log:\n%s", server.proc.returncode, server.log()[-3000:])


def renice(master: int, nice: int) -> None:
    """A gunicorn master and its workers (later ones inherit the master's)."""
    os.setpriority(os.PRIO_PROCESS, master, nice)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, int(child), nice)


def database_counts(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {
            "failures_recorded": conn.execute("SELECT COUNT(*) FROM login_attempt WHERE username = ? AND NOT ok",
                                              (USER,)).fetchone()[0],
            "audit_rows_lockout": conn.execute("SELECT COUNT(*) FROM event WHERE kind = 'staff_login_locked'")
                                      .fetchone()[0],
            "audit_rows": conn.execute("SELECT COUNT(*) FROM event").fetchone()[0],
        }


# --- the station, in a process of its own ---------------------------------------------------------

def station_probe(api_url: str, fp: str, stop: Any, out: Any) -> None:
    """``GET /api/v1/time`` every PROBE_INTERVAL until ``stop``; sends [(start, ms, status)] to ``out``."""
    session = pinned_session(fp)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    samples: list[tuple[float, float, int]] = []
    while not stop.is_set():
        start = time.time()
        t0 = time.perf_counter()
        try:
            status = session.get(f"{api_url}/api/v1/time", headers=headers, timeout=REQUEST_TIMEOUT).status_code
        except requests.RequestException:
            status = 0  # reset, refused or timed out
        ms = (time.perf_counter() - t0) * 1000
        samples.append((start, ms, status))
        time.sleep(max(0.0, PROBE_INTERVAL - ms / 1000))
    out.send(samples)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# --- the flood --------------------------------------------------------------------------------------

def flood(staff_url: str, fp: str, logins: int, out: Any) -> None:
    """``logins`` wrong-password sign-ins at once; sends the answers' statuses and the times the flood
    started, had every sign-in page, and ended to ``out``. Runs in a process of its own at
    CLIENT_NICE: in a centre the flood comes from other machines, whose CPU is not the edge's."""
    os.nice(CLIENT_NICE)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    barrier = threading.Barrier(logins + 1, timeout=3 * REQUEST_TIMEOUT)
    statuses: Counter = Counter()
    lock = threading.Lock()

    def record(result: int | str) -> None:
        with lock:
            statuses[result] += 1

    def one() -> None:
        session = pinned_session(fp)
        token = None
        try:
            page = session.get(f"{staff_url}/staff/login", timeout=REQUEST_TIMEOUT)
            token = _CSRF.search(page.text).group(1)
        except (requests.RequestException, AttributeError) as exc:
            record(f"page {type(exc).__name__}")
        # A new connection for the post, as a browser's after a pause: gunicorn closes idle
        # keep-alive connections after 2 s, and the wait at the barrier may be longer.
        session.close()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()  # every thread, so one failed page does not hold the others
        if token is None:
            return
        try:
            # Over HTTPS Flask-WTF also wants the Referer a browser sends (WTF_CSRF_SSL_STRICT).
            resp = session.post(f"{staff_url}/staff/login", allow_redirects=False, timeout=REQUEST_TIMEOUT,
                                headers={"Referer": f"{staff_url}/staff/login"},
                                data={"username": USER, "password": "wrong password!", "csrf_token": token})
            record(resp.status_code)
        except requests.RequestException as exc:
            record(type(exc).__name__)
            logger.warning("sign-in post failed: %s", exc)
        finally:
            session.close()

    threads = [threading.Thread(target=one, name=f"login-{i}", daemon=True) for i in range(logins)]
    start = time.time()
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    pages = time.time()
    deadline = time.monotonic() + 3 * REQUEST_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    out.send((dict(statuses), start, pages, time.time()))


def run(edge: Edge, logins: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    receive, send = ctx.Pipe(duplex=False)
    probe = ctx.Process(target=station_probe, args=(edge.api_url, edge.fp, stop, send), daemon=True)
    probe.start()
    try:
        time.sleep(1.5)  # the probe is up and its connection open
        flood_receive, flood_send = ctx.Pipe(duplex=False)
        client = ctx.Process(target=flood, args=(edge.staff_url, edge.fp, logins, flood_send), daemon=True)
        client.start()
        if not flood_receive.poll(5 * REQUEST_TIMEOUT):
            client.kill()
            raise RuntimeError("the flood did not end in time")
        statuses, start, pages, end = flood_receive.recv()
        client.join(10)
        time.sleep(0.3)
    finally:
        stop.set()
    samples = receive.recv() if receive.poll(REQUEST_TIMEOUT + 10) else []
    probe.join(10)
    if probe.is_alive():
        probe.kill()
    during = [(ms, status) for (t, ms, status) in samples if start <= t <= end]
    posting = [ms for (t, ms, status) in samples if pages <= t <= end]
    before = [ms for (t, ms, status) in samples if t < start]
    latencies = [ms for ms, _ in during]
    result = {
        "station_api_ms_p50": round(percentile(latencies, 50), 1),
        "station_api_ms_p99": round(percentile(latencies, 99), 1),
        "station_api_ms_max": round(max(latencies, default=float("nan")), 1),
        "station_api_ms_p50_idle": round(statistics.median(before), 1) if before else None,
        "station_samples": len(during),
        "station_errors": sum(1 for _, status in during if status != 200),
        "station_api_ms_p99_posts": round(percentile(posting, 99), 1),
        "flood_s": round(end - start, 2),
        "flood_posts_s": round(end - pages, 2),
        "refused": statuses.get(429, 0),
        "answers": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        **database_counts(edge.database),
    }
    logger.info("%s: %s", edge.name, result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logins", type=int, default=200, help="parallel wrong-password sign-ins (default 200)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # SIGTERM unwinds like Ctrl-C, so the gunicorn and redis children are stopped and the temp dir removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not shutil.which("redis-server"):
        parser.error("redis-server is not installed (apt-get install redis-server)")

    from edge_server.services.staff import MAX_FAILURES  # the edge only in this process (see the imports above)

    load_before = round(os.getloadavg()[0], 2)
    root = Path(tempfile.mkdtemp(prefix="ek-bench-login-"))
    redis: RedisProc | None = None
    try:
        redis = start_redis(root / "redis")
        base = f"redis://127.0.0.1:{redis.port}"
        with running_edge("split", root / "split", f"{base}/0", {"stations": (2, 8), "staff": (2, 8)}) as edge:
            split = run(edge, args.logins)
        with running_edge("shared", root / "shared", f"{base}/1", {"all": (2, 4)}) as edge:
            shared = run(edge, args.logins)
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "logins": args.logins,
        "server": "split: stations 2x8 + staff 2x8 gunicorn gthread; peer: one shared 2x4",
        "limit": MAX_FAILURES,
        **split,
        **{f"peer_{key}": value for key, value in shared.items()},
        "load_avg_1m": [load_before, round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
