"""The streamed ZIP writer: a member far bigger than any chunk goes out piece by piece, and the
archive (ZIP64 data descriptors, stored media, deflated text) reads back with the sizes and
SHA-256 it reported."""
from __future__ import annotations

import hashlib
import io
import zipfile

from region_server.marking.zipstream import Member, Written, stream_zip

PIECE = 256 * 1024


def test_a_large_member_is_streamed_in_pieces_and_reads_back():
    def big():
        for i in range(96):  # 24 MiB, never held at once
            yield bytes([i]) * PIECE

    written: list[Written] = []
    chunks = stream_zip([Member("lot-001/main_q1.mp4", big), Member("flags.csv", lambda: [b"lot,kind\r\n" * 500],
                                                                     compress=True)], written)
    sizes, data = [], io.BytesIO()
    for chunk in chunks:
        sizes.append(len(chunk))
        data.write(chunk)
    assert max(sizes) <= PIECE + 1024 and len(sizes) >= 96
    archive = zipfile.ZipFile(data)
    assert archive.testzip() is None
    info = {i.filename: i for i in archive.infolist()}
    assert info["lot-001/main_q1.mp4"].compress_type == zipfile.ZIP_STORED
    assert info["flags.csv"].compress_type == zipfile.ZIP_DEFLATED
    expected = hashlib.sha256(b"".join(bytes([i]) * PIECE for i in range(96))).hexdigest()
    assert [(w.path, w.size, w.sha256) for w in written] == [
        ("lot-001/main_q1.mp4", 96 * PIECE, expected),
        ("flags.csv", 5000, hashlib.sha256(b"lot,kind\r\n" * 500).hexdigest())]
    assert hashlib.sha256(archive.read("lot-001/main_q1.mp4")).hexdigest() == expected
