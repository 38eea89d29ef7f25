"""``DirectoryStorage``: hashed while copied (no second read of the source, none of the copy),
durable (temporary file, fsync, rename), idempotent, and nothing lost on bad input."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge_server.storage import DirectoryStorage, StorageError
from tests.edge_server.storage.conftest import payload, write_file

KEY = "c1/s1/lot-001/segments/cam0_0001.mkv"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_copies_hashing_as_it_goes_and_reads_nothing_back(tmp_path: Path, progress):
    central = DirectoryStorage(tmp_path / "central")
    source = write_file(tmp_path / "seg.mkv", 3 * (1 << 20) + 17)
    data = source.read_bytes()
    seen, on_progress = progress

    central.put_file(KEY, source, sha(data), on_progress=on_progress)

    target = tmp_path / "central" / KEY
    assert target.read_bytes() == data
    assert not target.with_name(target.name + ".tmp").exists()
    assert (central.bytes_sent, central.bytes_read_back, central.objects_sent) == (len(data), 0, 1)
    assert sum(seen) == len(data)
    assert central.put_bytes("c1/s1/lot-001/manifest.json", b"{}") == sha(b"{}")
    assert (tmp_path / "central/c1/s1/lot-001/manifest.json").read_bytes() == b"{}"


def test_second_put_leaves_the_stored_file_alone(tmp_path: Path, progress):
    central = DirectoryStorage(tmp_path / "central")
    source = write_file(tmp_path / "seg.mkv", 10_000)
    central.put_file(KEY, source, sha(source.read_bytes()))
    target = tmp_path / "central" / KEY
    mtime = target.stat().st_mtime_ns
    seen, on_progress = progress

    central.put_file(KEY, source, sha(source.read_bytes()), on_progress=on_progress)

    assert target.stat().st_mtime_ns == mtime
    assert (central.bytes_sent, central.objects_skipped) == (10_000, 1)
    assert seen == [10_000]


def test_a_stored_file_of_another_size_is_replaced_without_hashing_it(tmp_path: Path):
    central = DirectoryStorage(tmp_path / "central")
    target = write_file(tmp_path / "central" / KEY, 5000, seed=1)
    source = write_file(tmp_path / "seg.mkv", 6000, seed=2)

    central.put_file(KEY, source, sha(source.read_bytes()))

    assert target.read_bytes() == source.read_bytes()
    assert central.bytes_read_back == 0


def test_a_source_that_does_not_match_its_checksum_loses_nothing(tmp_path: Path):
    central = DirectoryStorage(tmp_path / "central")
    old = write_file(tmp_path / "central" / KEY, 4000, seed=3)
    before = old.read_bytes()
    source = write_file(tmp_path / "seg.mkv", 4000, seed=4)

    with pytest.raises(StorageError) as caught:
        central.put_file(KEY, source, sha(payload(4000, seed=5)))

    assert KEY in str(caught.value) and "checksum" in str(caught.value)
    assert old.read_bytes() == before  # the stored copy is untouched
    assert not old.with_name(old.name + ".tmp").exists()
    assert source.read_bytes() == payload(4000, seed=4)


@pytest.mark.parametrize("key", ["../escape.mkv", "/abs/key", "c1//x", "c1/./x", ""])
def test_bad_keys_are_refused(tmp_path: Path, key: str):
    central = DirectoryStorage(tmp_path / "central")
    source = write_file(tmp_path / "seg.mkv", 10)
    with pytest.raises(StorageError, match="bad object key"):
        central.put_file(key, source, sha(source.read_bytes()))
    assert not (tmp_path / "escape.mkv").exists()
