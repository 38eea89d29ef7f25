"""The read side of central storage: key order and StartAfter, ranges, and a directory store that refuses
to leave its root; the same calls on the Ceph RADOS Gateway."""
from __future__ import annotations

import os

import pytest

from region_server.config import StorageSection
from region_server.errors import ObjectMissing, StoreError
from region_server.store import DirectoryStore, open_store


@pytest.mark.parametrize("central", ["directory", "s3"], indirect=True)
def test_list_head_get_and_ranges_behave_alike_on_both_backends(central):
    w = central.writer
    for key in ("c2/s/x.json", "c1/s/b/manifest.json", "c1/s/a/manifest.json", "c1/s/a/segments/z.mkv"):
        w.put(key, key.encode() * 3)
    store = open_store(StorageSection(**central.storage))
    assert store.centres() == ["c1", "c2"]
    keys = [item.key for item in store.list("c1/")]
    assert keys == ["c1/s/a/manifest.json", "c1/s/a/segments/z.mkv", "c1/s/b/manifest.json"]
    assert [item.key for item in store.list("c1/", start_after="c1/s/a/segments/z.mkv")] == ["c1/s/b/manifest.json"]
    assert [item.key for item in store.list("c1/s/a/")] == keys[:2]
    info = store.head("c1/s/a/manifest.json")
    assert info is not None and info.size == len(b"c1/s/a/manifest.json") * 3 and info.etag
    assert store.head("c1/s/none.json") is None
    assert store.get("c2/s/x.json") == b"c2/s/x.json" * 3
    assert b"".join(store.open_range("c2/s/x.json", 2, 5)) == b"c2/s/x.json"[2:6]
    assert b"".join(store.iter_chunks("c2/s/x.json")) == b"c2/s/x.json" * 3
    with pytest.raises(ObjectMissing):
        store.get("c1/nothing")
    for bad in ("../etc/passwd", "/abs", "c1/../../x", "c1//x", "c1/./x"):
        with pytest.raises(StoreError):
            store.get(bad)
    if central.backend == "s3":
        assert store.presign("c2/s/x.json", 60).startswith(central.storage["s3_endpoint_url"])
    else:
        assert store.presign("c2/s/x.json", 60) is None


def test_the_directory_store_never_leaves_its_root(tmp_path):
    root = tmp_path / "central"
    (root / "c1").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    os.symlink(secret, root / "c1" / "link.json")
    os.symlink(tmp_path, root / "c1" / "up")
    store = DirectoryStore(root)
    with pytest.raises(StoreError, match="outside"):
        store.get("c1/link.json")
    with pytest.raises(StoreError, match="outside"):
        store.head("c1/up/secret.txt")
    assert DirectoryStore(tmp_path / "absent").centres() == []
