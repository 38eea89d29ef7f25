"""The station's HTTPS to the edge, pinned to the edge certificate's fingerprint.

The edge runs as in a centre: gunicorn serving HTTPS with the certificate ``flask tls-certificate``
(here ``edge_fingerprint``) made. The station's API client and its tus uploader talk to it only
while the certificate is the pinned one.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_server.models import SegmentStatus
from examkiosk_wire.pinning import normalise_fingerprint
from station.config import ConfigError, load_settings
from station.link import EdgeClient, EdgeUnavailable, EdgeUntrusted
from station.storage.journal import Journal
from station.storage.uploader import SegmentUploader
from tests.edge_server.served import ServedEdge, served_edge


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEdge]:
    with served_edge(tmp_path_factory.mktemp("pinned-edge"), "st-tls", tls=True, workers=1) as served:
        yield served


def journal_with_segment(tmp_path: Path, attempt: str, seq: int, size: int = 300_000) -> tuple[Journal, str]:
    journal = Journal(tmp_path / "journal.db")
    name = f"{attempt}_main_{seq:05d}.mkv"
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    journal.add_segment(name=name, attempt_id=attempt, camera="main", seq=seq, question=1, path=path,
                        started_at=1_800_000_000.0 + 3 * seq, ended_at=1_800_000_003.0 + 3 * seq, size=size,
                        sha256=hashlib.sha256(data).hexdigest())
    return journal, name


def test_the_api_and_uploads_work_over_pinned_https(edge: ServedEdge, tmp_path: Path):
    assert edge.web.url.startswith("https://")
    # The pin as `openssl x509 -fingerprint -sha256` prints it is accepted too.
    shown = ":".join(edge.fp[i:i + 2] for i in range(0, 64, 2)).upper()
    with EdgeClient(edge.web.url, edge.token, fingerprint=shown) as client:
        assert client.schedule().station == "st-tls"

    journal, name = journal_with_segment(tmp_path, edge.attempt, seq=0)
    uploader = SegmentUploader(journal, base_url=lambda: edge.web.url, token=edge.token, chunk_bytes=128 * 1024,
                               fingerprint=edge.fp)
    (seg,) = journal.pending()
    uploader.upload(edge.web.url, seg)
    assert journal.pending() == []
    assert edge.segments()[name].status == SegmentStatus.VERIFIED


def test_another_certificate_is_refused_before_anything_is_sent(edge: ServedEdge, tmp_path: Path):
    other = "ab" * 32
    with EdgeClient(edge.web.url, edge.token, fingerprint=other) as client:
        with pytest.raises(EdgeUntrusted, match="not the pinned one"):
            client.schedule()

    journal, name = journal_with_segment(tmp_path, edge.attempt, seq=7, size=1000)
    uploader = SegmentUploader(journal, base_url=lambda: edge.web.url, token=edge.token, chunk_bytes=128 * 1024,
                               fingerprint=other)
    (seg,) = journal.pending()
    with pytest.raises(Exception, match="not the pinned one"):
        uploader.upload(edge.web.url, seg)
    assert [s.name for s in journal.pending()] == [name]  # kept for a trusted edge
    assert name not in edge.segments()  # the creation request never reached the edge


def test_without_a_pin_https_needs_a_ca_and_fails_closed(edge: ServedEdge):
    with EdgeClient(edge.web.url, edge.token) as client:
        with pytest.raises(EdgeUnavailable, match="SSLError"):
            client.schedule()


def test_fingerprints_are_normalised_or_refused():
    fp = "AB:" * 31 + "CD"
    assert normalise_fingerprint(fp) == "ab" * 31 + "cd"
    for bad in ("", "ab" * 31, "zz" * 32, "ab" * 33):
        with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
            normalise_fingerprint(bad)


def test_the_station_config_takes_a_fingerprint_as_openssl_prints_it_and_names_a_bad_one(tmp_path: Path,
                                                                                          monkeypatch):
    for key in [k for k in os.environ if k.startswith("EXAMKIOSK_")]:
        monkeypatch.delenv(key)
    config = tmp_path / "station.toml"

    def load(fp: str):
        config.write_text(f'station_id = "st-01"\ncentre = "c1"\n\n[edge]\ntoken = "t"\nfingerprint = "{fp}"\n')
        return load_settings(config)

    assert load("AB:" * 31 + "CD").edge.fingerprint == "ab" * 31 + "cd"
    assert load("").edge.fingerprint == ""
    with pytest.raises(ConfigError) as err:
        load("ab" * 31)
    assert "edge.fingerprint" in str(err.value) and "not a SHA-256 fingerprint" in str(err.value)
