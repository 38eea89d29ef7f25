"""What an ETag confirms: only the MD5 form, equal to the MD5 the bytes sent must have."""
from __future__ import annotations

import base64
import hashlib

from edge_server import s3_etag


def test_single_and_multipart_etags():
    body = b"abc" * 1000
    assert s3_etag.single_etag(hashlib.md5(body).digest()) == hashlib.md5(body).hexdigest()
    assert s3_etag.content_md5(hashlib.md5(body).digest()) == base64.b64encode(hashlib.md5(body).digest()).decode()
    digests = [hashlib.md5(b"one").digest(), hashlib.md5(b"two").digest()]
    assert s3_etag.multipart_etag(digests) == hashlib.md5(digests[0] + digests[1]).hexdigest() + "-2"


def test_only_an_equal_md5_form_etag_confirms():
    md5 = hashlib.md5(b"x").hexdigest()
    assert s3_etag.confirms(f'"{md5}"', md5)
    assert s3_etag.confirms(f'W/"{md5.upper()}"', md5)
    assert s3_etag.confirms(f'"{md5}-3"', f"{md5}-3")
    assert not s3_etag.confirms(f'"{md5}-3"', f"{md5}-4")
    assert not s3_etag.confirms(f'"{hashlib.md5(b"y").hexdigest()}"', md5)
    sha1 = hashlib.sha1(b"x").hexdigest()  # a store's own ETag (SSE-KMS): confirms nothing
    assert not s3_etag.confirms(f'"{sha1}"', sha1)
    assert not s3_etag.confirms(None, md5) and not s3_etag.confirms('""', "")
