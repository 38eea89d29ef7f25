"""The station's sealed paper (F21): ciphertext fetched ahead, key in memory only, opened at the start.

``PaperKeeper`` downloads a sitting's sealed paper (``GET /sittings/<id>/paper/sealed``) as soon
as the candidate is identified, checks its SHA-256 and caches it under ``<data_dir>/papers`` (the
ciphertext is useless without the key, so a power cut does not cost the download). The key comes
a few seconds before the start (the edge's ``[papers] key_lead_seconds``), pushed by the edge over
MQTT (a ``paper_key`` StationCommand, see :meth:`key_pushed`) or, when no push has arrived, asked
from the API (:meth:`fetch_key`); the paper is opened into memory then (:meth:`open` keeps the
opened paper), so the station shows it on its own timer at the very start. Until the sitting
starts the key and the opened paper live in this object's memory only: never on disk, in the
journal or a log line. Once the paper has opened after the start (it is no secret
then), :meth:`PaperKeeper.keep` seals it into the journal with the station's own key
(:class:`KeyVault`), so a station that crashes while the edge is unreachable opens the paper again
(:meth:`PaperKeeper.restore`); :meth:`PaperKeeper.forget` removes it when the attempt ends.
:meth:`open` decrypts and verifies the GCM tag; a blob that was altered raises
:class:`PaperDamaged` with a message saying so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from examkiosk_wire import sealed
from examkiosk_wire.chain import StationKey
from station.link import EdgeClient, EdgeRejected, EdgeUnavailable
from station.storage.journal import Journal

logger = logging.getLogger(__name__)


class PaperDamaged(Exception):
    """The sealed paper does not open: its ciphertext or key is not what the edge sealed."""


VAULT_PURPOSE = "examkiosk paper key vault v1"


class KeyVault:
    """Started sittings' paper keys in the journal, sealed with AES-256-GCM under a key derived from
    the station's own (``StationKey.derived_key``); the sitting is the associated data, so a sealed
    key copied onto another sitting's row does not open."""

    def __init__(self, journal: Journal, key: StationKey):
        self._journal = journal
        self._aead = AESGCM(key.derived_key(VAULT_PURPOSE))

    def keep(self, sitting: str, attempt: str, key: bytes) -> None:
        nonce = os.urandom(12)
        self._journal.keep_paper_key(sitting, attempt, nonce, self._aead.encrypt(nonce, key, sitting.encode()))

    def restore(self, attempt: str | None) -> dict[str, bytes]:
        """The keys kept for ``attempt``; any other attempt's are removed (it ended while the station was off)."""
        self._journal.drop_paper_keys(keep_attempt=attempt)
        keys: dict[str, bytes] = {}
        for sitting, _, nonce, sealed_key in self._journal.paper_keys():
            try:
                keys[sitting] = self._aead.decrypt(nonce, sealed_key, sitting.encode())
            except InvalidTag:
                logger.warning("the kept paper key of %s does not open with this station's key; ignoring it", sitting)
        return keys

    def clear(self) -> None:
        self._journal.drop_paper_keys()


