"""The signed hash chain over an attempt's recording segments.

Every closed segment becomes one chain entry: its attempt, camera, sequence number, question,
server-time start and end, size and SHA-256, plus the hash of the previous entry of the same
camera. The entry hash is signed with the station's Ed25519 key (made once at first start and
registered with the edge), so the edge and any later reader can tell that no segment was
dropped, reordered or replaced. Station and edge both use this module, so they hash alike.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

GENESIS = ""


@dataclass(frozen=True)
class ChainEntry:
    attempt: str
    camera: str
    seq: int
    name: str
    question: int | None
    started_at: float
    ended_at: float
    size: int
    sha256: str
    prev: str

    def canonical(self) -> bytes:
        fields = asdict(self)
        fields["started_at"] = f"{self.started_at:.3f}"
        fields["ended_at"] = f"{self.ended_at:.3f}"
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


class StationKey:
    """The station's signing key, a PEM file with mode 0600."""

    def __init__(self, private: Ed25519PrivateKey):
        self._private = private

    @classmethod
    def load_or_create(cls, path: Path) -> "StationKey":
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 key")
            return cls(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return cls(key)

    @property
    def public_b64(self) -> str:
        raw = self._private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def sign(self, digest: str) -> str:
        return base64.b64encode(self._private.sign(bytes.fromhex(digest))).decode()

    def derived_key(self, purpose: str) -> bytes:
        """A 32-byte secret for ``purpose`` (HKDF-SHA256 of the private key): what the station seals
        with its own key (a started sitting's paper key in the journal). Never leaves the station."""
        raw = self._private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                          serialization.NoEncryption())
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(raw)


def valid_public_key(public_b64: str) -> bool:
    try:
        raw = base64.b64decode(public_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        return False
    return True


def verify(public_b64: str, digest: str, signature_b64: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), bytes.fromhex(digest))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# A move to another station (the seat map) starts a new link of each camera's chain on the new
# station at the move's base: move k starts at seq k × MOVE_SEQ_BLOCK with prev = GENESIS. The old
# station's segments keep their numbers below it, so names never collide, whatever either station
# has uploaded yet. One station never records MOVE_SEQ_BLOCK segments of one attempt (days of video).
MOVE_SEQ_BLOCK = 10_000


def move_seq_base(moves: int) -> int:
    """The first sequence number of a station that continues an attempt after ``moves`` moves."""
    return moves * MOVE_SEQ_BLOCK


def link_problems(links: list[tuple[int, str, str]], restarts: frozenset[int] = frozenset()) -> list[str]:
    """Problems in one camera's chain, given (seq, prev, entry) sorted by seq.

    ``restarts`` are the move bases (``move_seq_base``) of the attempt: a segment there may start a new
    link from GENESIS, and the numbers skipped before it (never recorded) are no gap.
    """
    problems = []
    expected_prev = GENESIS
    expected_seq = 0
    for seq, prev, entry in links:
        if seq in restarts and prev == GENESIS:
            expected_seq, expected_prev = seq, GENESIS
        if seq != expected_seq:
            problems.append(f"segment {expected_seq} is missing before {seq}")
        if prev != expected_prev:
            problems.append(f"segment {seq} does not link to the previous entry")
        expected_prev, expected_seq = entry, seq + 1
    return problems
