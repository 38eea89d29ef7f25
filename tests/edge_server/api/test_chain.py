"""The edge checks each segment's signed chain entry and the links between them."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import requests

from edge_server.extensions import db
from examkiosk_wire.chain import ChainEntry, StationKey
from station.storage.journal import Journal
from station.storage.uploader import SegmentUploader
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station


@pytest.fixture
def signed(app, live_server, tmp_path: Path):
    with app.app_context():
        station, token = make_station(db.session, "c1", "st-01")
        sitting = make_sitting(db.session, "c1", starts_in=-60)
        attempt = make_attempt(db.session, make_candidate(db.session, sitting), station)
        db.session.commit()
        attempt_id = attempt.id
    key = StationKey.load_or_create(tmp_path / "key.pem")
    headers = {"Authorization": f"Bearer {token}"}
    r = requests.post(f"{live_server}/api/v1/station-key", json={"public_key": key.public_b64}, headers=headers)
    assert r.status_code == 200
    journal = Journal(tmp_path / "journal.db")
    return live_server, token, headers, attempt_id, key, journal, tmp_path


def add_segment(journal: Journal, key: StationKey, attempt: str, seq: int, tmp: Path, *, prev: str | None = None,
                sign_with: StationKey | None = None) -> str:
    data = os.urandom(50_000)
    name = f"{attempt}_main_{seq:05d}.mkv"
    path = tmp / name
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    entry = ChainEntry(attempt=attempt, camera="main", seq=seq, name=name, question=None, started_at=1000.0 + seq,
                       ended_at=1001.0 + seq, size=len(data), sha256=sha,
                       prev=journal.last_entry(attempt, "main") if prev is None else prev)
    digest = entry.digest()
    journal.add_segment(name=name, attempt_id=attempt, camera="main", seq=seq, question=None, path=path,
                        started_at=entry.started_at, ended_at=entry.ended_at, size=len(data), sha256=sha,
                        prev_hash=entry.prev, entry_hash=digest, signature=(sign_with or key).sign(digest))
    return name


def upload_all(base: str, token: str, journal: Journal) -> None:
    uploader = SegmentUploader(journal, base_url=lambda: base, token=token, chunk_bytes=64 * 1024)
    for seg in journal.pending():
        uploader.upload(base, seg)


def test_signed_chain_uploads_and_completes(signed):
    base, token, headers, attempt, key, journal, tmp = signed
    names = [add_segment(journal, key, attempt, seq, tmp) for seq in range(3)]
    upload_all(base, token, journal)
    status = requests.post(f"{base}/api/v1/attempts/{attempt}/finish", json={"segments": names, "reason": "time_up"},
                           headers=headers).json()
    assert status["chain_ok"] and status["complete"] and status["verified"] == 3


def test_a_missing_link_keeps_the_attempt_incomplete(signed):
    base, token, headers, attempt, key, journal, tmp = signed
    names = [add_segment(journal, key, attempt, seq, tmp) for seq in range(3)]
    journal.mark_verified(names[1])  # pretend it was uploaded: the edge never gets segment 1
    upload_all(base, token, journal)
    status = requests.post(f"{base}/api/v1/attempts/{attempt}/finish", json={"segments": [names[0], names[2]]},
                           headers=headers).json()
    assert not status["complete"] and not status["chain_ok"]
    assert "main: segment 1 is missing before 2" in status["chain_problems"]


def test_unsigned_or_forged_segments_are_refused_at_creation(signed):
    base, token, headers, attempt, key, journal, tmp = signed
    forger = StationKey.load_or_create(tmp / "forger.pem")
    add_segment(journal, key, attempt, 0, tmp, sign_with=forger)
    seg = journal.pending()[0]
    uploader = SegmentUploader(journal, base_url=lambda: base, token=token, chunk_bytes=64 * 1024)
    from tusclient.exceptions import TusCommunicationError

    with pytest.raises(TusCommunicationError) as exc:
        uploader.upload(base, seg)
    assert exc.value.status_code == 400 and b"chain_signature_invalid" in exc.value.response_content
    r = requests.post(f"{base}/api/v1/uploads/", headers=dict(headers, **{
        "Tus-Resumable": "1.0.0", "Upload-Length": "10",
        "Upload-Metadata": f"attempt {_b64(attempt)},name {_b64('x.mkv')},sha256 {_b64('a' * 64)}"}))
    assert r.status_code == 400 and r.json()["code"] == "segment_unsigned"


def test_a_second_key_is_refused(signed):
    base, token, headers, attempt, key, journal, tmp = signed
    other = StationKey.load_or_create(tmp / "other.pem")
    r = requests.post(f"{base}/api/v1/station-key", json={"public_key": other.public_b64}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "key_mismatch"
    r = requests.post(f"{base}/api/v1/station-key", json={"public_key": key.public_b64}, headers=headers)
    assert r.status_code == 200
    r = requests.post(f"{base}/api/v1/station-key", json={"public_key": "nonsense"}, headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "bad_public_key"


def _b64(value: str) -> str:
    import base64

    return base64.b64encode(value.encode()).decode()
