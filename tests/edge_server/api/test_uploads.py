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
from station.storage.journal import Journal
from station.storage.uploader import SegmentUploader, Sha256Uploader
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


# --- strict headers and metadata (issue 11, findings 5 and 6) -------------------------------------
# Values an HTTP server would never hand on (" 12", Arabic-Indic digits) go through the test client,
# which gives the app the header exactly as written; the others go over the socket like the rest.

def raw_metadata(**values: str | bytes) -> str:
    """``Upload-Metadata`` of arbitrary bytes (``str`` values are UTF-8)."""
    return ",".join(f"{k} {base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()}"
                    for k, v in values.items())


def no_upload_left(app, settings) -> None:
    with app.app_context():
        assert db.session.scalars(select(Segment.name)).all() == []
    assert not settings.uploads_dir.exists() or list(settings.uploads_dir.iterdir()) == []


@pytest.mark.parametrize("length", ["1_000", " 1000", "1000 ", "+1000", "١٠٠٠", "1e3", "0x10", "-1", "",
                                    "99999999999999999999999"])
def test_upload_length_must_be_ascii_digits(app, settings, world, length):
    resp = app.test_client().post("/api/v1/uploads/", headers=tus(world.token, Upload_Length=length, Upload_Metadata=
                                  metadata(attempt=world.attempt, name="seg_00000.mkv", sha256=world.sha256)))
    assert resp.status_code == 400 and resp.json["code"] == "bad_length", resp.data
    no_upload_left(app, settings)


def test_upload_length_beyond_the_database_column_is_413(app, settings, world):
    """``segment.length`` is an INTEGER (32-bit on PostgreSQL); the default limit is 2 GiB, one byte more."""
    assert settings.max_upload_bytes >= 2**31
    resp = requests.post(world.uploads, headers=tus(world.token, Upload_Length=str(2**31), Upload_Metadata=metadata(
        attempt=world.attempt, name="seg_00000.mkv", sha256=world.sha256)))
    assert resp.status_code == 413 and error_code(resp) == "too_large", resp.text
    no_upload_left(app, settings)
    assert int(requests.options(world.uploads).headers["Tus-Max-Size"]) == 2**31 - 1


@pytest.mark.parametrize("offset", [" 12", "12 ", "+12", "1_2", "١٢", "0x0c", "12.0", ""])
def test_upload_offset_must_be_ascii_digits(app, world, offset):
    url = create(world)
    assert patch(world, url, world.data[:12], 0).status_code == 204
    chunk = world.data[12:CHUNK]
    resp = app.test_client().patch(url, data=chunk, headers=tus(
        world.token, Upload_Offset=offset, Content_Type="application/offset+octet-stream",
        Upload_Checksum="sha256 " + base64.b64encode(hashlib.sha256(chunk).digest()).decode()))
    assert resp.status_code == 400 and resp.json["code"] == "bad_offset", resp.data
    assert head(world, url).headers["Upload-Offset"] == "12"


@pytest.mark.parametrize("checksum", [
    "sha1 é",  # not ASCII: a ValueError out of b64decode, a 500, before
    "sha1 " + base64.b64encode(b"\x00" * 19).decode(),  # one byte short of a SHA-1
    "sha256 " + base64.b64encode(hashlib.sha1(b"").digest()).decode(),  # a SHA-1 called a SHA-256
    "sha1  " + base64.b64encode(b"\x00" * 20).decode(),
    "crc32 AAAAAA==",
], ids=["non-ascii", "short-digest", "wrong-algorithm-length", "two-spaces", "unknown-algorithm"])
def test_a_malformed_upload_checksum_is_400(world, checksum):
    url = create(world)
    resp = patch(world, url, world.data[:CHUNK], 0, checksum=checksum)
    assert resp.status_code == 400 and error_code(resp) == "bad_checksum_header", resp.text
    assert head(world, url).headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("values, code", [
    ({"seq": str(2**63)}, "bad_metadata"),  # an integer overflow, a 500, before
    ({"seq": str(2**31)}, "bad_metadata"),  # beyond PostgreSQL's INTEGER
    ({"question": str(2**63)}, "bad_metadata"),
    ({"seq": "1_0"}, "bad_metadata"),
    ({"seq": "+1"}, "bad_metadata"),
    ({"seq": "-1"}, "bad_metadata"),
    ({"seq": "١"}, "bad_metadata"),
    ({"question": " 2"}, "bad_metadata"),
    ({"started_at": "nan"}, "bad_metadata"),
    ({"started_at": "inf"}, "bad_metadata"),
    ({"ended_at": "1e999"}, "bad_metadata"),
    ({"ended_at": "1_000.5"}, "bad_metadata"),
    ({"attempt": "a\x00b"}, "bad_metadata"),
    ({"note": "a\x00b"}, "bad_metadata"),
    ({"note": b"\xff\xfe"}, "bad_metadata"),  # not UTF-8
    ({"note": b"\xed\xa0\x80"}, "bad_metadata"),  # a lone surrogate, UTF-8 encoded
    ({"sha256": "a" * 64 + "\n"}, "bad_metadata"),
    ({"prev": "x" * 200}, "bad_metadata"),
    ({"camera": "../x"}, "bad_name"),
    ({"camera": "cam/1"}, "bad_name"),
    ({"camera": "c" * 33}, "bad_name"),
    ({"camera": "cam\x00"}, "bad_name"),
    ({"name": "seg_00000.mkv\n"}, "bad_name"),
], ids=lambda v: repr(v) if isinstance(v, dict) else v)
def test_metadata_out_of_range_or_not_text_is_400(app, settings, world, values, code):
    fields: dict[str, str | bytes] = {"attempt": world.attempt, "name": "seg_00000.mkv", "sha256": world.sha256,
                                      "camera": "main", "seq": "0", **values}
    resp = requests.post(world.uploads, headers=tus(world.token, Upload_Length=str(SIZE),
                                                    Upload_Metadata=raw_metadata(**fields)))
    assert resp.status_code == 400 and error_code(resp) == code, resp.text
    no_upload_left(app, settings)


