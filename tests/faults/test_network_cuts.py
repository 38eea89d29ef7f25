"""Fault 3: a TCP proxy between the station's uploader and the edge cuts connections mid-chunk.

The edge web app runs under gunicorn in a process of its own; the station's ``SegmentUploader``
(journal + tuspy, SHA-256 chunk checksums) talks to it only through ``tests/faults/proxy.py``,
which resets the connection three times per segment, each time inside a request body. After each
cut the upload is tried again from its journal row, as the station's upload thread does.

Asserted: every segment ends verified on the edge with its SHA-256 (database and file), and no
cut costs more than one chunk: the request-body bytes the proxy forwarded in a failed try, less
what the server kept, are at most ``chunk_bytes``; so a segment costs at most one chunk per cut.
"""
from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from edge_server.models import SegmentStatus
from station.storage.journal import Journal
from station.storage.uploader import SegmentUploader
from tests.edge_server.served import ServedEdge, served_edge
from tests.faults.proxy import CuttingProxy, upload_through_cuts

pytestmark = pytest.mark.faults

CHUNK = 64 * 1024  # the smallest chunk the station allows: every segment is several chunks
CUTS_PER_SEGMENT = 3
# Sizes: several whole chunks, a short last chunk, exactly one chunk, and a large segment.
SIZES = [5 * CHUNK, 4 * CHUNK + 12_345, CHUNK, 9 * CHUNK + 1]
NETWORK_ERRORS = (requests.RequestException, TusCommunicationError, TusUploadFailed, OSError)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[ServedEdge]:
    """A migrated SQLite edge with one open attempt, served by gunicorn from its config file."""
    with served_edge(tmp_path, "st-cut") as served:
        yield served


def test_cuts_mid_chunk_cost_at_most_one_chunk_each(edge: ServedEdge, tmp_path: Path):
    rng = random.Random(20261125)
    journal = Journal(tmp_path / "station" / "journal.db")
    files: dict[str, bytes] = {}
    for seq, size in enumerate(SIZES):
        name = f"{edge.attempt}_main_{seq:05d}.mkv"
        data = os.urandom(size)
        path = tmp_path / "station" / name
        path.write_bytes(data)
        journal.add_segment(name=name, attempt_id=edge.attempt, camera="main", seq=seq, question=1, path=path,
                            started_at=1_800_000_000.0 + 3 * seq, ended_at=1_800_000_003.0 + 3 * seq, size=size,
                            sha256=hashlib.sha256(data).hexdigest())
        files[name] = data

    proxy = CuttingProxy(edge.web.port)
    uploader = SegmentUploader(journal, base_url=lambda: proxy.url, token=edge.token, chunk_bytes=CHUNK)
    reports = {}
    try:
        for name, data in files.items():
            # Three cut points inside the segment's bytes, so all three happen before it is done.
            points = sorted(rng.sample(range(1, len(data)), CUTS_PER_SEGMENT))
            gaps = [b - a for a, b in zip([0, *points], points, strict=False)]
            reports[name] = upload_through_cuts(proxy, uploader, journal, edge.attempt, name, gaps, edge.offset,
                                                network_errors=NETWORK_ERRORS)
    finally:
        proxy.close()
        journal.close()

    # Every segment verified on the edge, with the SHA-256 the station declared, its file intact.
    rows = edge.segments()
    assert sorted(rows) == sorted(files)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        assert rows[name].status == SegmentStatus.VERIFIED, name
        assert rows[name].sha256_actual == rows[name].sha256_declared == digest
        stored = edge.settings.recordings_dir / edge.attempt / name
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest

    for name, report in reports.items():
        size = len(files[name])
        # Every planned cut happened, mid-body, and each cost one failed try.
        assert report.cuts == CUTS_PER_SEGMENT, name
        assert report.retries == CUTS_PER_SEGMENT, name
        # A cut costs at most the chunk in flight; what the server had kept is never sent again.
        assert max(report.lost_body_per_cut) <= CHUNK, (name, report.lost_body_per_cut)
        assert report.body_forwarded - size == sum(report.lost_body_per_cut)
        assert report.body_forwarded - size <= CUTS_PER_SEGMENT * CHUNK
    # The cuts really landed inside chunks: some of them cost bytes.
    assert any(lost > 0 for r in reports.values() for lost in r.lost_body_per_cut)
