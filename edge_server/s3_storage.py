"""Central storage on any S3-compatible endpoint (boto3, imported only when configured).

Each PUT (each part of a multipart upload) goes with ``Content-MD5``, which the store checks on
receipt (a damaged body is refused: ``BadDigest``), and the SHA-256 as user metadata
(``x-amz-meta-sha256``); then ``HEAD`` confirms it: size, that metadata, and an ETag equal to the
MD5 it must have. Only when the store cannot confirm it (an ETag not of the MD5 form, as with
SSE-KMS, or the metadata missing) is the object read back in full and hashed. Whether an object
is there already comes from one ``ListObjectsV2`` of its folder (a snapshot kept for a short
while), then a ``HEAD`` of what is listed: an object absent from the listing costs no request
before its PUT.

Ceph 16's gateway has no flexible checksums (``ChecksumAlgorithm`` is accepted and ignored) and
does not understand boto3's default trailer checksums: the client asks for checksums only where
the API requires them. The body is not hashed a second time for the request signature
(``UNSIGNED-PAYLOAD``, as rclone and boto3 over https do): the signed ``Content-MD5`` header,
checked by the store, covers it.
"""
from __future__ import annotations

import hashlib
import logging
import mimetypes
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edge_server import s3_etag
from edge_server.central_storage import (
    BLOCK,
    CentralStorage,
    Progress,
    StorageError,
    checked_key,
    source_changed,
    source_size,
)
from examkiosk_wire.central import SHA256_META

logger = logging.getLogger(__name__)

LISTING_SECONDS = 120.0  # how long a folder's listing stands for what is in it
MAX_PARTS = 10_000  # S3's limit; a file that would need more gets bigger parts


