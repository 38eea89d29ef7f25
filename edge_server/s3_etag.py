"""What an S3 store's ETag says about an object's bytes (pure: no I/O).

A plain PUT's ETag is the hex MD5 of the body; a multipart upload's is the hex MD5 of the
concatenated binary MD5s of its parts, then ``-<number of parts>``. Stores that encrypt with
their own keys (SSE-KMS, SSE-C) or compute ETags otherwise give something else: such an ETag
confirms nothing, and the caller must read the object back to know what it holds.
"""
from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

_MD5_ETAG = re.compile(r"^[0-9a-f]{32}(-[1-9][0-9]{0,4})?$")


def content_md5(digest: bytes) -> str:
    """The ``Content-MD5`` header for a binary MD5 digest (base64, as RFC 1864 wants)."""
    return base64.b64encode(digest).decode("ascii")


def single_etag(digest: bytes) -> str:
    """The ETag a plain PUT of a body with this MD5 gets (unquoted, lower-case hex)."""
    return digest.hex()


def multipart_etag(part_digests: Iterable[bytes]) -> str:
    """The ETag a multipart upload of parts with these MD5s gets: ``md5(d1 + d2 + ...)-N``."""
    digests = list(part_digests)
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def normalise(etag: str | None) -> str:
    """An ETag header without quotes (and the weak ``W/`` prefix), lower-case."""
    value = (etag or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"').lower()


def confirms(etag: str | None, expected: str) -> bool:
    """Whether the store's ``etag`` vouches for the bytes whose MD5 ETag is ``expected``: only an
    ETag of the MD5 form that equals it does."""
    value = normalise(etag)
    return bool(_MD5_ETAG.match(value)) and value == normalise(expected)

