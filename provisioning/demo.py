"""`python -m provisioning.demo`: a whole demo centre on this machine, on real parts.

Starts a private Mosquitto (users and rights in its dynamic-security plugin; stations over TLS),
a private Redis, the edge web app under gunicorn twice as a centre runs it (the station API in one
instance, the staff pages in another), the edge daemon (MQTT bridge, zeroconf, scheduler), an RQ
worker and one station agent whose camera is a video file and whose microphone is a WAV file.
A process that dies is started again after a short delay, as systemd's ``Restart=on-failure``
does on the appliance (``provisioning.supervise``); Ctrl-C stops everything it started. The demo imports none of those programs: it runs each by
its console script (``provisioning.programs``) or the edge's ``flask`` CLI, in a process of its own.
The end-to-end tests start the same centre with short timers.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests

from examkiosk_wire.broker import write_broker_files
from examkiosk_wire.pinning import certificate_fingerprint, pinned_session
from provisioning import assets, programs
from provisioning.central_s3 import CentralS3, start_central_s3
from provisioning.demo_region import DemoRegion
from provisioning.processes import ProcessControl
from provisioning.supervise import Supervisor
from provisioning.toml_file import write_toml

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Ports:
    web: int = 8000  # the staff pages (what people open)
    kiosk: int = 8700  # station N serves its kiosk on kiosk + N - 1
    mqtt: int = 18830  # the edge's own, plain
    redis: int = 16379
    mqtt_tls: int = 18883  # the stations', TLS with the edge's certificate
    api: int = 0  # the station API (public_url, announced to stations); 0: a free port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class DemoCentre(ProcessControl):
    root: Path
    ports: Ports = field(default_factory=Ports)
    centre: str = "demo"
    start_in: float = 180.0
    question_seconds: int = 60
    segment_seconds: float = 3.0
    timing_mode: str = "per_question"
    interfaces: tuple[str, ...] = ("127.0.0.1",)
    database_url: str | None = None
    stations: int = 1
    extra_candidates: int = 0
    # Stations that also record the evidence camera (the demo video again, as a second camera).
    second_camera: tuple[str, ...] = ()
    # Stations that keep the liveness challenge on (the demo camera, a video of photos, fails it).
    liveness: tuple[str, ...] = ()
    # Seconds between the edge daemon's scheduler rounds (lots, sync re-queueing, retention).
    daemon_interval: float = 5.0
    storage: dict | None = None  # the edge's [storage]; None: the directory ``central_dir``
    # False: enrol and configure the stations but start only the edge side (a benchmark simulates them).
    start_agents: bool = True
    # Threads per gunicorn worker of each web instance (the systemd units run 8).
    web_threads: int = 4
    python: str = sys.executable
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # How each process was started (argv, station, extra environment), to start it again.
    spawned: dict[str, tuple[list[str], str | None, dict[str, str] | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ports.api:
            self.ports = replace(self.ports, api=free_port())

    # --- paths and secrets --------------------------------------------------------------------
    @property
    def edge_config(self) -> Path:
        return self.root / "edge.toml"

    @property
    def station_ids(self) -> list[str]:
        return [f"st-{n:02d}" for n in range(1, self.stations + 1)]

    def station_config(self, station_id: str) -> Path:
        return self.root / f"{station_id}.toml"

    def station_data(self, station_id: str) -> Path:
        return self.root / "stations" / station_id

    def kiosk_url(self, station_id: str | None = None) -> str:
        index = self.station_ids.index(station_id or self.station_ids[0])
        return f"http://127.0.0.1:{self.ports.kiosk + index}/"

    @property
    def central_dir(self) -> Path:
        return self.root / "central"

    @property
    def edge_data(self) -> Path:
        return self.root / "edge-data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def web_url(self) -> str:
        """The staff pages' instance. The edge serves HTTPS with its own certificate (``edge_server.tls``),
        as in a centre."""
        return f"https://127.0.0.1:{self.ports.web}"

    @property
    def api_url(self) -> str:
        """The station API's instance (``public_url``: what the daemon announces to stations)."""
        return f"https://127.0.0.1:{self.ports.api}"

    @property
    def tls_path(self) -> Path:
        return self.edge_data / "edge_tls.pem"

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.tls_path)

    @property
    def fingerprint_display(self) -> str:
        fp = self.fingerprint.upper()
        return ":".join(fp[i:i + 2] for i in range(0, len(fp), 2))

    def secrets(self) -> dict[str, str]:
        """Generated once per demo directory, reused by later runs."""
        path = self.root / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        values = {name: secrets.token_urlsafe(18) for name in ("secret_key", "edge_mqtt", "admin_password")}
        path.write_text(json.dumps(values, indent=2))
        path.chmod(0o600)
        return values

    @property
    def broker_dir(self) -> Path:
        """Mosquitto drops to its own user: its files must sit where that user can reach them."""
        if all(p.stat().st_mode & 0o001 for p in (self.root, *self.root.parents)):
            return self.root / "mosquitto"
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"examkiosk-broker-{digest}"

    def station_secret(self, sec: dict[str, str], station_id: str, what: str) -> str:
        key = f"{station_id}_{what}"
        if key not in sec:
            sec[key] = secrets.token_urlsafe(18)
            path = self.root / "secrets.json"
            path.write_text(json.dumps(sec, indent=2))
        return sec[key]

    def env(self, station_id: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_") and k != "DATABASE_URL"}
        env.update(EXAMKIOSK_EDGE_CONFIG=str(self.edge_config), PYTHONUNBUFFERED="1")
        if station_id:
            env["EXAMKIOSK_STATION_CONFIG"] = str(self.station_config(station_id))
        return env

    # --- preparation --------------------------------------------------------------------------
    def prepare(self) -> dict[str, str]:
        """Media, configuration, broker files, schema and demo data. Returns the staff login."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        media = self.root / "media"
        media.mkdir(exist_ok=True)
        built = assets.build_demo(media)
        sec = self.secrets()
        # Each run starts from fresh demo data: a new database, no recordings, new simulated stations.
        # The edge's TLS certificate stays, so its fingerprint does too.
        for stale in ("stations", "central", "edge-data/uploads", "edge-data/recordings", "edge-data/photos"):
            shutil.rmtree(self.root / stale, ignore_errors=True)
        if self.database_url is None:
            for suffix in ("", "-wal", "-shm"):
                (self.root / f"edge.db{suffix}").unlink(missing_ok=True)
        write_toml(self.edge_config, {
            "centre": self.centre, "centre_name": "演示考点 Demo centre", "secret_key": sec["secret_key"],
            "database_url": self.database_url or f"sqlite:///{self.root / 'edge.db'}",
            "data_dir": str(self.edge_data), "redis_url": f"redis://127.0.0.1:{self.ports.redis}/0",
            "public_url": self.api_url,
            # The edge's login is the broker's user admin: it adds and removes stations' users.
            "mqtt": {"host": "127.0.0.1", "port": self.ports.mqtt, "tls_port": self.ports.mqtt_tls,
                     "username": "edge", "password": sec["edge_mqtt"]},
            "storage": self.storage or {"backend": "directory", "directory": str(self.central_dir)},
            "discovery": {"enabled": True, "interfaces": list(self.interfaces),
                          "instance_name": f"examkiosk-{self.centre}"},
        })
        # The edge makes its certificate (kept across runs) with its own CLI, in a process of its own.
        said = self.flask("tls-certificate")
        if not self.tls_path.is_file():
            raise RuntimeError(f"the edge's certificate is not at {self.tls_path}: flask tls-certificate said {said!r}")
        fingerprint = self.fingerprint
        tokens = {sid: self.station_secret(sec, sid, "token") for sid in self.station_ids}
        mqtt_users = {"edge": sec["edge_mqtt"]}
        for index, sid in enumerate(self.station_ids):
            mqtt_users[sid] = self.station_secret(sec, sid, "mqtt")
            config = {
                "station_id": sid, "centre": self.centre, "data_dir": str(self.station_data(sid)),
                "edge": {"api": "", "fingerprint": fingerprint, "token": tokens[sid],
                         "discovery_interfaces": list(self.interfaces), "discovery_timeout": 5.0},
                "mqtt": {"username": sid, "password": mqtt_users[sid]},
                "camera": {"kind": "file", "source": str(built["camera"]), "width": 640, "height": 480, "fps": 25},
                "audio": {"kind": "file", "source": str(built["mic"]), "rate": 48000, "channels": 1},
                "recording": {"segment_seconds": self.segment_seconds},
                # The demo camera is a video of still photos, which cannot turn its head when the
                # liveness challenge asks: the challenge is off here and on everywhere else.
                "face": {"liveness": sid in self.liveness},
                "kiosk": {"host": "127.0.0.1", "port": self.ports.kiosk + index},
            }
            if sid in self.second_camera:
                config["second_camera"] = dict(config["camera"])
            write_toml(self.station_config(sid), config)
        write_broker_files(self.broker_dir, port=self.ports.mqtt, centre=self.centre, users=mqtt_users,
                           tls_port=self.ports.mqtt_tls, tls_pem=self.tls_path)
        self.flask("db", "upgrade")
        self.flask("demo-seed", "--start-in", str(self.start_in), "--question-seconds", str(self.question_seconds),
                   *[f"--station={sid}:{token}" for sid, token in tokens.items()], "--assets", str(media),
                   "--timing-mode", self.timing_mode, "--extra-candidates", str(self.extra_candidates))
        admin = subprocess.run(
            [self.python, "-m", "flask", "--app", "edge_server:create_app", "create-admin", "--username", "admin",
             "--role", "centre_admin"], env=dict(self.env(), EXAMKIOSK_ADMIN_PASSWORD=sec["admin_password"]),
            capture_output=True, text=True)
        if admin.returncode != 0:
            raise RuntimeError(f"create-admin failed: {admin.stderr.strip()}")
        return {"username": "admin", "password": sec["admin_password"]}

    def flask(self, *args: str) -> str:
        proc = subprocess.run([self.python, "-m", "flask", "--app", "edge_server:create_app", *args], env=self.env(),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{proc.stderr.strip()}")
        return proc.stdout

    # --- processes ----------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], station_id: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, env={**self.env(station_id), **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.root, start_new_session=True)
        log.close()
        self.processes[name] = proc
        self.spawned[name] = (argv, station_id, env)
        return proc

    def start(self) -> None:
        agents = self.station_ids if self.start_agents else []
        ports = dict(vars(self.ports), **{f"kiosk {sid}": self.ports.kiosk + i for i, sid in enumerate(agents)})
        busy = [f"{name} {port}" for name, port in ports.items() if port_in_use(port)]
        if busy:
            raise RuntimeError(f"ports already in use: {', '.join(busy)} (is another demo running?)")
        try:
            self.spawn("mosquitto", ["mosquitto", "-c", str(self.broker_dir / "mosquitto.conf")])
            wait_port(self.ports.mqtt, 10)
            wait_port(self.ports.mqtt_tls, 10)
            self.start_redis()
            self.start_web()
            self.spawn("edge-daemon", programs.command(programs.EDGE_DAEMON, "--interval", str(self.daemon_interval),
                                                       python=self.python))
            self.start_worker()
            for sid in agents:
                self.start_station(sid)
        except BaseException:
            self.stop()
            raise

    def start_redis(self) -> None:
        (self.root / "redis").mkdir(exist_ok=True)
        self.spawn("redis", ["redis-server", "--port", str(self.ports.redis), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(self.root / "redis")])
        wait_port(self.ports.redis, 10)

    def start_web(self) -> None:
        """The two gunicorn instances of the units: ``edge-api`` (stations) and ``edge-web`` (staff)."""
        for name, serve, port in (("edge-api", "stations", self.ports.api), ("edge-web", "staff", self.ports.web)):
            self.spawn(name, [self.python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                              "--workers", "2", "--threads", str(self.web_threads), "--timeout", "120",
                              "--certfile", str(self.tls_path), "edge_server:create_app()"],
                       env={"EXAMKIOSK_SERVE": serve})
        self.wait_http(f"{self.api_url}/healthz", 30)
        self.wait_http(f"{self.web_url}/healthz", 30)

    def stop_web(self) -> None:
        """Both web instances: the edge is down for stations and staff alike."""
        self._stop_together(["edge-api", "edge-web"])

    def start_worker(self) -> None:
        self.spawn("edge-worker", programs.command(programs.EDGE_WORKER, python=self.python))

    def kill_station(self, station_id: str) -> None:
        """Power-cut stand-in: SIGKILL, no chance to clean up."""
        proc = self.processes.pop(f"station-{station_id}")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def start_station(self, station_id: str) -> None:
        self.spawn(f"station-{station_id}", programs.command(programs.STATION, python=self.python),
                   station_id=station_id)
        self.wait_http(self.kiosk_url(station_id), 60)

    def wait_http(self, url: str, timeout: float) -> None:
        session = pinned_session(self.fingerprint)  # https: the edge's own certificate
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if session.get(url, timeout=1).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{url} did not answer in {timeout:.0f} s; see {self.logs}")



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioning.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("var/demo"))
    parser.add_argument("--start-in", type=float, default=float(os.environ.get("EXAMKIOSK_DEMO_START_IN", 180)))
    parser.add_argument("--question-seconds", type=int,
                        default=int(os.environ.get("EXAMKIOSK_DEMO_QUESTION_SECONDS", 60)))
    parser.add_argument("--timing-mode", choices=["per_question", "whole_session"], default="per_question")
    parser.add_argument("--region-port", type=int, default=8450, help="the regional server's port")
    parser.add_argument("--storage", choices=["directory", "s3"], default="directory",
                        help="central storage: a directory (default) or a Ceph RADOS Gateway (S3) started for the demo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    central: CentralS3 | None = None
    if args.storage == "s3":
        print("Starting central storage: a Ceph RADOS Gateway (S3)…", flush=True)
        central = start_central_s3(args.dir.resolve() / "central-s3")
    try:
        return run_demo(args, central)
    finally:
        if central is not None:
            central.stop()


def run_demo(args: argparse.Namespace, central: CentralS3 | None) -> int:
    demo = DemoCentre(args.dir.resolve(), start_in=args.start_in, question_seconds=args.question_seconds,
                      timing_mode=args.timing_mode, storage=central.storage_settings() if central else None)
    print("Preparing the demo centre (media, configuration, database)…", flush=True)
    login = demo.prepare()
    region = DemoRegion(demo, args.region_port, storage=central.storage_settings() if central else None)
    if port_in_use(args.region_port):
        raise SystemExit(f"port {args.region_port} (the regional server) is already in use: is another demo running?")
    region_logins = region.prepare()
    demo.start()
    try:
        region.start()
    except BaseException:
        demo.stop()
        raise
    where = f"bucket {central.bucket} at {central.endpoint} (Ceph RADOS Gateway)" if central else demo.central_dir
    print(f"""
examkiosk demo centre is running.
  Kiosk (candidate):  {demo.kiosk_url()}
  Staff dashboard:    {demo.web_url}/staff/
                      (HTTPS with the edge's own certificate: the browser asks you to accept it once;
                      its SHA-256 fingerprint is {demo.fingerprint_display})
  Staff login:        {login['username']} / {login['password']}
  Station API:        {demo.api_url}/api/v1 (a gunicorn instance of its own; announced to stations)
  Demo candidates:    admission ticket 20240001 (face matches the camera)
                      admission ticket 20240002 (face does not match: 3 tries, then manual review)
                      The demo camera is a video of photos, so the head-turn liveness challenge is off
                      on this station ([face] liveness = false); real stations keep it on.
  Exam starts in {args.start_in:.0f} s; {2} questions of {args.question_seconds} s each.
  Central storage:    {where}
  Regional server:    {region.url}/ (reads only central storage; an attempt shows up after its sync)
                      {', '.join(f"{user} / {password}" for user, password in region_logins.items())}
  Logs:               {demo.logs}
A process that dies is restarted after 2 s (as systemd does on the appliance).
Press Ctrl-C to stop everything.""", flush=True)
    stopping = False

    def _stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    supervisor = Supervisor(demo, say=lambda line: print(line, flush=True))
    while not stopping:
        supervisor.tick()
        time.sleep(0.5)
    print("\nStopping the demo centre…", flush=True)
    demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
