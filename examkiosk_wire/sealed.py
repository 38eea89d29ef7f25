"""Sealed exam papers (F21): one AES-256-GCM blob per paper and sitting.

The edge seals a paper at import (``edge_server/services/papers.py``); the station opens it at the
start time with the key the edge releases then (``station/paper.py``). Both sides use this module,
so the convention lives in one place:

- the plaintext is the paper as UTF-8 JSON (``edge_server/services/paper_format.py`` documents it);
- the key is 32 random bytes, the nonce 12 random bytes (96 bits), fresh for every seal;
- the associated data is ``examkiosk-paper:<sitting id>``: a blob sealed for one sitting does not
  open as another's paper;
- ``sha256`` is the hex SHA-256 of the ciphertext (tag included), so a download is checked before
  the key exists.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class SealError(Exception):
    """A sealed paper cannot be opened: wrong key, wrong sitting, or the ciphertext was altered."""


@dataclass(frozen=True)
class SealedBlob:
    ciphertext: bytes
    nonce: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.ciphertext).hexdigest()


def associated_data(sitting_id: str) -> bytes:
    return f"examkiosk-paper:{sitting_id}".encode()


def seal(plaintext: bytes, sitting_id: str) -> tuple[bytes, SealedBlob]:
    """``(key, blob)``: ``plaintext`` encrypted under a fresh random key and nonce."""
    key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    return key, SealedBlob(AESGCM(key).encrypt(nonce, plaintext, associated_data(sitting_id)), nonce)


def unseal(key: bytes, blob: SealedBlob, sitting_id: str) -> bytes:
    """The plaintext; :class:`SealError` if the tag does not verify."""
    if len(key) != KEY_BYTES:
        raise SealError(f"the paper key must be {KEY_BYTES} bytes, not {len(key)}")
    if len(blob.nonce) != NONCE_BYTES:
        raise SealError(f"the paper nonce must be {NONCE_BYTES} bytes, not {len(blob.nonce)}")
    try:
        return AESGCM(key).decrypt(blob.nonce, blob.ciphertext, associated_data(sitting_id))
    except InvalidTag as exc:
        raise SealError("the sealed paper failed its integrity check (altered ciphertext, wrong key or "
                        "another sitting's paper)") from exc


def open_paper(key: bytes, blob: SealedBlob, sitting_id: str) -> dict[str, Any]:
    """The paper as a dict (title, instructions, questions); :class:`SealError` if it does not open."""
    plaintext = unseal(key, blob, sitting_id)
    try:
        paper = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SealError("the sealed paper opened but is not a paper (not UTF-8 JSON)") from exc
    if not isinstance(paper, dict) or not isinstance(paper.get("questions"), list):
        raise SealError("the sealed paper opened but has no questions")
    return paper


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError, AttributeError) as exc:
        raise SealError(f"{what} is not valid base64") from exc
