"""Real services for tests: private Mosquitto and Redis on free ports, MQTT probes, station processes.

Plain helpers (no fixtures; ``tests/conftest.py`` wraps them). Everything binds to 127.0.0.1
and every helper that starts a process returns an object whose ``stop()`` ends it. A wait for
another process polls a condition until a deadline generous for a loaded 2-core machine
(``wait_for``) and, when it runs out, says what it waited for and shows the tail of the logs.
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]


# --- waiting for what other processes do ---------------------------------------------------------

# Deadlines of waits for other processes, generous for a loaded 2-core machine: a wait returns as
# soon as its condition holds, so only a failing test waits this long.
START_TIMEOUT = 60.0  # a process starts listening (gunicorn imports the app, mosquitto loads its files)
JOB_TIMEOUT = 120.0  # a background job finishes (the RQ sync job, the daemon's rounds)

Log = Path | Callable[[], str]


def log_tail(log: Log, chars: int = 3000) -> str:
    """The end of a log file (or what a callable returns), headed by its name, for an error message."""
    if callable(log):
        return f"--- {getattr(log, '__name__', 'log')} ---\n{log()[-chars:]}"
    path = Path(log)
    text = path.read_text(errors="replace")[-chars:] if path.exists() else "(no such file)"
    return f"--- {path} (last {chars} characters) ---\n{text}"


def explain(what: str, logs: Iterable[Log] = ()) -> str:
    """``what`` followed by the tail of every log in ``logs``."""
    return "\n".join([what, *(log_tail(log) for log in logs)])


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str | None = None,
             logs: Iterable[Log] = (), *, interval: float = 0.05, message: str | None = None) -> Any:
    """Poll ``condition`` until it returns something truthy, which is returned (for state other
    processes change). After ``timeout`` seconds: TimeoutError saying ``what`` was waited for, the
    condition's last value and the tail of each of ``logs`` (log files, or callables giving text).
    ``message`` is the older name of ``what``."""
    what = what or message or "condition"
    logs = list(logs)
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(explain(f"{what}: not met within {timeout:g} s (last value {value!r:.200})", logs))
        time.sleep(interval)


def wait_port(host: str, port: int, timeout: float = START_TIMEOUT, proc: subprocess.Popen | None = None,
              logs: Iterable[Log] = ()) -> None:
    """Until a TCP connect to ``host:port`` succeeds; fails early if ``proc`` exits."""
    logs = list(logs)

    def listening() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(explain(f"process {proc.args!r} exited with {proc.returncode} before listening on "
                                       f"{port}", logs))
        return False

    wait_for(listening, timeout, f"something listening on {host}:{port}", logs, interval=0.02)


# --- ports and processes ------------------------------------------------------------------------

@contextlib.contextmanager
def served_app(app: Any) -> Iterator[str]:
    """A WSGI app on a real socket (threaded werkzeug server on a free port); yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="live-server",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it does not go; never raises."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout)


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """One line of the process's stdout, or TimeoutError."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no output from {proc.args!r} within {timeout:g} s")
    line = proc.stdout.readline()
    return line.decode() if isinstance(line, bytes) else line


# --- Mosquitto ----------------------------------------------------------------------------------

@dataclass
class MosquittoProc:
    proc: subprocess.Popen
    port: int
    centre: str
    users: dict[str, str]
    conf: Path
    log_path: Path
    files_dir: Path
    remove_files_dir: bool = False
    host: str = HOST
    tls_port: int = 0  # the TLS listener (the edge's certificate), when started with one

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def dynsec_file(self) -> Path:
        """The dynamic-security plugin's file: the broker rewrites it after every change of users."""
        from examkiosk_wire.broker import DYNSEC_NAME

        return self.files_dir / DYNSEC_NAME

    def dynsec_users(self) -> list[str]:
        return [c["username"] for c in json.loads(self.dynsec_file.read_text())["clients"]]

    def stop(self) -> None:
        stop_process(self.proc)
        if self.remove_files_dir:
            shutil.rmtree(self.files_dir, ignore_errors=True)

    def restart(self) -> None:
        """The broker stopped (SIGTERM) and started again with the same files on the same ports;
        every client is disconnected and must reconnect."""
        stop_process(self.proc)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        wait_port(self.host, self.port, proc=self.proc)

    def __enter__(self) -> "MosquittoProc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def broker_files_dir(tmp_path: Path) -> tuple[Path, bool]:
    """As root Mosquitto reads its files as user ``mosquitto``, who cannot enter pytest's 0700 tmp dirs."""
    if os.geteuid() == 0:
        path = Path(tempfile.mkdtemp(prefix="examkiosk-mosquitto-"))
        os.chmod(path, 0o755)
        return path, True
    path = tmp_path / f"mosquitto-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path, False


