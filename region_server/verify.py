"""Central verification of an attempt: every object it lists against what storage holds.

``head_check`` asks storage for each listed object (exists, size, and the writer's SHA-256 metadata
where the store keeps it), lists the attempt's prefix for objects the manifest does not list
(inserted), and checks the station-signed chain of each camera (``chain_check``). ``rehash_check``
reads every present object in full at a limited rate (``TokenBucket``) and compares its SHA-256.
Each ends in ``conclude``: per-object checks, the chain verdict and the attempt's verification are
stored, and every problem is recorded with its key (and resolved once it is gone).
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from examkiosk_wire.central import MANIFEST_NAME, AttemptManifest
from region_server import problems
from region_server.chain_check import Found, check_chain
from region_server.errors import ObjectMissing, StoreError
from region_server.models import (
    Attempt,
    ChainVerdict,
    ObjectCheck,
    ObjectKind,
    ProblemKind,
    StoredObject,
    Verification,
    utcnow,
)
from region_server.store import CentralStore
from region_server.throttle import TokenBucket

logger = logging.getLogger(__name__)

_PROBLEM_OF_CHECK = {ObjectCheck.MISSING: ProblemKind.MISSING_OBJECT, ObjectCheck.SIZE_MISMATCH: ProblemKind.SIZE_MISMATCH,
                     ObjectCheck.SHA_MISMATCH: ProblemKind.SHA_MISMATCH, ObjectCheck.UNLISTED: ProblemKind.INSERTED_OBJECT}
_MESSAGES = {
    ObjectCheck.MISSING: "the manifest lists it; central storage does not have it",
    ObjectCheck.SIZE_MISMATCH: "its size in central storage differs from the manifest's",
    ObjectCheck.SHA_MISMATCH: "its SHA-256 in central storage differs from the manifest's",
    ObjectCheck.UNLISTED: "in central storage under the attempt's folder, but its manifest does not list it",
}


def head_check(session: Session, store: CentralStore, attempt: Attempt, now: datetime | None = None) -> None:
    """HEAD every listed object, list the prefix for unlisted ones, check the chain; committed."""
    now = now or utcnow()
    listed = {o.key: o for o in attempt.objects if o.check != ObjectCheck.UNLISTED}
    for obj in listed.values():
        try:
            info = store.head(obj.key)
        except StoreError as exc:
            obj.detail, obj.checked_at = f"HEAD failed: {exc}", now
            continue
        obj.checked_at = now
        if info is None:
            obj.check, obj.found_size, obj.found_etag, obj.detail = ObjectCheck.MISSING, None, None, ""
            continue
        changed = obj.found_etag is not None and obj.found_etag != info.etag
        obj.found_size, obj.found_etag = info.size, info.etag
        if changed:  # a re-hash of the old content says nothing about the new
            obj.hashed_at, obj.found_sha256 = None, None
        if obj.expected_size is not None and info.size != obj.expected_size:
            obj.check, obj.detail = ObjectCheck.SIZE_MISMATCH, f"{info.size} bytes, the manifest says {obj.expected_size}"
        elif info.sha256 and obj.expected_sha256 and info.sha256 != obj.expected_sha256:
            obj.check, obj.detail = ObjectCheck.SHA_MISMATCH, "the SHA-256 stored with it differs from the manifest's"
        elif obj.hashed_at is not None and obj.found_sha256 and obj.found_sha256 != obj.expected_sha256:
            obj.check = ObjectCheck.SHA_MISMATCH
        else:
            obj.check, obj.detail = ObjectCheck.OK, ""
    _unlisted(session, store, attempt, set(listed), now)
    conclude(session, attempt, now)


def _unlisted(session: Session, store: CentralStore, attempt: Attempt, listed: set[str], now: datetime) -> None:
    """Objects under the attempt's folder that its manifest does not list, as UNLISTED rows."""
    try:
        found = {item.key: item for item in store.list(attempt.prefix + "/")}
    except StoreError as exc:
        logger.warning("cannot list %s/: %s", attempt.prefix, exc)
        return
    found.pop(f"{attempt.prefix}/{MANIFEST_NAME}", None)
    extra = {key: item for key, item in found.items() if key not in listed}
    for obj in [o for o in attempt.objects if o.check == ObjectCheck.UNLISTED]:
        if obj.key not in extra:
            attempt.objects.remove(obj)
    have = {o.key for o in attempt.objects}
    for key, item in sorted(extra.items()):
        if key in have:
            continue
        kind = ObjectKind.SEGMENT if "/segments/" in key else ObjectKind.QUESTION if "/questions/" in key \
            else ObjectKind.FACE_FRAME
        # The key is unique: a row of another attempt (a manifest filed elsewhere) gives way.
        session.execute(delete(StoredObject).where(StoredObject.key == key))
        attempt.objects.append(StoredObject(key=key, kind=kind, check=ObjectCheck.UNLISTED, found_size=item.size,
                                            found_etag=item.etag, checked_at=now, info={},
                                            detail="not in the manifest"))


