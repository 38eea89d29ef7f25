"""The region's programs as systemd runs them: ``examkiosk-region db upgrade`` and ``users``, the daemon
indexing central storage and queueing verification in real Redis, the worker verifying, SIGTERM."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import create_engine, text

from provisioning.toml_file import write_toml
from region_server import cli
from region_server.config import load_settings
from tests.region_server.central_data import DirWriter, write_attempt
from tests.services import stop_process, wait_for

BIN = Path(sys.executable).parent


def _run(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_REGION_")}
    env["EXAMKIOSK_REGION_CONFIG"] = str(config)
    return subprocess.run([str(BIN / args[0]), *args[1:]], input=stdin, capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_users_daemon_and_worker_from_the_command_line(db_url, tmp_path, redis_server, station_key, monkeypatch,
                                                      capsys):
    central = tmp_path / "central"
    written = write_attempt(DirWriter(central), "c1", "s1", 3, "att-3", station_key, per_camera=2)
    config = tmp_path / "region.toml"
    queue_name = f"test-region-{uuid.uuid4().hex[:10]}"
    write_toml(config, {"secret_key": "k" * 32, "database_url": db_url, "redis_url": redis_server.url,
                        "queue_name": queue_name, "data_dir": str(tmp_path / "data"),
                        "storage": {"backend": "directory", "directory": str(central)},
                        "index": {"interval_seconds": 0.2}, "verification": {"rate_bytes_per_s": 0}})

    monkeypatch.setenv("EXAMKIOSK_REGION_CONFIG", str(config))
    assert cli.main(["--check-config"]) == 0
    bad = tmp_path / "bad.toml"
    write_toml(bad, {"secret_key": "k", "storage": {"backend": "s3"}})
    monkeypatch.setenv("EXAMKIOSK_REGION_CONFIG", str(bad))
    assert cli.main(["--check-config"]) == 2
    assert "s3_bucket" in capsys.readouterr().err
    monkeypatch.setenv("EXAMKIOSK_REGION_CONFIG", str(config))

    upgrade = _run(config, "examkiosk-region", "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    settings = load_settings(config)
    stop = threading.Event()

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.run(settings, cli.parser().parse_args(argv), stop)
        out = capsys.readouterr()
        return code, out.out, out.err

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    code, out, _ = run("users", "add", "ada", "--role", "regional_admin", "--password-stdin")
    assert code == 0 and json.loads(out)["password"] == "(as given)"
    code, out, _ = run("users", "add", "bob", "--role", "marker")
    assert code == 0 and len(json.loads(out)["password"]) >= 12
    code, _, err = run("users", "add", "bob", "--role", "marker")
    assert code == 1 and "already exists" in err
    assert run("users", "deactivate", "bob")[0] == 0
    listed = [json.loads(line) for line in run("users", "list")[1].splitlines()]
    assert listed == [{"username": "ada", "role": "regional_admin", "active": True},
                      {"username": "bob", "role": "marker", "active": False}]

    engine = create_engine(db_url)
    log = tmp_path / "daemon.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_REGION_")}
    env["EXAMKIOSK_REGION_CONFIG"] = str(config)
    with open(log, "w") as out:
        daemon = subprocess.Popen([str(BIN / "examkiosk-region"), "daemon"], stdout=out, stderr=subprocess.STDOUT,
                                  env=env)
    try:
        def verification() -> str | None:
            with engine.connect() as conn:
                return conn.execute(text("SELECT verification FROM attempt WHERE manifest_key = :k"),
                                    {"k": written.key}).scalar()

        wait_for(lambda: verification() == "pending", 60, "the daemon indexed the attempt", [log])
        queue = Queue(queue_name, connection=Redis.from_url(redis_server.url))
        wait_for(lambda: queue.count == 1, 30, "the daemon queued its verification", [log])
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        stop_process(daemon)
        engine.dispose()

    worker = _run(config, "examkiosk-region-worker", "--burst")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    with create_engine(db_url).connect() as conn:
        row = conn.execute(text("SELECT verification, chain_verdict FROM attempt")).one()
    assert tuple(row) == ("verified", "ok")
