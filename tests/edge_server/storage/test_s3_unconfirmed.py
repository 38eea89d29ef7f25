"""A store whose ETag is not an MD5 (as with SSE-KMS): Ceph always gives MD5 ETags, so this one
fault runs on moto, whose ETag the test replaces. Then, and only then, the object is read back."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import pytest

from edge_server.storage import S3Storage
from tests.edge_server.storage.conftest import PART, watch, write_file
from tests.services import free_port


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def opaque_etags(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's objects (and parts) get the store's own ETag: a SHA-1, which is no MD5."""
    from moto.s3.models import FakeKey

    monkeypatch.setattr(FakeKey, "etag", property(lambda key: f'"{hashlib.sha1(key.value).hexdigest()}"'))


@pytest.mark.parametrize("size", [40_000, 2 * PART + 7], ids=["single", "multipart"])
def test_an_etag_that_is_no_md5_makes_it_read_back_in_full(moto_endpoint: str, opaque_etags, tmp_path: Path,
                                                           size: int):
    storage = S3Storage("central", moto_endpoint, "us-east-1", access_key="testing", secret_key="testing",
                        multipart_threshold=PART, part_size=PART, concurrency=2)
    storage.client.create_bucket(Bucket="central")
    source = write_file(tmp_path / "seg.mkv", size, seed=size)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    calls = watch(storage)

    storage.put_file("c1/s1/lot-001/segments/a.mkv", source, digest)

    assert calls.take()[-2:] == ["HeadObject", "GetObject"]
    assert (storage.bytes_sent, storage.bytes_read_back) == (size, size)

    storage.put_file("c1/s1/lot-001/segments/a.mkv", source, digest)  # stored: size and metadata match
    assert calls.take() == ["HeadObject"]
    assert storage.bytes_read_back == size
