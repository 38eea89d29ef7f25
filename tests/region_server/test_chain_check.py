"""The region's chain check (region_server/chain_check.py) on an attempt moved between two stations:
each link is checked against the key of the station that signed it, named per segment in the
manifest, so a move is no signature problem and a link signed by the wrong station still is."""
from __future__ import annotations

import hashlib

from examkiosk_wire.central import Chain, SegmentObject
from examkiosk_wire.chain import GENESIS, MOVE_SEQ_BLOCK, ChainEntry, StationKey
from region_server.chain_check import Found, check_chain

ATTEMPT = "a-moved"


def chain_of(stations: list[tuple[StationKey, list[int]]], *, name_keys: bool) -> tuple[list[SegmentObject], dict]:
    """Segments of camera main: each station records its seqs (a move restarts from GENESIS)."""
    objects, found = [], {}
    for station, seqs in stations:
        prev = GENESIS
        for seq in seqs:
            body = f"{seq}".encode() * 100
            sha = hashlib.sha256(body).hexdigest()
            name = f"{ATTEMPT}_main_{seq:05d}.mkv"
            entry = ChainEntry(attempt=ATTEMPT, camera="main", seq=seq, name=name, question=1,
                               started_at=float(seq), ended_at=seq + 1.0, size=len(body), sha256=sha, prev=prev)
            digest = entry.digest()
            key = f"c/s/lot-001/segments/{name}"
            objects.append(SegmentObject(key=key, sha256=sha, size=len(body), camera="main", seq=seq, question=1,
                                         started_at=float(seq), ended_at=seq + 1.0,
                                         chain=Chain(prev=prev, entry=digest, sig=station.sign(digest),
                                                     key=station.public_b64 if name_keys else None)))
            found[key] = Found(len(body), sha)
            prev = digest
    return objects, found


def test_a_moved_attempt_verifies_link_by_link_with_each_stations_key(tmp_path) -> None:
    first, second = (StationKey.load_or_create(tmp_path / f"{n}.pem") for n in ("st-01", "st-02"))
    objects, found = chain_of([(first, [0, 1, 2]), (second, [MOVE_SEQ_BLOCK, MOVE_SEQ_BLOCK + 1])], name_keys=True)
    # The manifest's own key is the station the attempt ended on; the first station's links name theirs.
    assert check_chain(ATTEMPT, second.public_b64, objects, found, []) == []


def test_without_the_per_segment_keys_the_first_stations_links_do_not_verify(tmp_path) -> None:
    first, second = (StationKey.load_or_create(tmp_path / f"{n}.pem") for n in ("st-01", "st-02"))
    objects, found = chain_of([(first, [0, 1]), (second, [MOVE_SEQ_BLOCK])], name_keys=False)
    problems = check_chain(ATTEMPT, second.public_b64, objects, found, [])
    assert [(p.key.rsplit("_", 1)[1], p.message) for p in problems] == [
        ("00000.mkv", "main segment 0: the station's signature does not verify"),
        ("00001.mkv", "main segment 1: the station's signature does not verify"),
    ]


def test_a_link_that_names_the_wrong_station_is_a_signature_problem(tmp_path) -> None:
    first, second = (StationKey.load_or_create(tmp_path / f"{n}.pem") for n in ("st-01", "st-02"))
    objects, found = chain_of([(first, [0, 1])], name_keys=True)
    forged = objects[1].model_copy(update={"chain": objects[1].chain.model_copy(update={"key": second.public_b64})})
    problems = check_chain(ATTEMPT, first.public_b64, [objects[0], forged], found, [])
    assert [p.message for p in problems] == ["main segment 1: the station's signature does not verify"]
