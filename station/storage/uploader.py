"""Segment uploads to the edge with tus (the stock tuspy client), resumable across restarts.

Every closed segment is in the journal. A thread uploads them in order as they close, during the
exam too; the upload URL and offset are journaled, so after a crash or a network cut the upload
resumes from the server's offset. A network cut never stops the exam: segments just queue.
The same thread applies the retention (``station.storage.retention``): a verified segment's file is
deleted once ``keep_seconds`` have passed since the edge verified it.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any, Callable
from urllib.parse import urljoin

import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.request import TusRequest, catch_requests_error
from tusclient.uploader import Uploader
from tusclient.uploader.uploader import _verify_upload

from examkiosk_wire.pinning import pinned_session
from station.storage import retention
from station.storage.journal import Journal, JournalSegment

logger = logging.getLogger(__name__)

# How often the upload thread looks for files the retention lets it delete (also after each pass).
RETENTION_INTERVAL_S = 60.0
# Connect and read timeout of every tus request: a dead link fails the chunk, and it is retried.
HTTP_TIMEOUT_S = 60.0


class Sha256Uploader(Uploader):
    """tuspy's uploader with SHA-256 chunk checksums (the edge accepts sha1 and sha256), sending
    through the station's own ``requests`` session, so that the edge's certificate pin holds.

    tuspy 1.x calls ``requests.post/head/patch`` at module level (a fresh, unpinned session each
    time); the three methods that do so are redone here on ``session``, otherwise as tuspy has them.
    """

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

    def __init__(self, *args: Any, session: requests.Session | None = None, **kwargs: Any) -> None:
        self.session = session or requests.Session()  # before tuspy's __init__, which may ask for the offset
        super().__init__(*args, **kwargs)

    @catch_requests_error
    def create_url(self) -> str:
        resp = self.session.post(self.client.url, headers=self.get_url_creation_headers(), timeout=HTTP_TIMEOUT_S)
        url = resp.headers.get("location")
        if url is None:
            raise TusCommunicationError(f"Attempt to retrieve create file url with status {resp.status_code}",
                                        resp.status_code, resp.content)
        return urljoin(self.client.url, url)

    @catch_requests_error
    def get_offset(self) -> int:
        resp = self.session.head(self.url, headers=self.get_headers(), timeout=HTTP_TIMEOUT_S)
        offset = resp.headers.get("upload-offset")
        if offset is None:
            raise TusCommunicationError(f"Attempt to retrieve offset fails with status {resp.status_code}",
                                        resp.status_code, resp.content)
        return int(offset)

    def _do_request(self) -> None:
        self.request = _SessionTusRequest(self)
        try:
            self.request.perform()
            _verify_upload(self.request)
        except TusUploadFailed as error:
            self._retry_or_cry(error)


class _SessionTusRequest(TusRequest):
    """One PATCH of a chunk, through the uploader's session."""

    def __init__(self, uploader: Sha256Uploader) -> None:
        super().__init__(uploader)
        self._session = uploader.session

    def perform(self) -> None:
        try:
            chunk = self.file.read(self._content_length)
            self.add_checksum(chunk)
            resp = self._session.patch(self._url, data=chunk, headers=self._request_headers,
                                       timeout=HTTP_TIMEOUT_S)
            self.status_code = resp.status_code
            self.response_content = resp.content
            self.response_headers = {k.lower(): v for k, v in resp.headers.items()}
        except requests.exceptions.RequestException as error:
            raise TusUploadFailed(error) from error


def segment_metadata(seg: JournalSegment) -> dict[str, str]:
    return {
        "attempt": seg.attempt_id, "name": seg.name, "camera": seg.camera, "seq": str(seg.seq),
        "question": "" if seg.question is None else str(seg.question), "sha256": seg.sha256,
        "started_at": f"{seg.started_at:.3f}", "ended_at": f"{seg.ended_at:.3f}",
        "prev": seg.prev_hash, "entry": seg.entry_hash, "sig": seg.signature,
    }