@pytest.mark.parametrize("header", [
    f"attempt {base64.b64encode(b'x').decode()},name é",  # not ASCII: a ValueError, a 500, before
    "attempt YQ==,attempt Yg==",  # twice
    "attempt YQ==,,name Yg==",
    "attempt YQ",  # bad padding
], ids=["non-ascii-base64", "duplicate-key", "empty-pair", "bad-padding"])
def test_malformed_upload_metadata_is_400(app, settings, world, header):
    resp = requests.post(world.uploads, headers=tus(world.token, Upload_Length=str(SIZE), Upload_Metadata=header))
    assert resp.status_code == 400 and error_code(resp) == "bad_metadata", resp.text
    no_upload_left(app, settings)


def test_largest_seq_and_question_the_columns_hold_are_accepted(app, world):
    resp = requests.post(world.uploads, headers=tus(world.token, Upload_Length=str(SIZE), Upload_Metadata=metadata(
        attempt=world.attempt, name="seg_00000.mkv", sha256=world.sha256, seq=str(2**31 - 1),
        question=str(2**31 - 1), started_at="1733000000.125", ended_at="-1.5e3")))
    assert resp.status_code == 201, resp.text
    seg = segment_row(app)
    assert (seg.seq, seg.question, seg.started_at, seg.ended_at) == (2**31 - 1, 2**31 - 1, 1733000000.125, -1500.0)


@pytest.mark.parametrize("upload_id", ["abc%00def", "ABCDEF0123456789ABCDEF0123456789", "..lock", "x" * 300])
def test_an_upload_id_that_cannot_be_ours_is_refused(settings, world, upload_id):
    """Never a database error (a NUL reached PostgreSQL: a 500), nor a file named after it."""
    url = f"{world.uploads}{upload_id}"
    # A NUL may be refused before the route (400), as in every request; any other id is unknown (404).
    allowed = {400, 404} if "%00" in upload_id else {404}
    for resp in (patch(world, url, b"abc", 0), requests.delete(url, headers=tus(world.token))):
        assert resp.status_code in allowed, resp.text
        assert error_code(resp) == "upload_unknown" if resp.status_code == 404 else error_code(resp), resp.text
    assert head(world, url).status_code in allowed
    assert not settings.uploads_dir.exists() or list(settings.uploads_dir.iterdir()) == []


def test_another_station_cannot_upload_into_the_attempt(app, settings, world):
    resp = requests.post(world.uploads, headers=tus(world.other_token, Upload_Length=str(SIZE),
                                                    Upload_Metadata=metadata(attempt=world.attempt,
                                                                             name="seg_00000.mkv",
                                                                             sha256=world.sha256)))
    assert resp.status_code == 404 and error_code(resp) == "attempt_unknown", resp.text
    no_upload_left(app, settings)


# --- the upload's state machine, one request after another --------------------------------------

def test_a_verified_upload_refuses_every_patch_and_keeps_its_file(app, settings, world):
    uploader = tus_uploader(world)
    uploader.upload()
    stored = settings.recordings_dir / world.attempt / "seg_00000.mkv"
    before, inode = segment_row(app), stored.stat().st_ino
    other = os.urandom(CHUNK)
    for offset, chunk in ((0, other), (0, world.data[:CHUNK]), (CHUNK, world.data[CHUNK:2 * CHUNK]), (SIZE, b"x"),
                          (SIZE - CHUNK, world.data[-CHUNK:]), (7, b"")):
        resp = patch(world, uploader.url, chunk, offset)
        assert resp.status_code == 409 and error_code(resp) == "upload_complete", (offset, resp.text)
    after = segment_row(app)
    assert (after.status, after.verified_at, after.sha256_actual) == (SegmentStatus.VERIFIED, before.verified_at,
                                                                      world.sha256)
    assert stored.read_bytes() == world.data and stored.stat().st_ino == inode
    assert list(settings.uploads_dir.iterdir()) == []


def test_no_part_or_lock_file_is_left_after_verification_or_termination(app, settings, world):
    url = create(world, name="gone.mkv")
    assert patch(world, url, world.data[:CHUNK], 0).status_code == 204
    assert head(world, url).headers["Upload-Offset"] == str(CHUNK)
    assert sorted(p.suffix for p in settings.uploads_dir.iterdir()) == [".part"]  # no lock between requests
    assert requests.delete(url, headers=tus(world.token)).status_code == 204
    tus_uploader(world).upload()
    assert segment_row(app).status == SegmentStatus.VERIFIED
    assert list(settings.uploads_dir.iterdir()) == []


def test_creating_an_unfinished_upload_again_starts_it_over(app, settings, world):
    first = create(world)
    assert patch(world, first, world.data[:CHUNK], 0).status_code == 204
    again = create(world)
    assert again != first
    assert head(world, first).status_code == 404
    assert [p.name for p in settings.uploads_dir.iterdir()] == [f"{again.rsplit('/', 1)[1]}.part"]
    resp = patch(world, first, world.data[CHUNK:2 * CHUNK], CHUNK)
    assert resp.status_code == 404 and error_code(resp) == "upload_unknown"
