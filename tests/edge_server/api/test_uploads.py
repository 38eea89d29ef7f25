"""tus uploads of recording segments over a real socket, with the stock tuspy client and raw requests."""
from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import select
from tusclient import client as tus_client
from tusclient.exceptions import TusUploadFailed
from tusclient.uploader import Uploader

from edge_server.extensions import db
from edge_server.models import Attempt, Event, Segment, SegmentStatus
from edge_server.services import attempts as attempt_service
from station.journal import Journal
from station.uploader import SegmentUploader, Sha256Uploader
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station

CHUNK = 64 * 1024
SIZE = 300_000  # five chunks, the last one short


@pytest.fixture
def world(app, live_server, tmp_path: Path):
    """A station with an open attempt, and a random segment file to upload."""
    with app.app_context():
        station, token = make_station(db.session, "c1", "st-01")
        _, other_token = make_station(db.session, "c1", "st-02")
        sitting = make_sitting(db.session, "c1", starts_in=-60)
        attempt = make_attempt(db.session, make_candidate(db.session, sitting), station)
        db.session.commit()
        attempt_id = attempt.id
    data = os.urandom(SIZE)
    path = tmp_path / "seg_00000.mkv"
    path.write_bytes(data)
    return SimpleNamespace(base=live_server, uploads=f"{live_server}/api/v1/uploads/", token=token,
                           other_token=other_token, attempt=attempt_id, data=data, path=path,
                           sha256=hashlib.sha256(data).hexdigest())


def tus(token: str | None, **headers: str) -> dict[str, str]:
    """Headers of a tus request; ``Upload_Offset="0"`` becomes ``Upload-Offset: 0``."""
    out = {"Tus-Resumable": "1.0.0"}
    if token is not None:
        out["Authorization"] = f"Bearer {token}"
    out.update({k.replace("_", "-"): v for k, v in headers.items()})
    return out


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(world, *, name: str = "seg_00000.mkv", length: int = SIZE, sha256: str | None = None) -> str:
    resp = requests.post(world.uploads, headers=tus(world.token, Upload_Length=str(length), Upload_Metadata=metadata(
        attempt=world.attempt, name=name, sha256=sha256 or world.sha256)))
    assert resp.status_code == 201, resp.text
    assert resp.headers["Upload-Offset"] == "0"
    return requests.compat.urljoin(world.uploads, resp.headers["Location"])


def patch(world, url: str, chunk: bytes, offset: int, *, checksum: str | None = "auto", **headers: str):
    extra = {"Upload_Offset": str(offset), "Content_Type": "application/offset+octet-stream", **headers}
    if checksum == "auto":
        checksum = "sha256 " + base64.b64encode(hashlib.sha256(chunk).digest()).decode()
    if checksum is not None:
        extra["Upload_Checksum"] = checksum
    return requests.patch(url, data=chunk, headers=tus(world.token, **extra))


def head(world, url: str, token: str | None = None) -> requests.Response:
    return requests.head(url, headers=tus(token or world.token))


def tus_uploader(world, cls=Sha256Uploader, *, sha256: str | None = None, url: str | None = None, **kwargs):
    client = tus_client.TusClient(world.uploads, headers={"Authorization": f"Bearer {world.token}"})
    if url is not None:
        return cls(file_path=str(world.path), client=client, url=url, chunk_size=CHUNK, upload_checksum=True, **kwargs)
    return cls(file_path=str(world.path), client=client, chunk_size=CHUNK, upload_checksum=True,
               metadata={"attempt": world.attempt, "name": world.path.name, "sha256": sha256 or world.sha256,
                         "camera": "main", "seq": "0", "question": "1"}, **kwargs)


def segment_row(app, name: str = "seg_00000.mkv") -> Segment | None:
    with app.app_context():
        seg = db.session.scalar(select(Segment).where(Segment.name == name))
        if seg is not None:
            db.session.expunge(seg)
        return seg


def error_code(resp: requests.Response) -> str:
    assert resp.headers["Content-Type"].startswith("application/json"), resp.text
    return resp.json()["code"]


# --- protocol -----------------------------------------------------------------------------------

def test_options_advertises_the_extensions(world):
    resp = requests.options(world.uploads)
    assert resp.status_code == 204
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert resp.headers["Tus-Extension"] == "creation,checksum,termination"
    assert "sha256" in resp.headers["Tus-Checksum-Algorithm"].split(",")
    assert int(resp.headers["Tus-Max-Size"]) > SIZE


