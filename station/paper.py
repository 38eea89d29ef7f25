"""The station's sealed paper (F21): ciphertext fetched ahead, key in memory only, opened at the start.

``PaperKeeper`` downloads a sitting's sealed paper (``GET /sittings/<id>/paper/sealed``) as soon
as the candidate is identified, checks its SHA-256 and caches it under ``<data_dir>/papers`` (the
ciphertext is useless without the key, so a power cut does not cost the download). The key comes
at the start time, pushed by the edge over MQTT (a ``paper_key`` StationCommand, see
:meth:`key_pushed`) or, when no push has arrived, asked from the API once the start has passed
(:meth:`fetch_key`). It is kept in this object's memory only: never written to disk, the journal
or a log line. :meth:`open` decrypts and verifies the GCM tag; a blob that was altered raises
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

from examkiosk_wire import sealed
from station.link import EdgeClient, EdgeRejected, EdgeUnavailable

logger = logging.getLogger(__name__)


class PaperDamaged(Exception):
    """The sealed paper does not open: its ciphertext or key is not what the edge sealed."""


class PaperKeeper:
    def __init__(self, cache_dir: Path, client: Callable[[], EdgeClient | None]):
        self.cache_dir = Path(cache_dir)
        self._client = client
        self._keys: dict[str, bytes] = {}
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

    def forget(self) -> None:
        with self._lock:
            self._keys.clear()

    # --- opening ---------------------------------------------------------------------------------
    def open(self, sitting: str) -> dict[str, Any]:
        """The paper (title, instructions, questions); needs the key. :class:`PaperDamaged` if it
        does not open (the cached copy is dropped so the next try downloads it again)."""
        with self._lock:
            key = self._keys.get(sitting)
        if key is None:
            raise LookupError(f"no paper key for {sitting} yet")
        blob = self.prefetch(sitting)
        try:
            return sealed.open_paper(key, blob, sitting)
        except sealed.SealError as exc:
            self._path(sitting).unlink(missing_ok=True)
            raise PaperDamaged(str(exc)) from exc