def rehash_check(session: Session, store: CentralStore, attempt: Attempt, bucket: TokenBucket | None = None,
                 now: datetime | None = None) -> int:
    """Read every present listed object in full and compare its SHA-256; returns the bytes read."""
    total = 0
    for obj in list(attempt.objects):
        if obj.check not in (ObjectCheck.OK, ObjectCheck.SHA_MISMATCH) or obj.expected_sha256 is None:
            continue
        digest, size = hashlib.sha256(), 0
        try:
            for block in store.iter_chunks(obj.key):
                if bucket is not None:
                    bucket.take(len(block))
                digest.update(block)
                size += len(block)
        except ObjectMissing:
            obj.check, obj.found_size, obj.detail = ObjectCheck.MISSING, None, ""
            continue
        except StoreError as exc:
            obj.detail = f"reading it failed: {exc}"
            continue
        total += size
        obj.found_sha256, obj.hashed_at = digest.hexdigest(), now or utcnow()
        if obj.expected_size is not None and size != obj.expected_size:
            obj.check, obj.detail = ObjectCheck.SIZE_MISMATCH, f"{size} bytes, the manifest says {obj.expected_size}"
        elif obj.found_sha256 != obj.expected_sha256:
            obj.check, obj.detail = ObjectCheck.SHA_MISMATCH, f"SHA-256 {obj.found_sha256[:16]}…, the manifest says " \
                                                               f"{obj.expected_sha256[:16]}…"
        else:
            obj.check, obj.detail = ObjectCheck.OK, ""
        session.commit()  # progress is kept object by object
    attempt.hashed_bytes = total
    attempt.hashed_at = now or utcnow()
    conclude(session, attempt, now)
    return total


def conclude(session: Session, attempt: Attempt, now: datetime | None = None) -> None:
    """The chain verdict, the attempt's verification and its problems, from the objects' checks; committed."""
    now = now or utcnow()
    manifest = AttemptManifest.model_validate(attempt.manifest, strict=False)
    objects = {o.key: o for o in attempt.objects}
    found = {key: Found(o.found_size, o.found_sha256 if o.hashed_at else None) for key, o in objects.items()
             if o.check not in (ObjectCheck.MISSING, ObjectCheck.UNCHECKED)}
    inserted = sorted(k for k, o in objects.items() if o.check == ObjectCheck.UNLISTED and o.kind == ObjectKind.SEGMENT)
    chain = check_chain(manifest.attempt, manifest.station_public_key, list(manifest.objects), found, inserted)
    messages: dict[str, list[str]] = {}
    for problem in chain:
        messages.setdefault(problem.key, []).append(problem.message)
    attempt.chain_problems = [{"key": key, "message": "; ".join(text)} for key, text in messages.items()]
    if not manifest.objects:
        attempt.chain_verdict = ChainVerdict.OK
    elif not manifest.station_public_key and not all(o.chain.key for o in manifest.objects):
        attempt.chain_verdict = ChainVerdict.UNSIGNED
    else:
        attempt.chain_verdict = ChainVerdict.BROKEN if chain else ChainVerdict.OK
    keep: set[tuple[str, str]] = set()
    for key, obj in objects.items():
        kind = _PROBLEM_OF_CHECK.get(ObjectCheck(obj.check))
        if kind is not None:
            message = _MESSAGES[ObjectCheck(obj.check)] + (f" ({obj.detail})" if obj.detail else "")
            if obj.kind == ObjectKind.MANIFEST and obj.check == ObjectCheck.MISSING:
                message = "the attempt's manifest is gone from central storage (deleted after it was indexed)"
            problems.record(session, kind, key, message, centre=attempt.centre_id, attempt_id=attempt.id, now=now)
            keep.add((str(kind), key))
    for entry in attempt.chain_problems:
        problems.record(session, ProblemKind.CHAIN, entry["key"], entry["message"], centre=attempt.centre_id,
                        attempt_id=attempt.id, now=now)
        keep.add((str(ProblemKind.CHAIN), entry["key"]))
    problems.resolve_attempt(session, attempt.id, keep, now)
    listed = [o for o in objects.values() if o.check != ObjectCheck.UNLISTED]
    attempt.checked_at = now
    if keep:
        attempt.verification = Verification.DAMAGED
    elif listed and any(o.hashed_at is None for o in listed):
        attempt.verification = Verification.PRESENT
    elif any(o.check == ObjectCheck.UNCHECKED for o in listed):
        attempt.verification = Verification.PENDING
    else:
        attempt.verification = Verification.VERIFIED
    session.commit()