def start_mosquitto(tmp_path: Path, centre: str, users: dict[str, str], *, edge_user: str = "edge",
                    tls_pem: Path | None = None, attempts: int = 3) -> MosquittoProc:
    """A private broker configured by ``examkiosk_wire.broker.write_broker_files`` on a free port, and
    with ``tls_pem`` (an edge's key and certificate) a TLS listener on another."""
    from examkiosk_wire.broker import write_broker_files

    tmp_path.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for _ in range(attempts):
        files_dir, remove = broker_files_dir(tmp_path)
        port, tls_port = free_port(), free_port() if tls_pem is not None else 0
        conf = write_broker_files(files_dir, port=port, centre=centre, users=users, edge_user=edge_user,
                                  tls_port=tls_port, tls_pem=tls_pem)
        log_path = tmp_path / f"mosquitto-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        broker = MosquittoProc(proc=proc, port=port, centre=centre, users=dict(users), conf=conf, log_path=log_path,
                               files_dir=files_dir, remove_files_dir=remove, tls_port=tls_port)
        try:
            wait_port(HOST, port, proc=proc)
            if tls_port:
                wait_port(HOST, tls_port, proc=proc)
            return broker
        except (RuntimeError, TimeoutError) as exc:  # e.g. the port was taken meanwhile
            last_error = RuntimeError(f"{exc}\n--- mosquitto log ---\n{broker.log()}")
            broker.stop()
    raise RuntimeError(f"mosquitto did not start: {last_error}")


# --- Redis --------------------------------------------------------------------------------------

@dataclass
class RedisProc:
    proc: subprocess.Popen
    port: int
    log_path: Path
    host: str = HOST

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> "RedisProc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_redis(tmp_path: Path, attempts: int = 3) -> RedisProc:
    tmp_path.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for _ in range(attempts):
        port = free_port()
        log_path = tmp_path / f"redis-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                 "--dir", str(tmp_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        server = RedisProc(proc=proc, port=port, log_path=log_path)
        try:
            wait_port(HOST, port, proc=proc, logs=[log_path])
            return server
        except (RuntimeError, TimeoutError) as exc:  # e.g. the port was taken meanwhile
            last_error = exc
            server.stop()
    raise RuntimeError(f"redis-server did not start: {last_error}")


# --- MQTT probe ---------------------------------------------------------------------------------

@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


class MqttProbe:
    """A plain paho MQTT v5 client for tests: connect, subscribe, publish and wait for the broker's answers."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None, *,
                 client_id: str | None = None, host: str = HOST):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.host, self.port = host, port
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connack: queue.Queue[Any] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._cond = threading.Condition()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"probe-{uuid.uuid4().hex[:10]}",
                             protocol=mqtt.MQTTv5)
        if username is not None:
            client.username_pw_set(username, password)
        client.on_connect = lambda c, u, flags, rc, props: self._connack.put(rc)
        client.on_publish = lambda c, u, mid, rc, props: self._ack(mid, rc)
        client.on_subscribe = lambda c, u, mid, rcs, props: self._ack(mid, rcs)
        client.on_message = lambda c, u, msg: self.messages.put(Received(msg.topic, msg.payload, bool(msg.retain)))
        self.client = client

    def _ack(self, mid: int, result: Any) -> None:
        with self._cond:
            self._acks[mid] = result
            self._cond.notify_all()

    def _wait_ack(self, mid: int, timeout: float) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acks, timeout):
                raise TimeoutError(f"no acknowledgement from the broker at {self.host}:{self.port} for message "
                                   f"{mid} within {timeout:g} s")
            return self._acks.pop(mid)

    def connect(self, timeout: float = 30.0) -> Any:
        """The CONNACK reason code (check ``.is_failure``)."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        try:
            return self._connack.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no CONNACK from {self.host}:{self.port} within {timeout:g} s") from None

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 30.0) -> list[Any]:
        _, mid = self.client.subscribe(topic, qos)
        return self._wait_ack(mid, timeout)

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False,
                timeout: float = 30.0) -> Any:
        """The PUBACK reason code of a QoS 1 publish (``>= 0x80`` when the broker refused it)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return self._wait_ack(info.mid, timeout)

    def expect(self, predicate: Callable[[Received], bool], timeout: float = 30.0,
               what: str = "the expected MQTT message") -> Received:
        """The first message matching ``predicate``; earlier ones are dropped (and named on timeout)."""
        deadline = time.monotonic() + timeout
        dropped: list[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what} did not arrive from {self.host}:{self.port} within {timeout:g} s; "
                                   f"{len(dropped)} other messages did: {dropped[-10:]}")
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(msg):
                return msg
            dropped.append(f"{msg.topic} {msg.payload[:80]!r}")

    def drain(self) -> list[Received]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "MqttProbe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- a station in its own process ---------------------------------------------------------------

STATION_SCRIPT = r"""
import json, sys
from station.link import StatusPublisher
from examkiosk_wire.topics import StationStatus

host, port, user, password, centre, station, spec = sys.argv[1:8]
spec = json.loads(spec)
pub = StatusPublisher(host, int(port), user, password, centre, station, keepalive=5)
pub.start()
if not pub.wait_connected(10):
    print("not-connected", flush=True)
    sys.exit(1)