def _store_said(exc: Exception) -> str:
    """What the store (or the connection to it) said, in one line."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code, message = error.get("Code", "?"), error.get("Message") or ""
        return f"{code}{': ' + message if message else ''} (HTTP {status})"
    return f"{type(exc).__name__}: {exc}"


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class S3Storage(CentralStorage):
    """Any S3 endpoint through boto3 (imported lazily: only needed when configured).

    Objects of at least ``multipart_threshold`` bytes go multipart: parts of ``part_size`` read
    from the file one after the other (never the whole file in memory), ``concurrency`` of them in
    flight. A failed multipart upload is aborted, so it leaves no parts behind.
    """

    def __init__(self, bucket: str, endpoint_url: str | None = None, region: str | None = None, *,
                 access_key: str | None = None, secret_key: str | None = None,
                 multipart_threshold: int = 16 * BLOCK, part_size: int = 8 * BLOCK, concurrency: int = 4):
        super().__init__()
        try:
            import boto3  # optional: only an edge whose central storage is S3 needs boto3
            from botocore.config import Config
        except ImportError as exc:
            raise StorageError(f"storage.backend 's3' needs boto3 (pip install boto3): {exc}") from exc
        self.bucket = bucket
        self.multipart_threshold, self.part_size, self.concurrency = multipart_threshold, part_size, concurrency
        config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                        s3={"payload_signing_enabled": False}, max_pool_connections=concurrency + 4,
                        connect_timeout=10, read_timeout=120, retries={"max_attempts": 5, "mode": "standard"})
        self._listings: dict[str, tuple[float, dict[str, int]]] = {}
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key,
                                   aws_secret_access_key=secret_key, config=config)

    def _md5(self, data: bytes) -> bytes:
        """The MD5 sent as ``Content-MD5`` and expected in the ETag (a hook for tests)."""
        return hashlib.md5(data).digest()

    def _fail(self, doing: str, key: str, exc: Exception) -> StorageError:
        return StorageError(f"cannot {doing} {key} in bucket {self.bucket}: {_store_said(exc)}")

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3 above

        try:
            return self.client.head_object(Bucket=self.bucket, Key=checked_key(key))
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail("look at", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("look at", key, exc) from exc

    def _listed(self, key: str) -> dict[str, int]:
        """Name -> size of the objects in ``key``'s folder (a snapshot at most LISTING_SECONDS old)."""
        from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3 above

        folder = key.rpartition("/")[0] + "/"
        with self._lock:
            cached = self._listings.get(folder)
        if cached is not None and time.monotonic() - cached[0] < LISTING_SECONDS:
            return cached[1]
        taken, names, token = time.monotonic(), {}, None
        try:
            while True:
                page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=folder, Delimiter="/",
                                                   **({"ContinuationToken": token} if token else {}))
                names.update({obj["Key"][len(folder):]: obj["Size"] for obj in page.get("Contents", [])})
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    break
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"list {folder} for", key, exc) from exc
        with self._lock:
            self._listings[folder] = (taken, names)
        return names

    def _note_stored(self, key: str, size: int) -> None:
        folder, _, name = key.rpartition("/")
        with self._lock:
            cached = self._listings.get(folder + "/")
            if cached is not None:
                cached[1][name] = size

    def _holds(self, key: str, size: int, sha256: str) -> bool:
        """The store has ``key`` with this size and SHA-256 metadata: listed, then confirmed by ``HEAD``."""
        if self._listed(key).get(key.rpartition("/")[2]) != size:
            return False
        head = self._head(key)
        return (head is not None and head.get("ContentLength") == size
                and head.get("Metadata", {}).get(SHA256_META) == sha256)

    def checksum(self, key: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3 above

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=checked_key(key))
            digest, read = hashlib.sha256(), 0
            for block in obj["Body"].iter_chunks(BLOCK):
                digest.update(block)
                read += len(block)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._fail("read", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("read", key, exc) from exc
        self._count(read_back=read)
        return digest.hexdigest()

    def stored_sha256(self, key: str) -> str | None:
        head = self._head(key)
        if head is None:
            return None
        return head.get("Metadata", {}).get(SHA256_META) or self.checksum(key)

    def _confirm(self, key: str, size: int, sha256: str, etag: str) -> None:
        """``HEAD``: size, metadata and ETag; the object is read back only if the store cannot vouch for it."""
        head = self._head(key)
        if head is None:
            raise StorageError(f"{key}: not in bucket {self.bucket} right after it was written")
        if head.get("ContentLength") != size:
            raise StorageError(f"{key}: bucket {self.bucket} holds {head.get('ContentLength')} bytes, {size} were sent")
        meta = head.get("Metadata", {}).get(SHA256_META)
        if meta is not None and meta != sha256:
            raise StorageError(f"{key}: bucket {self.bucket} holds SHA-256 metadata {meta}, {sha256} was sent")
        if meta == sha256 and s3_etag.confirms(head.get("ETag"), etag):
            return
        logger.info("%s: the store does not vouch for it (ETag %s, expected %s; metadata %s): reading it back",
                    key, head.get("ETag"), etag, "present" if meta else "missing")
        read_back = self.checksum(key)
        if read_back != sha256:
            raise StorageError(f"{key}: the SHA-256 read back from bucket {self.bucket} ({read_back}) is not "
                               f"{sha256}")

    def _put_single(self, key: str, data: bytes, sha256: str, on_progress: Progress) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3 above

        digest = self._md5(data)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=s3_etag.content_md5(digest),
                                   ContentType=_content_type(key), Metadata={SHA256_META: sha256})
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("write", key, exc) from exc
        self._count(sent=len(data), objects_sent=1)
        if on_progress is not None and data:
            on_progress(len(data))
        self._confirm(key, len(data), sha256, s3_etag.single_etag(digest))
        self._note_stored(key, len(data))

    def _upload_part(self, key: str, upload_id: str, number: int, block: bytes) -> tuple[str, bytes]:
        """Sends one part with its ``Content-MD5`` (hashed here, in the pool's thread); its ETag and MD5."""
        from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3 above

        digest = self._md5(block)
        try:
            etag = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                           Body=block, ContentMD5=s3_etag.content_md5(digest))["ETag"]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"write part {number} of", key, exc) from exc
        return etag, digest

    def _put_multipart(self, key: str, source: Path, size: int, sha256: str, on_progress: Progress) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3 above

        try:
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=_content_type(key), Metadata={SHA256_META: sha256})["UploadId"]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("start a multipart upload of", key, exc) from exc
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        digests: list[bytes] = []
        parts: list[dict[str, Any]] = []
        pending: deque[tuple[int, int, Future[tuple[str, bytes]]]] = deque()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-part")

        def finish_oldest() -> None:
            number, length, future = pending.popleft()
            etag, digest = future.result()
            parts.append({"PartNumber": number, "ETag": etag})
            digests.append(digest)
            self._count(sent=length)
            if on_progress is not None:
                on_progress(length)

        try:
            whole, read, number = hashlib.sha256(), 0, 0
            try:
                with open(source, "rb") as fh:
                    for block in iter(lambda: fh.read(part_size), b""):
                        whole.update(block)
                        read, number = read + len(block), number + 1
                        pending.append((number, len(block), pool.submit(self._upload_part, key, upload_id, number,
                                                                        block)))
                        while len(pending) >= self.concurrency:
                            finish_oldest()
            except OSError as exc:
                raise StorageError(f"{key}: cannot read the source {source}: {exc}") from exc
            while pending:
                finish_oldest()
            if read != size or whole.hexdigest() != sha256:
                raise source_changed(key, source, sha256, whole.hexdigest())
            try:
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                      MultipartUpload={"Parts": parts})
            except (ClientError, BotoCoreError) as exc:
                raise self._fail("complete the multipart upload of", key, exc) from exc
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # no part may land after the abort
            self._abort(key, upload_id)
            raise
        pool.shutdown(wait=True)
        self._count(objects_sent=1)
        self._confirm(key, size, sha256, s3_etag.multipart_etag(digests))
        self._note_stored(key, size)

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:  # the original failure is what the caller must see
            logger.warning("%s: could not abort multipart upload %s in bucket %s: %s", key, upload_id, self.bucket,
                           _store_said(exc))

    def put_file(self, key: str, source: Path, sha256: str, on_progress: Progress = None) -> None:
        size = source_size(checked_key(key), source)
        if self._holds(key, size, sha256):
            self._count(skipped=1)
            if on_progress is not None and size:
                on_progress(size)
            return
        if size < self.multipart_threshold:
            try:
                data = source.read_bytes()
            except OSError as exc:
                raise StorageError(f"{key}: cannot read the source {source}: {exc}") from exc
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha256:
                raise source_changed(key, source, sha256, actual)
            self._put_single(key, data, sha256, on_progress)
        else:
            self._put_multipart(key, source, size, sha256, on_progress)

    def put_bytes(self, key: str, data: bytes, on_progress: Progress = None) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if self._holds(checked_key(key), len(data), sha):
            self._count(skipped=1)
            if on_progress is not None and data:
                on_progress(len(data))
        else:
            self._put_single(key, data, sha, on_progress)
        return sha
