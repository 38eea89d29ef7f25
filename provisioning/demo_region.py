"""The regional server of the demo: web (gunicorn), daemon (index + verification queue) and worker,
reading only the demo centre's central storage, as the three ``examkiosk-region-*`` units run it.

It runs each program by its console script or gunicorn in a process of the demo's own
(``DemoCentre.spawn``: supervised and stopped with the rest), and imports nothing of it.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from provisioning import programs
from provisioning.toml_file import write_toml

REGION = "examkiosk-region"
REGION_WORKER = "examkiosk-region-worker"
# The demo's regional accounts: (user, role). Passwords are generated once and kept in secrets.json.
ACCOUNTS = (("region-admin", "regional_admin"), ("reviewer", "reviewer"), ("marker", "marker"))


class DemoRegion:
    """The region beside ``demo`` (a ``provisioning.demo.DemoCentre``: its spawn, secrets, Redis, central storage)."""

    def __init__(self, demo: Any, port: int, storage: dict | None = None, index_seconds: float = 5.0):
        self.demo = demo
        self.port = port
        self.storage = storage  # the region's [storage]; None: the demo's central directory
        self.index_seconds = index_seconds

    @property
    def root(self) -> Path:
        return self.demo.root / "region"

    @property
    def config(self) -> Path:
        return self.root / "region.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"EXAMKIOSK_REGION_CONFIG": str(self.config)}

    def prepare(self) -> dict[str, str]:
        """Settings, a fresh database and the accounts; returns {user: password}."""
        self.root.mkdir(parents=True, exist_ok=True)
        sec = self.demo.secrets()
        for suffix in ("", "-wal", "-shm"):
            (self.root / f"region.db{suffix}").unlink(missing_ok=True)
        write_toml(self.config, {
            "region_name": "演示大区 Demo region", "secret_key": self.demo.station_secret(sec, "region", "secret"),
            "database_url": f"sqlite:///{self.root / 'region.db'}", "data_dir": str(self.root / "data"),
            # The demo's Redis, a database of its own.
            "redis_url": f"redis://127.0.0.1:{self.demo.ports.redis}/1",
            "storage": self.storage or {"backend": "directory", "directory": str(self.demo.central_dir)},
            "index": {"interval_seconds": self.index_seconds},
        })
        self._run(REGION, "db", "upgrade")
        logins = {}
        for user, role in ACCOUNTS:
            password = self.demo.station_secret(sec, user, "region-password")
            self._run(REGION, "users", "add", user, "--role", role, "--password-stdin", stdin=password + "\n")
            logins[user] = password
        return logins

    def start(self) -> None:
        self.demo.spawn("region-web", [self.demo.python, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                                       "--workers", "1", "--threads", "4", "region_server:create_app()"],
                        env=self.env())
        self.demo.spawn("region-daemon", programs.command(REGION, "daemon", python=self.demo.python), env=self.env())
        self.demo.spawn("region-worker", programs.command(REGION_WORKER, python=self.demo.python), env=self.env())
        self.demo.wait_http(f"{self.url}/healthz", 30)

    def _run(self, program: str, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(programs.command(program, *args, python=self.demo.python), input=stdin,
                              env={**self.demo.env(), **self.env()}, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{proc.stderr.strip()}")
        return proc.stdout
