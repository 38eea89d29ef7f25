"""``[storage]`` settings: S3 keys from a secret file, strictly checked, and the open storage using them."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_server.config import StorageSection
from edge_server.storage import S3Storage, open_storage
from tests.edge_server.storage.conftest import storage_section, write_file
from tests.s3server import CephS3


def section(**values) -> StorageSection:
    return StorageSection(backend="s3", s3_bucket="central", **values)


def test_the_secret_key_comes_from_its_own_file(tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text("  s3cr3t/KEY+x  \n")
    assert section(s3_access_key="AK", s3_secret_key_file=secret).s3_secret_key() == "s3cr3t/KEY+x"
    assert section().s3_secret_key() is None  # boto3's standard chain


@pytest.mark.parametrize(("values", "message"), [
    ({"s3_access_key": "AK"}, "go together"),
    ({"s3_secret_key_file": "SECRET"}, "go together"),
    ({"s3_access_key": "AK", "s3_secret_key_file": "MISSING"}, "cannot be read"),
    ({"s3_access_key": "AK", "s3_secret_key_file": "EMPTY"}, "is empty"),
    ({"s3_access_key": "AK", "s3_secret_key_file": "TWO_LINES"}, "alone, on one line"),
    ({"s3_access_key": "A K", "s3_secret_key_file": "SECRET"}, "s3_access_key"),
    ({"s3_part_size": 1024}, "s3_part_size"),
    ({"s3_concurrency": 0}, "s3_concurrency"),
    ({"s3_secret": "inline"}, "s3_secret"),
])
def test_bad_storage_settings_are_refused_naming_the_key(tmp_path: Path, values: dict, message: str):
    files = {"SECRET": "k\n", "EMPTY": " \n", "TWO_LINES": "k1\nk2\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    values = {k: str(tmp_path / v) if k == "s3_secret_key_file" else v for k, v in values.items()}
    with pytest.raises(ValidationError, match=message):
        section(**values)


def test_open_storage_signs_with_the_configured_keys(ceph_s3: CephS3, bucket: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    settings = storage_section(ceph_s3, bucket, tmp_path, s3_concurrency=2)
    storage = open_storage(settings)
    assert isinstance(storage, S3Storage) and storage.concurrency == 2
    source = write_file(tmp_path / "f.jpg", 123)
    storage.put_file("c1/s1/lot-001/face_login/try-01.jpg", source,
                     hashlib.sha256(source.read_bytes()).hexdigest())
    assert ceph_s3.client().head_object(Bucket=bucket, Key="c1/s1/lot-001/face_login/try-01.jpg")[
        "ContentType"] == "image/jpeg"
