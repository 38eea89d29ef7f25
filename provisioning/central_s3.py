"""Central storage on a real S3 server for the demo (``make demo STORAGE=s3``): Ceph's RADOS Gateway.

``start_central_s3(workdir)`` runs ``scripts/ceph-rgw-start.sh`` (Debian's ``ceph-mon``,
``ceph-osd`` and ``radosgw``; one mon, one OSD in RAM, one gateway, all under ``workdir``),
creates the bucket, writes the secret key to a file of its own and returns a :class:`CentralS3`
whose ``storage_settings()`` is the edge's ``[storage]`` section. ``stop()`` stops the daemons
in order (radosgw, OSD, mon) and keeps ``workdir`` (its logs) until the next start wipes it.
"""
from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from examkiosk_wire.files import write_private

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
START_TIMEOUT = 300  # the script's own waits are 120 s each


class CentralS3Error(RuntimeError):
    """The gateway did not start (the message carries what the start script said)."""


@dataclass(frozen=True)
class CentralS3:
    endpoint: str
    access_key: str
    secret_key_file: Path
    region: str
    bucket: str
    workdir: Path

    def storage_settings(self) -> dict:
        """The edge's ``[storage]`` section for this bucket (the secret stays in its file)."""
        return {"backend": "s3", "s3_endpoint_url": self.endpoint, "s3_bucket": self.bucket,
                "s3_region": self.region, "s3_access_key": self.access_key,
                "s3_secret_key_file": str(self.secret_key_file)}

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPTS / "ceph-rgw-stop.sh"), str(self.workdir), "--keep"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_s3_env(text: str) -> dict[str, str]:
    """The ``S3_*=value`` lines the start script prints."""
    pairs = (line.strip().partition("=") for line in text.splitlines())
    return {key: value for key, sep, value in pairs if sep and key.startswith("S3_")}


def create_bucket(endpoint: str, region: str, access_key: str, secret_key: str, bucket: str) -> None:
    import boto3  # optional: only the S3 demo needs boto3 here (the edge's S3 storage needs it anyway)
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
                          aws_secret_access_key=secret_key,
                          config=Config(request_checksum_calculation="when_required",
                                        response_checksum_validation="when_required"))
    client.create_bucket(Bucket=bucket)


def start_central_s3(workdir: Path, bucket: str = "central", port: int | None = None) -> CentralS3:
    """A fresh gateway under ``workdir`` (an earlier one there is stopped and wiped) with ``bucket``."""
    script = SCRIPTS / "ceph-rgw-start.sh"
    if not script.is_file():
        raise CentralS3Error(f"{script} is missing: the S3 demo runs from the repository (make demo STORAGE=s3)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEPH_", "S3_"))}
    result = subprocess.run(["bash", str(script), str(workdir), str(port or _free_port())], env=env,
                            capture_output=True, text=True, timeout=START_TIMEOUT, stdin=subprocess.DEVNULL)
    values = parse_s3_env(result.stdout)
    if result.returncode != 0 or not {"S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY"} <= values.keys():
        raise CentralS3Error(f"the Ceph RADOS Gateway did not start (is scripts/install-system.sh done?):\n"
                             f"{result.stderr.strip()[-3000:]}")
    workdir = workdir.resolve()
    secret_file = workdir.parent / f"{workdir.name}.secret"
    write_private(secret_file, values["S3_SECRET_KEY"] + "\n", replace=True)
    central = CentralS3(values["S3_ENDPOINT"], values["S3_ACCESS_KEY"], secret_file, values.get("S3_REGION", "us-east-1"),
                        bucket, workdir)
    try:
        create_bucket(central.endpoint, central.region, central.access_key, values["S3_SECRET_KEY"], bucket)
    except Exception as exc:
        central.stop()
        raise CentralS3Error(f"cannot create bucket {bucket} at {central.endpoint}: {exc}") from exc
    return central