pub.publish_status(StationStatus(station=station, online=True, version="test", **spec.get("status", {}))).wait_for_publish(5)
for ev in spec.get("events", []):
    pub.publish_event(ev["kind"], ev.get("payload"), attempt=ev.get("attempt")).wait_for_publish(5)
print("ready", flush=True)
sys.stdin.read()  # until the test closes stdin (clean stop) or kills us (the last will)
pub.stop()
print("stopped", flush=True)
"""


@dataclass
class StationProc:
    proc: subprocess.Popen
    station: str

    def kill(self) -> None:
        """Die without a DISCONNECT: the broker publishes the last will."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Clean stop (offline status, DISCONNECT); killed if it hangs."""
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()


def start_station(port: int, username: str, password: str, centre: str, station: str, *,
                  status: dict[str, Any] | None = None, events: list[dict[str, Any]] | None = None,
                  timeout: float = START_TIMEOUT) -> StationProc:
    """A process running ``station.link.StatusPublisher``; returns once its status (and events) are acknowledged."""
    import json

    spec = json.dumps({"status": status or {}, "events": events or []})
    proc = subprocess.Popen([sys.executable, "-c", STATION_SCRIPT, HOST, str(port), username, password, centre,
                             station, spec],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(REPO))
    handle = StationProc(proc=proc, station=station)
    try:
        line = read_line(proc, timeout).strip()
        if line != "ready":
            raise RuntimeError(f"station process said {line!r} (exit code {proc.poll()})")
    except BaseException:
        handle.kill()
        raise
    return handle


# --- the edge web app under gunicorn ------------------------------------------------------------

@dataclass
class EdgeWebProc:
    proc: subprocess.Popen
    port: int
    log_path: Path
    host: str = HOST
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)


def start_edge_web(config: Path, log_path: Path, *, workers: int = 2, threads: int = 4,
                   timeout: float = 2 * START_TIMEOUT, certfile: Path | None = None) -> EdgeWebProc:
    """``edge_server:create_app()`` under gunicorn on a free port, as the demo and the unit run it.

    The app reads ``config`` (``EXAMKIOSK_EDGE_CONFIG``); no other ``EXAMKIOSK_*`` variable of
    this process reaches it. With ``certfile`` (the edge's TLS file) it serves HTTPS. Returns once
    ``/healthz`` answers.
    """
    import requests

    from examkiosk_wire.pinning import certificate_fingerprint, pinned_session

    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_") and k != "DATABASE_URL"}
    env["EXAMKIOSK_EDGE_CONFIG"] = str(config)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--workers", str(workers),
             "--threads", str(threads), "--timeout", "120",
             *(["--certfile", str(certfile)] if certfile else []), "edge_server:create_app()"],
            env=env, cwd=str(log_path.parent), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    edge = EdgeWebProc(proc=proc, port=port, log_path=log_path, scheme="https" if certfile else "http")
    session = pinned_session(certificate_fingerprint(certfile) if certfile else None)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if session.get(f"{edge.url}/healthz", timeout=1).status_code == 200:
                return edge
        if proc.poll() is not None or time.monotonic() > deadline:
            edge.stop()
            raise RuntimeError(explain(f"the edge under gunicorn did not answer /healthz within {timeout:g} s "
                                       f"(exit code {proc.poll()})", [log_path]))
        time.sleep(0.1)


# --- edge settings and database -----------------------------------------------------------------

def edge_settings(tmp_path: Path, **overrides: Any):
    """Edge settings for a test: a SQLite file in ``tmp_path``, no config file."""
    from edge_server.config import load_settings

    values: dict[str, Any] = {
        "secret_key": "test-secret",
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite:///{tmp_path / 'edge.db'}",
        "testing": True,
    }
    values.update(overrides)
    return load_settings(Path("/nonexistent/edge.toml"), **values)


def migrate_database(settings: Any, timeout: float = 120.0) -> None:
    """``flask db upgrade`` in a subprocess, as the unit's ExecStartPre does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_") and k != "DATABASE_URL"}
    env.update({
        "EXAMKIOSK_DATABASE_URL": settings.database_url,
        "EXAMKIOSK_SECRET_KEY": settings.secret_key,
        "EXAMKIOSK_DATA_DIR": str(settings.data_dir),
        "EXAMKIOSK_EDGE_CONFIG": "/nonexistent/edge.toml",
    })
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "edge_server:create_app", "db", "upgrade"],
                            env=env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@dataclass
class Cleanup:
    """Stops everything registered, last first, even if one stop fails."""

    items: list[Callable[[], None]] = field(default_factory=list)

    def add(self, stop: Callable[[], None]) -> None:
        self.items.append(stop)

    def close(self) -> None:
        while self.items:
            stop = self.items.pop()
            with contextlib.suppress(Exception):
                stop()
