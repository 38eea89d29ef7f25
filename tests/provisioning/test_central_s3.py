"""``make demo STORAGE=s3``: the demo's own Ceph RADOS Gateway, and the edge settings pointing at it."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge_server.config import StorageSection
from edge_server.storage import S3Storage, open_storage
from provisioning.central_s3 import start_central_s3
from provisioning.demo import main
from tests.s3server import missing_programs


def daemons_of(workdir: Path) -> list[str]:
    """Running ceph-mon / ceph-osd / radosgw processes whose command line names ``workdir``'s ceph.conf."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        if f"{workdir}/ceph.conf" in cmd and state != "Z":
            found.append(cmd.split()[0])
    return found


def test_demo_s3_settings_validate_and_reach_the_bucket(tmp_path: Path):
    if missing_programs():
        pytest.fail(f"missing {missing_programs()}: run `make test` or scripts/install-system.sh", pytrace=False)
    central = start_central_s3(tmp_path / "central-s3")
    try:
        settings = StorageSection(**central.storage_settings())
        assert settings.backend == "s3" and settings.s3_bucket == "central"
        assert central.secret_key_file.stat().st_mode & 0o077 == 0  # the secret is the owner's alone
        storage = open_storage(settings)
        assert isinstance(storage, S3Storage)
        data = b'{"format": "examkiosk-manifest/1"}'
        key = "demo/s1/lot-001/manifest.json"
        assert storage.put_bytes(key, data) == hashlib.sha256(data).hexdigest()
        assert storage.checksum(key) == hashlib.sha256(data).hexdigest()
    finally:
        central.stop()
    assert daemons_of(central.workdir) == []


def test_demo_refuses_an_unknown_storage(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["--storage", "ftp"])
    assert "invalid choice: 'ftp'" in capsys.readouterr().err
