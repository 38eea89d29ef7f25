"""The segment hash chain: canonical hashing, signatures, link checks."""
from pathlib import Path

from examkiosk_wire.chain import GENESIS, ChainEntry, StationKey, link_problems, valid_public_key, verify


def entry(seq: int, prev: str, sha: str = "a" * 64) -> ChainEntry:
    return ChainEntry(attempt="a1", camera="main", seq=seq, name=f"a1_main_{seq:05d}.mkv", question=None,
                      started_at=100.0 + seq * 3, ended_at=103.0 + seq * 3, size=1000, sha256=sha, prev=prev)


def test_key_is_made_once_private_and_signs_verifiably(tmp_path: Path):
    path = tmp_path / "station_key.pem"
    key = StationKey.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert StationKey.load_or_create(path).public_b64 == key.public_b64
    assert valid_public_key(key.public_b64) and not valid_public_key("not a key")
    digest = entry(0, GENESIS).digest()
    signature = key.sign(digest)
    assert verify(key.public_b64, digest, signature)
    other = StationKey.load_or_create(tmp_path / "other.pem")
    assert not verify(other.public_b64, digest, signature)
    assert not verify(key.public_b64, entry(0, GENESIS, sha="b" * 64).digest(), signature)


def test_any_changed_field_changes_the_entry_hash():
    base = entry(3, "f" * 64)
    assert entry(3, "f" * 64).digest() == base.digest()
    assert entry(3, "e" * 64).digest() != base.digest()
    assert entry(4, "f" * 64).digest() != base.digest()
    assert entry(3, "f" * 64, sha="0" * 64).digest() != base.digest()


def test_link_problems_find_gaps_reordering_and_broken_links():
    e0 = entry(0, GENESIS)
    e1 = entry(1, e0.digest())
    e2 = entry(2, e1.digest())
    chain = [(e.seq, e.prev, e.digest()) for e in (e0, e1, e2)]
    assert link_problems(chain) == []
    assert link_problems([chain[0], chain[2]]) == ["segment 1 is missing before 2",
                                                   "segment 2 does not link to the previous entry"]
    assert link_problems(chain[1:]) == ["segment 0 is missing before 1", "segment 1 does not link to the previous entry"]
    forged = (1, "0" * 64, entry(1, "0" * 64).digest())
    assert link_problems([chain[0], forged]) == ["segment 1 does not link to the previous entry"]