@pytest.mark.parametrize("cls", [Sha256Uploader, Uploader], ids=["sha256-uploader", "tuspy-uploader"])
def test_tuspy_upload_is_verified(app, settings, world, cls):
    uploader = tus_uploader(world, cls)
    uploader.upload()
    assert uploader.offset == SIZE
    assert uploader.url.startswith(world.uploads)

    seg = segment_row(app)
    assert seg.status == SegmentStatus.VERIFIED
    assert seg.sha256_actual == seg.sha256_declared == world.sha256
    assert seg.offset == seg.length == SIZE
    assert seg.verified_at is not None and seg.question == 1 and seg.camera == "main"
    stored = settings.recordings_dir / world.attempt / "seg_00000.mkv"
    assert stored.read_bytes() == world.data
    assert not (settings.uploads_dir / f"{seg.id}.part").exists()
    resp = head(world, uploader.url)
    assert resp.status_code == 200
    assert resp.headers["Upload-Offset"] == str(SIZE) and resp.headers["Upload-Status"] == "verified"


def test_wrong_declared_sha256_leaves_the_segment_corrupt(app, settings, world):
    uploader = tus_uploader(world, sha256=hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(TusUploadFailed) as failed:
        uploader.upload()
    assert failed.value.status_code == 460
    assert b"segment_checksum_mismatch" in failed.value.response_content

    seg = segment_row(app)
    assert seg.status == SegmentStatus.CORRUPT and seg.verified_at is None
    assert seg.sha256_actual == world.sha256 != seg.sha256_declared
    assert not (settings.recordings_dir / world.attempt / "seg_00000.mkv").exists()
    assert head(world, uploader.url).headers["Upload-Status"] == "corrupt"
    # More bytes are refused too: the station has to create the upload again.
    resp = patch(world, uploader.url, b"x", SIZE)
    assert resp.status_code == 460 and error_code(resp) == "segment_corrupt"
    with app.app_context():
        kinds = db.session.scalars(select(Event.kind).where(Event.attempt_id == world.attempt)).all()
        assert "segment_corrupt" in kinds


def test_chunk_with_a_wrong_checksum_is_not_stored(app, world):
    url = create(world)
    chunk = world.data[:CHUNK]
    wrong = "sha256 " + base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    resp = patch(world, url, chunk, 0, checksum=wrong)
    assert resp.status_code == 460 and error_code(resp) == "checksum_mismatch"
    assert head(world, url).headers["Upload-Offset"] == "0"

    resp = patch(world, url, chunk, 0)
    assert resp.status_code == 204 and resp.headers["Upload-Offset"] == str(CHUNK)
    assert head(world, url).headers["Upload-Offset"] == str(CHUNK)
    assert segment_row(app).status == SegmentStatus.UPLOADING


def test_patch_at_the_wrong_offset_is_409(world):
    url = create(world)
    assert patch(world, url, world.data[:CHUNK], 0).status_code == 204
    for offset in (0, CHUNK + 10):
        resp = patch(world, url, world.data[offset:offset + CHUNK], offset)
        assert resp.status_code == 409 and error_code(resp) == "offset_mismatch"
    assert head(world, url).headers["Upload-Offset"] == str(CHUNK)


def test_unknown_upload_is_404(world):
    url = f"{world.uploads}0123456789abcdef0123456789abcdef"
    assert head(world, url).status_code == 404
    resp = patch(world, url, b"abc", 0)
    assert resp.status_code == 404 and error_code(resp) == "upload_unknown"
    # Another station's upload does not exist for this one.
    mine = create(world)
    assert head(world, mine, token=world.other_token).status_code == 404


def test_chunk_over_the_limit_is_413(settings, world):
    url = create(world, length=settings.max_chunk_bytes + CHUNK)
    body = os.urandom(settings.max_chunk_bytes + 1024)
    resp = patch(world, url, body, 0)
    assert resp.status_code == 413 and error_code(resp) == "chunk_too_large"
    assert head(world, url).headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("name", ["../../escape.mkv", "/etc/passwd", "a/../../b.mkv", "..", "seg\x00.mkv",
                                  "dir/seg.mkv", ".hidden.mkv"])
def test_path_traversal_in_a_segment_name_is_refused(app, settings, world, name):
    resp = requests.post(world.uploads, headers=tus(world.token, Upload_Length=str(SIZE), Upload_Metadata=metadata(
        attempt=world.attempt, name=name, sha256=world.sha256)))
    assert resp.status_code == 400 and error_code(resp) == "bad_name", resp.text
    with app.app_context():
        assert db.session.scalars(select(Segment.name)).all() == []  # no row for it
    written = [p for p in settings.data_dir.rglob("*") if p.is_file() and p.suffix in (".mkv", ".part", "")]
    assert not any("escape" in str(p) or p.name == "passwd" for p in written)


def test_missing_tus_resumable_is_412(world):
    url = create(world)
    no_version = {"Authorization": f"Bearer {world.token}"}
    resp = requests.post(world.uploads, headers={**no_version, "Upload-Length": "10",
                                                 "Upload-Metadata": metadata(attempt=world.attempt, name="x.mkv",
                                                                             sha256=world.sha256)})
    assert resp.status_code == 412 and error_code(resp) == "tus_version"
    resp = requests.patch(url, data=b"abc", headers={**no_version, "Upload-Offset": "0",
                                                     "Content-Type": "application/offset+octet-stream"})
    assert resp.status_code == 412 and error_code(resp) == "tus_version"
    assert requests.head(url, headers=no_version).status_code == 412
    assert head(world, url).headers["Upload-Offset"] == "0"


def test_interrupted_upload_resumes_from_the_servers_offset(app, settings, world):
    half = 2 * CHUNK + 1000
    first = tus_uploader(world)
    first.upload(stop_at=half)
    assert first.offset == half
    assert head(world, first.url).headers["Upload-Offset"] == str(half)

    sent: list[int] = []

    class CountingUploader(Sha256Uploader):
        def upload_chunk(self):
            length = self.get_request_length()
            super().upload_chunk()
            sent.append(length)

    # A new process (a rebooted station) knows only the URL from its journal.
    again = tus_uploader(world, CountingUploader, url=first.url)
    assert again.offset == half
    again.upload()
    assert sum(sent) == SIZE - half
    assert segment_row(app).status == SegmentStatus.VERIFIED
    assert (settings.recordings_dir / world.attempt / "seg_00000.mkv").read_bytes() == world.data


def test_termination(app, settings, world):
    url = create(world)
    assert patch(world, url, world.data[:CHUNK], 0).status_code == 204
    seg = segment_row(app)
    resp = requests.delete(url, headers=tus(world.token))
    assert resp.status_code == 204
    assert head(world, url).status_code == 404
    assert segment_row(app) is None
    assert not (settings.uploads_dir / f"{seg.id}.part").exists()


def test_a_verified_segment_cannot_be_deleted(app, settings, world):
    uploader = tus_uploader(world)
    uploader.upload()
    resp = requests.delete(uploader.url, headers=tus(world.token))
    assert resp.status_code == 409 and error_code(resp) == "upload_verified"
    assert segment_row(app).status == SegmentStatus.VERIFIED
    assert (settings.recordings_dir / world.attempt / "seg_00000.mkv").read_bytes() == world.data


# --- the station's uploader with its journal ------------------------------------------------------

def test_segment_uploader_and_finish(app, settings, world, tmp_path: Path, caplog):
    journal = Journal(tmp_path / "station" / "journal.db")
    names = []
    for seq in range(3):
        data = os.urandom(100_000 + seq * 70_000)
        path = tmp_path / "station" / f"{world.attempt}_main_{seq:05d}.mkv"
        path.write_bytes(data)
        names.append(path.name)
        journal.add_segment(name=path.name, attempt_id=world.attempt, camera="main", seq=seq, question=seq + 1,
                            path=path, started_at=1000.0 + seq * 30, ended_at=1030.0 + seq * 30, size=len(data),
                            sha256=hashlib.sha256(data).hexdigest())
    uploader = SegmentUploader(journal, base_url=lambda: world.base, token=world.token, chunk_bytes=CHUNK)
    for seg in journal.pending():
        uploader.upload(world.base, seg)

    assert journal.pending() == []
    assert [s.status for s in journal.segments_of(world.attempt)] == ["verified"] * 3
    uploaded, total, verified, count = journal.progress(world.attempt)
    assert uploaded == total and verified == count == 3
    for seg in journal.segments_of(world.attempt):
        assert (settings.recordings_dir / world.attempt / seg.name).read_bytes() == seg.path.read_bytes()
    journal.close()

    # Redis is not running for this test: finishing still succeeds, the sync is queued later by the daemon.
    with caplog.at_level(logging.WARNING, logger="edge_server.api.uploads"):
        resp = requests.post(f"{world.base}/api/v1/attempts/{world.attempt}/finish",
                             json={"segments": names, "reason": "done"},
                             headers={"Authorization": f"Bearer {world.token}"})
    assert resp.status_code == 200, resp.text
    status = resp.json()
    assert status["complete"] is True and status["missing"] == [] and status["verified"] == 3
    assert status["sync"] == "none"
    assert any("could not queue sync" in r.getMessage() and world.attempt in r.getMessage() for r in caplog.records)

    with app.app_context():
        attempt = db.session.get(Attempt, world.attempt)
        state = attempt_service.upload_status(db.session, attempt)
        assert state["complete"] is True and state["expected"] == 3 and state["corrupt"] == []
        assert attempt.finished_at is not None and attempt.upload_complete_at is not None
