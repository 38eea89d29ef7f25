"""``S3Storage`` on a real S3 server (Ceph's RADOS Gateway): what is sent, what the store checks,
and that a ``HEAD`` confirms each object without reading it back."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from edge_server.storage import S3Storage, StorageError
from tests.edge_server.storage.conftest import PART, payload, watch, write_file
from tests.s3server import CephS3

KEY = "c1/s1/lot-001/segments/cam0_0001.mkv"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored(ceph_s3: CephS3, bucket: str, key: str) -> bytes | None:
    from botocore.exceptions import ClientError

    try:
        return ceph_s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise


def uploads_in_progress(ceph_s3: CephS3, bucket: str) -> list[dict]:
    return ceph_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_small_put_is_one_put_with_content_md5_confirmed_by_head(s3: S3Storage, ceph_s3: CephS3, bucket: str,
                                                                tmp_path: Path, progress):
    source = write_file(tmp_path / "q.mp4", 200_000)
    data = source.read_bytes()
    calls = watch(s3)
    seen, on_progress = progress
    key = "c1/s1/lot-001/questions/cam0_q1.mp4"

    s3.put_file(key, source, sha(data), on_progress=on_progress)

    # The folder is listed once: what it does not hold goes straight to the PUT.
    assert calls.take() == ["ListObjectsV2", "PutObject", "HeadObject"]
    assert (s3.bytes_sent, s3.bytes_read_back, s3.objects_sent) == (len(data), 0, 1)
    assert sum(seen) == len(data)
    head = ceph_s3.client().head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == {"sha256": sha(data)}
    assert head["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert head["ContentType"] == "video/mp4"  # the review player streams it as it is
    assert stored(ceph_s3, bucket, key) == data
    other = write_file(tmp_path / "q2.mp4", 1000, seed=2)
    s3.put_file("c1/s1/lot-001/questions/cam0_q2.mp4", other, sha(other.read_bytes()))
    assert calls.take() == ["PutObject", "HeadObject"]

    manifest = b'{"format": "examkiosk-manifest/1"}'
    assert s3.put_bytes("c1/s1/lot-001/manifest.json", manifest) == sha(manifest)
    assert calls.take() == ["ListObjectsV2", "PutObject", "HeadObject"]
    assert stored(ceph_s3, bucket, "c1/s1/lot-001/manifest.json") == manifest
    assert s3.bytes_read_back == 0


def test_multipart_put_sends_parts_in_flight_each_with_its_md5(s3: S3Storage, ceph_s3: CephS3, bucket: str,
                                                              tmp_path: Path, progress):
    size = 3 * PART + 1234  # four parts, the last a short one
    source = write_file(tmp_path / "big.mkv", size, seed=2)
    data = source.read_bytes()
    calls = watch(s3)
    seen, on_progress = progress
    # Part 1 is held back until part 2 has started: only parts sent side by side get through.
    second_started = threading.Event()
    waited: list[bool] = []

    def hold_first(params, model, **kwargs):
        if params.get("PartNumber") == 2:
            second_started.set()
        if params.get("PartNumber") == 1:
            waited.append(second_started.wait(60))

    s3.client.meta.events.register("provide-client-params.s3.UploadPart", hold_first)

    s3.put_file(KEY, source, sha(data), on_progress=on_progress)

    assert waited == [True], "part 2 did not start while part 1 was in flight"
    assert calls.take() == ["ListObjectsV2", "CreateMultipartUpload", *["UploadPart"] * 4,
                            "CompleteMultipartUpload", "HeadObject"]
    assert (s3.bytes_sent, s3.bytes_read_back) == (size, 0)
    assert sorted(seen) == sorted([PART, PART, PART, 1234]) and sum(seen) == size
    head = ceph_s3.client().head_object(Bucket=bucket, Key=KEY)
    part_md5s = b"".join(hashlib.md5(data[i:i + PART]).digest() for i in range(0, size, PART))
    assert head["ETag"].strip('"') == hashlib.md5(part_md5s).hexdigest() + "-4"
    assert head["Metadata"]["sha256"] == sha(data) and head["ContentLength"] == size
    assert stored(ceph_s3, bucket, KEY) == data
    assert uploads_in_progress(ceph_s3, bucket) == []


def test_second_put_of_the_same_file_sends_nothing(s3: S3Storage, ceph_s3: CephS3, bucket: str, tmp_path: Path,
                                                  progress):
    source = write_file(tmp_path / "seg.mkv", PART + 10, seed=3)
    digest = sha(source.read_bytes())
    s3.put_file(KEY, source, digest)
    sent = s3.bytes_sent
    calls = watch(s3)
    seen, on_progress = progress

    s3.put_file(KEY, source, digest, on_progress=on_progress)

    assert calls.take() == ["HeadObject"]
    assert (s3.bytes_sent, s3.bytes_read_back, s3.objects_skipped) == (sent, 0, 1)
    assert seen == [PART + 10]  # already there counts as done

    # The next sync job (a storage of its own) lists the folder afresh, then sees the object is there.
    again = S3Storage(bucket, ceph_s3.endpoint, ceph_s3.region, access_key=ceph_s3.access_key,
                      secret_key=ceph_s3.secret_key, multipart_threshold=PART, part_size=PART)
    calls = watch(again)
    again.put_file(KEY, source, digest)
    assert calls.take() == ["ListObjectsV2", "HeadObject"] and again.bytes_sent == 0


def test_a_file_changed_under_the_same_key_is_replaced(s3: S3Storage, ceph_s3: CephS3, bucket: str, tmp_path: Path):
    source = write_file(tmp_path / "seg.mkv", 50_000, seed=4)
    s3.put_file(KEY, source, sha(source.read_bytes()))
    changed = payload(50_000, seed=5)  # same size, other bytes
    source.write_bytes(changed)

    s3.put_file(KEY, source, sha(changed))

    assert stored(ceph_s3, bucket, KEY) == changed
    assert ceph_s3.client().head_object(Bucket=bucket, Key=KEY)["Metadata"]["sha256"] == sha(changed)
    assert s3.bytes_read_back == 0


class WrongMd5Storage(S3Storage):
    """Sends a ``Content-MD5`` that does not match the body of the part (or PUT) numbered ``bad``."""

    def __init__(self, *args, bad_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad_size = bad_size

    def _md5(self, data: bytes) -> bytes:
        digest = super()._md5(data)
        return hashlib.md5(data + b"!").digest() if len(data) == self.bad_size else digest


def wrong_md5_storage(ceph_s3: CephS3, bucket: str, bad_size: int) -> WrongMd5Storage:
    return WrongMd5Storage(bucket, ceph_s3.endpoint, ceph_s3.region, access_key=ceph_s3.access_key,
                           secret_key=ceph_s3.secret_key, multipart_threshold=PART, part_size=PART, concurrency=2,
                           bad_size=bad_size)


def test_the_store_refuses_a_body_that_does_not_match_its_content_md5(ceph_s3: CephS3, bucket: str, tmp_path: Path):
    source = write_file(tmp_path / "small.mkv", 70_000, seed=6)
    storage = wrong_md5_storage(ceph_s3, bucket, bad_size=70_000)

    with pytest.raises(StorageError) as caught:
        storage.put_file(KEY, source, sha(source.read_bytes()))

    assert KEY in str(caught.value) and "BadDigest" in str(caught.value)
    assert stored(ceph_s3, bucket, KEY) is None
    assert storage.bytes_sent == 0


def test_a_refused_part_aborts_the_multipart_upload(ceph_s3: CephS3, bucket: str, tmp_path: Path):
    size = 2 * PART + 999  # the last part is the damaged one: the others are in by then
    source = write_file(tmp_path / "big.mkv", size, seed=7)
    storage = wrong_md5_storage(ceph_s3, bucket, bad_size=999)
    calls = watch(storage)

    with pytest.raises(StorageError) as caught:
        storage.put_file(KEY, source, sha(source.read_bytes()))

    assert "part 3" in str(caught.value) and "BadDigest" in str(caught.value) and KEY in str(caught.value)
    assert calls.take()[-1] == "AbortMultipartUpload"
    assert uploads_in_progress(ceph_s3, bucket) == []
    assert stored(ceph_s3, bucket, KEY) is None


def test_a_source_that_no_longer_matches_its_checksum_is_not_stored(s3: S3Storage, ceph_s3: CephS3, bucket: str,
                                                                    tmp_path: Path):
    big = write_file(tmp_path / "big.mkv", PART + 5, seed=8)
    small = write_file(tmp_path / "small.mkv", 1000, seed=9)
    recorded = "0" * 64  # what the edge verified; the files on disk changed since

    for source, key in ((big, KEY), (small, KEY + ".small")):
        with pytest.raises(StorageError, match="does not match its checksum"):
            s3.put_file(key, source, recorded)
        assert stored(ceph_s3, bucket, key) is None
    assert uploads_in_progress(ceph_s3, bucket) == []


def test_store_errors_name_the_key_and_what_the_store_said(ceph_s3: CephS3, bucket: str, tmp_path: Path):
    source = write_file(tmp_path / "seg.mkv", 100, seed=10)
    digest = sha(source.read_bytes())
    missing = S3Storage(f"{bucket}-missing", ceph_s3.endpoint, ceph_s3.region, access_key=ceph_s3.access_key,
                        secret_key=ceph_s3.secret_key)
    with pytest.raises(StorageError) as caught:
        missing.put_file(KEY, source, digest)
    assert KEY in str(caught.value) and "404" in str(caught.value)

    wrong_key = S3Storage(bucket, ceph_s3.endpoint, ceph_s3.region, access_key=ceph_s3.access_key,
                          secret_key="not-the-secret")
    with pytest.raises(StorageError) as caught:
        wrong_key.put_bytes(KEY, b"x")
    assert KEY in str(caught.value) and "403" in str(caught.value)

    with pytest.raises(StorageError, match="bad object key"):
        missing.put_file("c1/../../etc/passwd", source, digest)
