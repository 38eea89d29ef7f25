"""The tests' own S3 server (``tests/s3server.py``): clear failures when it cannot start."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.s3server import CephMissing, CephS3Error, start_ceph_s3


def test_missing_packages_name_how_to_install_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ceph-mon, radosgw, ... here
    with pytest.raises(CephMissing) as caught:
        start_ceph_s3(tmp_path / "rgw")
    assert "radosgw" in str(caught.value) and "make test" in str(caught.value)
    assert "scripts/install-system.sh" in str(caught.value)


def test_a_port_in_use_fails_with_the_scripts_words(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CephS3Error, match=f"port {port} on 127.0.0.1 is already in use"):
            start_ceph_s3(tmp_path / "rgw", port=port)
