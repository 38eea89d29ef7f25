"""A throw-away real S3 server for tests and benches: Ceph's RADOS Gateway (mon + OSD + radosgw).

``start_ceph_s3(workdir)`` runs ``scripts/ceph-rgw-start.sh`` on a free port under ``workdir`` and
returns a :class:`CephS3` once a bucket accepts writes; its ``stop()`` runs
``scripts/ceph-rgw-stop.sh`` (radosgw, then the OSD, then the mon). A start that fails raises
:class:`CephS3Error` with the script's output and the tail of the daemons' logs; missing Debian
packages raise :class:`CephMissing`, naming how to install them.

Ceph 16 (Pacific) checks ``Content-MD5`` but has no flexible checksums and does not understand
boto3's default trailer checksums: :meth:`CephS3.client` turns them off in the client's Config.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.services import REPO, free_port, log_tail

START_SCRIPT = REPO / "scripts" / "ceph-rgw-start.sh"
STOP_SCRIPT = REPO / "scripts" / "ceph-rgw-stop.sh"
PROGRAMS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
START_TIMEOUT = 240.0  # the script's own waits are 120 s each; a loaded 2-core machine needs 5-8 s
LOGS = ("ceph-mon.a.log", "ceph-osd.0.log", "ceph-client.rgw.s3.log")


class CephS3Error(RuntimeError):
    """The Ceph RADOS Gateway did not start or stop; the message carries its output and logs."""


class CephMissing(CephS3Error):
    """The Debian packages of the Ceph RADOS Gateway are not installed."""


def missing_programs() -> list[str]:
    return [name for name in PROGRAMS if shutil.which(name) is None]


def client_config(**overrides: Any):
    """botocore Config for Ceph 16: checksums only where the API requires them (no trailers)."""
    from botocore.config import Config

    values: dict[str, Any] = {"request_checksum_calculation": "when_required",
                              "response_checksum_validation": "when_required",
                              "retries": {"max_attempts": 3, "mode": "standard"}}
    values.update(overrides)
    return Config(**values)


@dataclass
class CephS3:
    """A running gateway: its endpoint and the keys of its one user."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    workdir: Path

    @property
    def log_dir(self) -> Path:
        return self.workdir / "log"

    def logs(self) -> list[Path]:
        return [self.log_dir / name for name in LOGS]

    def client(self, **config: Any):
        """A boto3 S3 client for this gateway (its own keys, never the developer's AWS files)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=client_config(**config))

    def bucket(self, name: str | None = None) -> str:
        """Creates a fresh bucket (a random name unless given) and returns its name."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def write_secret(self, path: Path) -> Path:
        """The secret key in a file of its own (mode 0600), as ``storage.s3_secret_key_file`` reads it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.secret_key + "\n")
        path.chmod(0o600)
        return path

    def stop(self, keep: bool = False) -> None:
        """Stops the daemons in order; the work dir is removed unless ``keep``."""
        result = subprocess.run(["bash", str(STOP_SCRIPT), str(self.workdir), *(["--keep"] if keep else [])],
                                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise CephS3Error(f"{STOP_SCRIPT.name} failed ({result.returncode}): {result.stderr[-2000:]}")

    def __enter__(self) -> "CephS3":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_env(text: str) -> dict[str, str]:
    """``KEY=value`` lines (what the start script prints and writes to ``s3.env``)."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("S3_"):
            values[key] = value
    return values


def start_ceph_s3(workdir: Path, port: int | None = None, *, objectstore: str = "memstore",
                  store_bytes: int | None = None, attempts: int = 2) -> CephS3:
    """Starts a gateway whose whole state lives in ``workdir`` (created; must be new or empty, or
    one this made before, which is wiped). ``objectstore``: ``memstore`` (RAM) or ``bluestore``
    (a sparse file of ``store_bytes``, for data bigger than RAM should hold)."""
    missing = missing_programs()
    if missing:
        raise CephMissing(f"the Ceph RADOS Gateway is not installed (missing {', '.join(missing)}): run "
                          "`make test` (it installs the system packages) or, as root, scripts/install-system.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEPH_", "S3_"))}
    env["CEPH_OBJECTSTORE"] = objectstore
    if store_bytes:
        env["CEPH_STORE_BYTES"] = str(store_bytes)
    last = ""
    for _ in range(attempts):
        chosen = port or free_port()
        result = subprocess.run(["bash", str(START_SCRIPT), str(workdir), str(chosen)], env=env,
                                capture_output=True, text=True, timeout=START_TIMEOUT, stdin=subprocess.DEVNULL)
        values = parse_env(result.stdout)
        if result.returncode == 0 and {"S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY"} <= values.keys():
            return CephS3(values["S3_ENDPOINT"], values["S3_ACCESS_KEY"], values["S3_SECRET_KEY"],
                          values.get("S3_REGION", "us-east-1"), Path(workdir).resolve())
        logs = "\n".join(log_tail(workdir / "log" / name, 1500) for name in LOGS)
        last = f"{START_SCRIPT.name} {workdir} {chosen} exited {result.returncode}:\n{result.stderr[-3000:]}\n{logs}"
        if port is not None or "already in use" not in result.stderr:
            break  # only a port taken meanwhile is worth another try
    raise CephS3Error(f"the Ceph RADOS Gateway did not start: {last}")
