"""Benchmark of one edge holding a room of stations; prints one JSON line on stdout (logs on stderr).

The edge: a whole demo centre without its station agents (``provisioning.demo.DemoCentre``:
gunicorn station API and staff pages, 2 workers x 8 threads each as the systemd units run them, over TLS; the edge daemon with
its MQTT bridge; the RQ worker; Mosquitto with a dynamic-security login per station and its TLS
listener; Redis), on free loopback ports, on SQLite and then on PostgreSQL (``--database``).

The room: ``--stations`` (1000) simulated stations in ``--processes`` (4) processes
(``bench/edge_scale_stations.py``: the station's own MQTT publisher and API client), each
enrolled (token and MQTT login of its own), publishing its status at 1 Hz, an event every
``--event-seconds`` (20), a snapshot every 5 s, and polling the API as a station does, for
``--seconds`` (60). Segment uploads are not part of this run (``bench/upload.py`` measures them).

Reports, per database:
- ``lost``: events the station sent that are not in the database, plus stations whose last
  status is not the one in the database, after the room stops (goal 0);
- ``bridge_lag_ms_p50/p99``: publish (the status's ``ts``) to the database, seen by a sampler
  reading every station's row every ``SAMPLE_SECONDS`` (the figure includes up to that much);
  ``stream_lag_ms_p50/p99``: publish to a tile on the dashboards' SSE stream (a signed-in
  client); ``broker_lag_ms_p99``, the peer: publish to a bare MQTT subscriber of the same topics,
  the floor any bridge sits on;
- ``api_ms_p50/p99`` per route and over all, as the simulated stations saw them (their own
  processes' contention included), with errors; ``api_probe_ms_p50/p99``: ``GET /time`` every
  0.2 s from one station's client in a process of its own (goal p99 <= 100 ms);
- ``dashboard_first_paint_ms`` (Chromium opening the live room until every tile is drawn) and
  ``dashboard_update_lag_ms_p50/p99`` (publish to the page receiving the tile; the page redraws
  within its 100 ms batch after that), measured with all tiles live;
- ``cpu_s`` and ``rss_mb`` per edge process (with its children) and of the simulator, over the
  measured window; ``simulator_behind_s``: how late the simulator's schedule ran at worst (if it
  is large, the simulator and not the edge was the limit).

Run: ``.venv/bin/python -m bench.edge_scale --stations 1000`` (``--database sqlite`` for one).
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.edge_scale_probes import BrokerPeer, DashboardPage, DatabaseSampler, StreamClient, percentile, process_usage
from bench.edge_scale_stations import run_api_probe, run_stations
from provisioning.demo import DemoCentre, Ports, free_port

logger = logging.getLogger("bench.edge_scale")
PG_ADMIN = os.environ.get("EXAMKIOSK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres:examkiosk@127.0.0.1:5432/test")


def _pg_database() -> tuple[str, Any]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"ek_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), drop


def _wait_bridge(centre: DemoCentre, timeout: float = 120.0) -> None:
    """Until the edge daemon's bridge is connected to the broker (events sent before would have no
    subscriber yet)."""
    log = centre.logs / "edge-daemon.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        centre.check_alive()
        if log.exists() and "MQTT connected" in log.read_text(errors="replace"):
            time.sleep(1.0)  # its SUBACK follows the CONNACK
            return
        time.sleep(0.2)
    raise TimeoutError(f"the edge daemon's bridge did not connect within {timeout:.0f} s; see {log}")


def run_room(args: argparse.Namespace, database: str) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"edge-scale-{database}-"))
    drop = None
    url = None
    if database == "postgresql":
        url, drop = _pg_database()
    centre = DemoCentre(root, ports=Ports(web=free_port(), kiosk=free_port(), mqtt=free_port(), mqtt_tls=free_port(),
                                        redis=free_port()),
                      centre=f"s{uuid.uuid4().hex[:6]}", stations=args.stations, start_in=3600,
                      database_url=url, daemon_interval=5.0, start_agents=False, web_threads=8)
    try:
        started = time.monotonic()
        login = centre.prepare()
        centre.start()
        _wait_bridge(centre)
        logger.info("%s: edge up with %d stations enrolled in %.0f s", database, args.stations,
                    time.monotonic() - started)
        return measure(args, centre, login, database)
    finally:
        centre.stop()
        if drop is not None:
            drop()


def measure(args: argparse.Namespace, centre: DemoCentre, login: dict[str, str], database: str) -> dict[str, Any]:
    sec = centre.secrets()
    stations = [{"id": sid, "mqtt": sec[f"{sid}_mqtt"], "token": sec[f"{sid}_token"]} for sid in centre.station_ids]
    ctx = mp.get_context("fork")
    go, stop, finish = (ctx.Event() for _ in range(3))
    procs, outs, readies = [], [], []
    per = -(-len(stations) // args.processes)
    for k in range(args.processes):
        part = stations[k * per:(k + 1) * per]
        if not part:
            continue
        out = centre.root / f"sim-{k}.json"
        ready_k = ctx.Event()
        spec = {"stations": part, "centre": centre.centre, "mqtt_tls_port": centre.ports.mqtt_tls,
                "fingerprint": centre.fingerprint, "api_url": centre.api_url, "api_threads": args.api_threads,
                "event_seconds": args.event_seconds, "connect_timeout": 180.0, "phase": k / args.processes}
        proc = ctx.Process(target=run_stations, args=(spec, ready_k, go, stop, finish, str(out)), name=f"sim-{k}",
                           daemon=True)
        proc.start()
        procs.append(proc)
        outs.append(out)
        readies.append(ready_k)
    # A station apart (st-01's token, its own process): the API's latency free of the simulator's load.
    probe_out = centre.root / "api-probe.json"
    probe = ctx.Process(target=run_api_probe, daemon=True, name="api-probe",
                        args=({"api_url": centre.api_url, "token": stations[0]["token"],
                               "fingerprint": centre.fingerprint}, go, stop, str(probe_out)))
    probe.start()
    try:
        result = _measure(args, centre, login, database, procs, outs, readies, (go, stop, finish))
        probe.join(30)
        probed = json.loads(probe_out.read_text()) if probe_out.exists() else {"ms": [], "errors": None}
        result.update(api_probe_ms_p50=percentile(probed["ms"], 50), api_probe_ms_p99=percentile(probed["ms"], 99),
                      api_probe_n=len(probed["ms"]), api_probe_errors=probed["errors"])
        return result
    finally:
        for proc in [*procs, probe]:
            if proc.is_alive():
                proc.kill()
                proc.join(10)


def _measure(args, centre, login, database, procs, outs, readies, events) -> dict[str, Any]:
    stations = centre.station_ids
    for ready_k in readies:
        if not ready_k.wait(240):
            raise RuntimeError("the simulated stations did not all connect within 240 s")
    logger.info("%s: %d simulated stations connected", database, len(stations))

    peer = BrokerPeer(centre)
    sampler = DatabaseSampler(centre)
    stream = StreamClient(centre, login)
    page = DashboardPage(centre, login, len(stations)) if not args.no_browser else None
    try:
        sims, settled, painted, page_lags, before, after = _run_window(
            args, centre, procs, outs, events, peer, sampler, stream, page)
    finally:
        for probe in (peer, sampler, stream):
            probe.end()
        if page is not None:
            page.close()
    events_sent = sum(sim["sent"]["event"] for sim in sims)

    api = {route: [ms for sim in sims for ms in sim["api"][route]] for route in sims[0]["api"]}
    all_ms = [ms for values in api.values() for ms in values]
    window = after["at"] - before["at"]
    return {
        "stations": len(stations),
        "seconds": round(window, 1),
        "sent": {kind: sum(sim["sent"][kind] for sim in sims) for kind in ("status", "event", "snapshot")},
        "stored_events": settled["events"],
        "lost": (events_sent - settled["events"]) + len(settled["stale_stations"]),
        "lost_statuses": len(settled["stale_stations"]),
        "lost_events": events_sent - settled["events"],
        "settle_s": settled["seconds"],
        "bridge_lag_ms_p50": percentile(sampler.lags, 50), "bridge_lag_ms_p99": percentile(sampler.lags, 99),
        "stream_lag_ms_p50": percentile(stream.lags, 50), "stream_lag_ms_p99": percentile(stream.lags, 99),
        "broker_lag_ms_p99": percentile(peer.lags, 99),
        "api_ms_p50": percentile(all_ms, 50), "api_ms_p99": percentile(all_ms, 99),
        "api_routes": {route: {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99),
                               "errors": sum(sim["api_errors"][route] for sim in sims)} for route, v in api.items()},
        "dashboard_first_paint_ms": painted.get("first_paint_ms"),
        "dashboard_update_lag_ms_p50": percentile(page_lags, 50),
        "dashboard_update_lag_ms_p99": percentile(page_lags, 99),
        "cpu_s": {name: round(after["cpu"][name] - before["cpu"].get(name, 0.0), 1) for name in after["cpu"]},
        "cpu_share": {name: round((after["cpu"][name] - before["cpu"].get(name, 0.0)) / window, 2)
                      for name in after["cpu"]},
        "rss_mb": after["rss_mb"],
        "simulator_behind_s": max(sim["schedule_behind_s"] for sim in sims),
        "disconnected": sum(len(sim["disconnected"]) for sim in sims),
        "database": database,
    }


def _run_window(args, centre, procs, outs, events, peer, sampler, stream, page):
    """Let the room run: warm-up, the measured window with the dashboard open, then the stop and
    the wait until what was sent is stored."""
    go, stop, finish = events
    edge_names = ["edge-api", "edge-web", "edge-daemon", "edge-worker", "mosquitto", "redis"]
    before = process_usage(centre, edge_names, procs)
    go.set()
    t_go = time.monotonic()
    for probe in (peer, sampler, stream):
        probe.start()
    warm = min(10.0, args.seconds / 4)
    time.sleep(warm)  # every station has published; the window starts with the room in its stride
    for probe in (peer, sampler, stream):
        probe.begin()
    painted = page.open() if page is not None else {}
    time.sleep(max(0.0, args.seconds - (time.monotonic() - t_go)))
    after = process_usage(centre, edge_names, procs)
    page_lags = page.lags() if page is not None else []
    stop.set()
    deadline = time.monotonic() + 120
    while not all(out.exists() for out in outs) and time.monotonic() < deadline:
        time.sleep(0.2)
    sims = [json.loads(out.read_text()) for out in outs if out.exists()]
    if len(sims) != len(procs):
        raise RuntimeError("a simulator process ended without its results")
    last_ts = {sid: ts for sim in sims for sid, ts in sim["last_ts"].items()}
    events_sent = sum(sim["sent"]["event"] for sim in sims)
    settled = sampler.settle(last_ts, events_sent, timeout=30.0)
    finish.set()
    for proc in procs:
        proc.join(30)

    return sims, settled, painted, page_lags, before, after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window, warm-up included")
    parser.add_argument("--processes", type=int, default=4, help="simulator processes")
    parser.add_argument("--api-threads", type=int, default=16, help="API threads per simulator process")
    parser.add_argument("--event-seconds", type=float, default=20.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--no-browser", action="store_true", help="skip the dashboard in Chromium")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    load = os.getloadavg()[0]
    runs = {db: run_room(args, db) for db in databases}
    first = runs[databases[0]]
    out = {"bench": "edge_scale", "stations": args.stations,
           "lost": sum(r["lost"] for r in runs.values()),
           "bridge_lag_ms_p99": max(r["bridge_lag_ms_p99"] for r in runs.values()),
           "api_ms_p99": max(r["api_ms_p99"] for r in runs.values()),
           "api_probe_ms_p99": max(r["api_probe_ms_p99"] or 0 for r in runs.values()),
           "dashboard_update_lag_ms_p99": first["dashboard_update_lag_ms_p99"],
           "runs": runs, "cores": os.cpu_count(), "load_avg_1m": [round(load, 2), round(os.getloadavg()[0], 2)]}
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