class SegmentUploader:
    def __init__(self, journal: Journal, *, base_url: Callable[[], str | None], token: str, chunk_bytes: int,
                 on_link: Callable[[bool], None] = lambda ok: None, keep_seconds: float | None = None,
                 fingerprint: str | None = None):
        """``keep_seconds``: how long a verified segment's file stays (None: the uploader deletes nothing);
        ``fingerprint``: the edge certificate the station pins for https:// (``examkiosk_wire.pinning``)."""
        self.journal = journal
        self.keep_seconds = keep_seconds
        self._swept_at = float("-inf")
        self.base_url = base_url
        self.token = token
        self.chunk_bytes = chunk_bytes
        self.on_link = on_link
        self.session = pinned_session(fingerprint)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def sweep(self, force: bool = False) -> list[str]:
        """Apply the retention (at most every RETENTION_INTERVAL_S unless ``force``); names deleted."""
        if self.keep_seconds is None or (not force and time.monotonic() - self._swept_at < RETENTION_INTERVAL_S):
            return []
        self._swept_at = time.monotonic()
        try:
            return retention.sweep(self.journal, time.time(), self.keep_seconds)
        except Exception:  # the uploads go on whatever happens here
            logger.warning("retention sweep failed", exc_info=True)
            return []

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            self.sweep()
            pending = self.journal.pending()
            base = self.base_url()
            if not pending or base is None:
                self._wake.wait(2.0 if base is None else 5.0)
                self._wake.clear()
                continue
            try:
                for seg in pending:
                    if self._stop.is_set():
                        return
                    self.upload(base, seg)
                backoff = 1.0
                self.on_link(True)
                self.sweep(force=True)
            except (requests.RequestException, TusCommunicationError, TusUploadFailed, OSError) as exc:
                logger.warning("upload paused (%s); retrying in %.0f s", exc, backoff)
                self.on_link(False)
                self._wake.wait(backoff)
                self._wake.clear()
                backoff = min(backoff * 2, 15.0)

    def upload(self, base: str, seg: JournalSegment) -> None:
        """Upload one segment to the end; it is verified by the edge on the last chunk."""
        client = tus_client.TusClient(f"{base}/api/v1/uploads/", headers={"Authorization": f"Bearer {self.token}"})
        uploader = None
        if seg.upload_url:
            try:
                uploader = Sha256Uploader(file_path=str(seg.path), client=client, url=seg.upload_url,
                                          session=self.session,
                                          chunk_size=self.chunk_bytes, upload_checksum=True)
            except TusCommunicationError as exc:
                if exc.status_code not in (404, 410):
                    raise
                logger.info("edge forgot upload of %s; starting it again", seg.name)
        if uploader is None:
            uploader = Sha256Uploader(file_path=str(seg.path), client=client, chunk_size=self.chunk_bytes,
                                      session=self.session,
                                      metadata=segment_metadata(seg), upload_checksum=True)
            uploader.set_url(uploader.create_url())
            uploader.offset = 0
            self.journal.set_upload(seg.name, url=uploader.url, uploaded=0)
        while uploader.offset < seg.size:
            try:
                uploader.upload_chunk()
            except TusUploadFailed as exc:
                if exc.status_code == 460:
                    # The bytes on the edge do not match: start this segment over.
                    logger.warning("edge rejected %s as corrupt; uploading it again", seg.name)
                    self.journal.set_upload(seg.name, url="", uploaded=0)
                    raise
                if exc.status_code == 409:
                    uploader.offset = uploader.get_offset()
                    continue
                raise
            self.journal.set_upload(seg.name, uploaded=uploader.offset)
        if seg.size == 0 or uploader.offset >= seg.size:
            self.journal.mark_verified(seg.name)
            logger.info("segment %s verified by the edge", seg.name)
