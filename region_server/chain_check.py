"""The station-signed hash chain of an attempt, checked against what central storage holds. Pure.

For every camera the segments are taken in sequence order; each entry's digest is recomputed from
the manifest's fields with the size and SHA-256 *found* in storage (the region trusts no edge), its
signature checked against the public key of the station that signed it (the segment's own, else the
manifest's: a moved attempt holds two stations' links), and the links and gaps checked with
``examkiosk_wire.chain.link_problems``. Every problem names the segment's key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from examkiosk_wire.central import SegmentObject
from examkiosk_wire.chain import MOVE_SEQ_BLOCK, ChainEntry, link_problems, verify


@dataclass(frozen=True)
class Found:
    """What storage holds for a segment: its size and (after a re-hash) its SHA-256; None where unknown."""

    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class ChainProblem:
    key: str
    message: str


def restarts_of(seqs: list[int]) -> frozenset[int]:
    """The move bases a chain may restart at (every multiple of MOVE_SEQ_BLOCK up to the highest seq)."""
    top = max(seqs, default=0)
    return frozenset(k * MOVE_SEQ_BLOCK for k in range(1, top // MOVE_SEQ_BLOCK + 1))


def check_chain(attempt: str, public_key: str | None, segments: list[SegmentObject],
                found: dict[str, Found], inserted: list[str]) -> list[ChainProblem]:
    """Every problem of the attempt's chains; ``found`` by key (absent: missing), ``inserted``: keys under
    segments/ that no manifest entry lists."""
    problems: list[ChainProblem] = []
    unsigned = [s for s in segments if not (s.chain.key or public_key)]
    if unsigned:
        problems.append(ChainProblem(unsigned[0].key, "the manifest names no station key: the chain cannot be checked"))
    for key in inserted:
        problems.append(ChainProblem(key, "inserted: a segment in storage that the signed chain does not list"))
    by_camera: dict[str, list[SegmentObject]] = {}
    for seg in segments:
        by_camera.setdefault(seg.camera, []).append(seg)
    for camera, chain in sorted(by_camera.items()):
        chain.sort(key=lambda s: s.seq)
        keys_by_seq = {s.seq: s.key for s in chain}
        for seg in chain:
            there = found.get(seg.key)
            if there is None or there.size is None:
                problems.append(ChainProblem(seg.key, f"{camera} segment {seg.seq} is missing from storage"))
                continue
            entry = ChainEntry(attempt=attempt, camera=camera, seq=seg.seq, name=PurePosixPath(seg.key).name,
                               question=seg.question, started_at=seg.started_at or 0.0, ended_at=seg.ended_at or 0.0,
                               size=there.size, sha256=there.sha256 or seg.sha256, prev=seg.chain.prev)
            if entry.digest() != seg.chain.entry:
                problems.append(ChainProblem(seg.key, f"{camera} segment {seg.seq} was changed: its content or fields "
                                                      "no longer match its signed chain entry"))
            elif (signer := seg.chain.key or public_key) and not verify(signer, seg.chain.entry, seg.chain.sig):
                problems.append(ChainProblem(seg.key, f"{camera} segment {seg.seq}: the station's signature "
                                                      "does not verify"))
        links = [(s.seq, s.chain.prev, s.chain.entry) for s in chain]
        for message in link_problems(links, restarts_of([s.seq for s in chain])):
            seq = _seq_named(message)
            key = keys_by_seq.get(seq, chain[0].key) if seq is not None else chain[0].key
            problems.append(ChainProblem(key, f"{camera}: {message}"))
    return problems


def _seq_named(message: str) -> int | None:
    """The segment a ``link_problems`` message is about (the later one for a gap)."""
    words = message.split()
    numbers = [int(w) for w in words if w.isdigit()]
    if not numbers:
        return None
    return numbers[-1]
