"""Central verification: every object's size and SHA-256 against the manifest, the signed chain of each
camera against the station's key; a changed, deleted or inserted segment and a missing object are named."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from examkiosk_wire.central import segment_key
from region_server.extensions import db
from region_server.models import Attempt, ChainVerdict, ObjectCheck, Problem, ProblemKind, Verification
from tests.region_server.central_data import fake_media, write_attempt
from tests.region_server.helpers import index_all, verify_all


def _open_problems(app) -> dict[tuple[str, str], str]:
    with app.app_context():
        return {(p.kind, p.key): p.message for p in db.session.scalars(select(Problem).where(
            Problem.resolved_at.is_(None)))}


@pytest.mark.parametrize("central", ["directory", "s3"], indirect=True)
def test_an_intact_attempt_is_verified_and_tampering_is_named(app, central, station_key):
    w = central.writer
    written = write_attempt(w, "c1", "s1", 1, "att-1", station_key, per_camera=3)
    other = write_attempt(w, "c1", "s1", 2, "att-2", station_key, per_camera=2)
    index_all(app)
    assert verify_all(app, rehash=False) == {"c1/s1/lot-001": "present", "c1/s1/lot-002": "present"}
    assert verify_all(app) == {"c1/s1/lot-001": "verified", "c1/s1/lot-002": "verified"}
    with app.app_context():
        attempt = db.session.scalar(select(Attempt).where(Attempt.manifest_key == written.key))
        assert attempt.chain_verdict == ChainVerdict.OK and attempt.hashed_at is not None
        assert all(o.check == ObjectCheck.OK and o.found_sha256 == o.expected_sha256 for o in attempt.objects)
        frame = next(o for o in attempt.objects if o.kind == "face_frame")
        assert frame.expected_size is None and frame.found_size == len(central.writer.read(frame.key))
        assert attempt.hashed_bytes == sum(o.found_size for o in attempt.objects)
    assert _open_problems(app) == {}

    changed, deleted = written.segments[1], written.segments[4]
    body = bytearray(w.read(changed))
    body[100] ^= 0xFF  # same size, one byte changed
    if central.backend == "s3":
        w.put(changed, bytes(body), sha256_meta=False)  # whoever changed it did not say so
    else:
        w.put(changed, bytes(body))
    w.delete(deleted)
    inserted = segment_key(written.manifest.prefix, "main_00001b.mkv")
    w.put(inserted, fake_media("inserted"))

    assert verify_all(app) == {"c1/s1/lot-001": "damaged", "c1/s1/lot-002": "verified"}
    found = _open_problems(app)
    assert (ProblemKind.SHA_MISMATCH, changed) in found
    assert (ProblemKind.MISSING_OBJECT, deleted) in found
    assert (ProblemKind.INSERTED_OBJECT, inserted) in found
    chain_keys = {key for kind, key in found if kind == ProblemKind.CHAIN}
    assert {changed, deleted, inserted} <= chain_keys
    assert "changed" in found[(ProblemKind.CHAIN, changed)] and "missing" in found[(ProblemKind.CHAIN, deleted)]
    assert "inserted" in found[(ProblemKind.CHAIN, inserted)]
    assert all(key.startswith("c1/s1/lot-001/") for _kind, key in found)
    with app.app_context():
        attempt = db.session.scalar(select(Attempt).where(Attempt.manifest_key == written.key))
        assert attempt.chain_verdict == ChainVerdict.BROKEN
        checks = {o.key: o.check for o in attempt.objects}
        assert checks[changed] == ObjectCheck.SHA_MISMATCH and checks[deleted] == ObjectCheck.MISSING
        assert checks[inserted] == ObjectCheck.UNLISTED
        assert db.session.scalar(select(Attempt).where(Attempt.manifest_key == other.key)).verification == \
            Verification.VERIFIED

    # Put back as it was: the next verification finds it intact again and the problems are resolved.
    w.put(changed, fake_media(f"att-1/{changed.rsplit('/', 1)[1]}"))
    w.put(deleted, fake_media(f"att-1/{deleted.rsplit('/', 1)[1]}"))
    w.delete(inserted)
    assert verify_all(app)["c1/s1/lot-001"] == "verified"
    assert _open_problems(app) == {}


def test_a_manifest_naming_an_object_that_is_not_there_is_a_problem_with_its_key(app, central, station_key):
    written = write_attempt(central.writer, "c1", "s1", 1, "att-1", station_key, per_camera=2)
    central.writer.delete(written.questions[0])
    index_all(app)
    assert verify_all(app) == {"c1/s1/lot-001": "damaged"}
    found = _open_problems(app)
    assert list(found) == [(ProblemKind.MISSING_OBJECT, written.questions[0])]  # the chain itself is intact


def test_a_wrong_signature_or_a_different_station_key_breaks_the_chain(app, central, station_key, tmp_path):
    from examkiosk_wire.chain import StationKey

    written = write_attempt(central.writer, "c1", "s1", 1, "att-1", station_key, per_camera=2)
    document = json.loads(central.writer.read(written.key))
    document["station_public_key"] = StationKey.load_or_create(tmp_path / "other.pem").public_b64
    central.writer.put(written.key, json.dumps(document).encode())
    index_all(app)
    assert verify_all(app) == {"c1/s1/lot-001": "damaged"}
    found = _open_problems(app)
    assert {key for kind, key in found if kind == ProblemKind.CHAIN} == set(written.segments)
    assert all("signature" in message for message in found.values())


@pytest.mark.parametrize("central", ["directory", "s3"], indirect=True)
def test_a_manifest_deleted_after_indexing_is_named_by_the_next_check(app, central, station_key):
    written = write_attempt(central.writer, "c1", "s1", 1, "att-1", station_key, per_camera=2)
    index_all(app)
    assert verify_all(app) == {"c1/s1/lot-001": "verified"}
    body = central.writer.read(written.key)
    central.writer.delete(written.key)
    assert verify_all(app, rehash=False) == {"c1/s1/lot-001": "damaged"}
    found = _open_problems(app)
    assert found == {(ProblemKind.MISSING_OBJECT, written.key):
                     "the attempt's manifest is gone from central storage (deleted after it was indexed)"}
    central.writer.put(written.key, body)  # restored from a backup: the next check is clean again
    assert verify_all(app) == {"c1/s1/lot-001": "verified"}
    assert _open_problems(app) == {}