class PaperKeeper:
    def __init__(self, cache_dir: Path, client: Callable[[], EdgeClient | None], vault: KeyVault | None = None):
        self.cache_dir = Path(cache_dir)
        self._client = client
        self._vault = vault
        self._keys: dict[str, bytes] = {}
        self._opened: dict[str, dict[str, Any]] = {}  # papers opened ahead of the start (memory only)
        self._lock = threading.Lock()

    def _path(self, sitting: str) -> Path:
        return self.cache_dir / f"{hashlib.sha256(sitting.encode()).hexdigest()[:32]}.sealed.json"

    # --- ciphertext ------------------------------------------------------------------------------
    def cached(self, sitting: str) -> sealed.SealedBlob | None:
        try:
            data = json.loads(self._path(sitting).read_text())
            blob = sealed.SealedBlob(sealed.unb64(data["ciphertext"], "the cached ciphertext"),
                                     sealed.unb64(data["nonce"], "the cached nonce"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, sealed.SealError) as exc:
            logger.warning("the cached sealed paper of %s is unreadable (%s); downloading it again", sitting, exc)
            return None
        if blob.sha256 != data.get("sha256"):
            logger.warning("the cached sealed paper of %s fails its checksum; downloading it again", sitting)
            return None
        return blob

    def prefetch(self, sitting: str) -> sealed.SealedBlob:
        """The sealed paper, from the cache or downloaded now (EdgeUnavailable/EdgeRejected if not)."""
        blob = self.cached(sitting)
        if blob is not None:
            return blob
        client = self._client()
        if client is None:
            raise EdgeUnavailable("the edge server has not been found yet")
        data = client.sealed_paper(sitting)
        try:
            blob = sealed.SealedBlob(sealed.unb64(data.ciphertext, "the ciphertext"), sealed.unb64(data.nonce, "the nonce"))
        except sealed.SealError as exc:
            raise PaperDamaged(f"the edge sent a sealed paper that cannot be read: {exc}") from exc
        if blob.sha256 != data.sha256:
            raise PaperDamaged("the downloaded sealed paper does not match its SHA-256 (damaged on the way)")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self._path(sitting)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"sitting": sitting, "ciphertext": data.ciphertext, "nonce": data.nonce,
                                   "sha256": blob.sha256}))
        os.replace(tmp, path)
        logger.info("sealed paper of %s downloaded (%d bytes, sha256 %s)", sitting, len(blob.ciphertext),
                    blob.sha256[:12])
        return blob

    # --- key -------------------------------------------------------------------------------------
    def has_key(self, sitting: str) -> bool:
        with self._lock:
            return sitting in self._keys

    def key_pushed(self, payload: dict[str, Any]) -> bool:
        """A ``paper_key`` command's payload ``{"sitting", "key"}``; False if it is malformed."""
        sitting, key = payload.get("sitting"), payload.get("key")
        if not isinstance(sitting, str) or not isinstance(key, str):
            logger.warning("ignoring a paper_key command without sitting and key")
            return False
        try:
            raw = sealed.unb64(key, "the paper key")
        except sealed.SealError:
            logger.warning("ignoring a paper_key command for %s: the key is not base64", sitting)
            return False
        if len(raw) != sealed.KEY_BYTES:
            logger.warning("ignoring a paper_key command for %s: the key has %d bytes", sitting, len(raw))
            return False
        with self._lock:
            if self._keys.get(sitting) != raw:
                self._opened.pop(sitting, None)
            self._keys[sitting] = raw
        logger.info("paper key of %s received", sitting)
        return True

    def fetch_key(self, sitting: str) -> bool:
        """Ask the API for the key (the fallback to the push); False while it is still sealed."""
        client = self._client()
        if client is None:
            raise EdgeUnavailable("the edge server has not been found yet")
        try:
            data = client.paper_key(sitting)
        except EdgeRejected as exc:
            if exc.code == "paper_sealed":
                return False
            raise
        return self.key_pushed(data.to_payload())

    def keep(self, sitting: str, attempt: str) -> None:
        """The sitting has started and its paper opened: seal its key into the journal (a restart
        without the edge opens it again). Call only after the start."""
        with self._lock:
            key = self._keys.get(sitting)
        if key is not None and self._vault is not None:
            self._vault.keep(sitting, attempt, key)

    def restore(self, attempt: str | None) -> None:
        """At the agent's start: the keys kept for ``attempt`` back into memory."""
        if self._vault is None:
            return
        keys = self._vault.restore(attempt)
        with self._lock:
            self._keys.update(keys)
        for sitting in keys:
            logger.info("paper key of %s restored from the journal", sitting)

    def forget(self) -> None:
        """The attempt is over: its key leaves memory and the journal."""
        with self._lock:
            self._keys.clear()
            self._opened.clear()
        if self._vault is not None:
            self._vault.clear()

    # --- opening ---------------------------------------------------------------------------------
    def opened(self, sitting: str) -> dict[str, Any] | None:
        """The paper already opened in memory (by :meth:`open`), or None."""
        with self._lock:
            return self._opened.get(sitting)

    def open(self, sitting: str) -> dict[str, Any]:
        """The paper (title, instructions, questions); needs the key; kept in memory, so opening it
        again (at the start) costs nothing. :class:`PaperDamaged` if it does not open (the cached
        copy is dropped so the next try downloads it again)."""
        with self._lock:
            key = self._keys.get(sitting)
            paper = self._opened.get(sitting)
        if paper is not None:
            return paper
        if key is None:
            raise LookupError(f"no paper key for {sitting} yet")
        blob = self.prefetch(sitting)
        try:
            paper = sealed.open_paper(key, blob, sitting)
        except sealed.SealError as exc:
            self._path(sitting).unlink(missing_ok=True)
            raise PaperDamaged(str(exc)) from exc
        with self._lock:
            if self._keys.get(sitting) == key:  # not forgotten meanwhile
                self._opened[sitting] = paper
        return paper
