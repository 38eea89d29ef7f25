"""The indexer: finds new and changed manifests in central storage and records what they list.

Per centre (a top-level prefix) one pass lists every key in order through the store (S3's
ListObjectsV2) and fetches only the documents: attempt manifests, ``sitting.json``, ``lots.json``;
media is never read here. A persisted cursor per centre (``IndexCursor.start_after``: the last key
done) is committed every ``commit_every`` keys with everything indexed before it, so a pass that
stops resumes where it was; a finished pass resets the cursor, and the next pass compares each
manifest's ETag with the one indexed, so a changed manifest is indexed again and an unchanged one
is not fetched. Rows are upserts on unique keys, so indexing twice changes nothing.

One indexer at a time per centre: a pass holds the centre's lease (a conditional UPDATE of its
cursor row with an expiry, renewed at each commit), so two daemons (or threads) share the centres
instead of doing the same work twice; a lease left by a dead process expires.

A manifest the parsers refuse becomes a ``Problem`` with its key and message; the pass goes on.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import socket
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from examkiosk_wire.central import (
    AttemptManifest,
    ManifestError,
    SittingManifest,
    check_key,
    kind_of_key,
    parse_attempt_manifest,
    parse_lot_map,
    parse_sitting_manifest,
)
from region_server import problems
from region_server.config import IndexSection
from region_server.errors import StoreError
from region_server.models import (
    Attempt,
    Centre,
    ChainVerdict,
    IndexCursor,
    LotTicket,
    ObjectKind,
    Problem,
    ProblemKind,
    Sitting,
    StoredObject,
    Verification,
    utcnow,
)
from region_server.store import CentralStore, Listed
from region_server.upsert import insert_for, upsert

logger = logging.getLogger(__name__)
PREFETCH = 64  # listed keys looked at together: their documents are read in parallel
FLUSH_EVERY = 200  # parsed manifests written together (and always before the cursor is committed)
CENTRE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class PassReport:
    """What one pass did: keys listed, documents fetched, attempts new or changed (their row ids)."""

    centres: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # another indexer held the lease
    listed: int = 0
    fetched: int = 0
    attempts: list[int] = field(default_factory=list)
    problems: int = 0
    finished: list[str] = field(default_factory=list)  # centres whose pass ran to the end


def new_owner() -> str:
    """A lease owner name unique to this call (host, process, random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def index_once(session: Session, store: CentralStore, config: IndexSection, *, owner: str | None = None,
               stop_after: int | None = None) -> PassReport:
    """One pass over every centre (each resumed from its cursor). ``stop_after``: stop a centre's pass
    after that many listed keys, committed (tests of resuming; the daemon never sets it)."""
    owner = owner or new_owner()
    report = PassReport()
    try:
        centres = store.centres()
    except StoreError as exc:
        logger.warning("cannot list the centres in central storage: %s", exc)
        return report
    for centre in centres:
        if not CENTRE_ID.match(centre):
            problems.record(session, ProblemKind.MALFORMED_MANIFEST, centre + "/",
                            "a top-level folder whose name is not a centre id: not indexed")
            session.commit()
            report.problems += 1
            continue
        report.centres.append(centre)
        CentreIndexer(session, store, config, centre, owner, report).run(stop_after)
    return report


class CentreIndexer:
    """One centre's pass, under its lease."""

    def __init__(self, session: Session, store: CentralStore, config: IndexSection, centre: str, owner: str,
                 report: PassReport):
        self.session, self.store, self.config = session, store, config
        self.centre, self.owner, self.report = centre, owner, report
        self.sittings: dict[str, int] = {}
        self.newest: datetime | None = None
        # Parsed attempt manifests not written yet: written together, one statement per table.
        self.pending: list[tuple[dict[str, Any], AttemptManifest]] = []
        self.open_keys: set[str] = set()  # keys with an open manifest problem (to resolve when parsed)
        self._upsert_stmt: Any = None
        self.prefetched: dict[str, Future[bytes]] = {}  # documents being read, by key

    # --- the lease ---------------------------------------------------------------------------
    def _take_lease(self) -> bool:
        """The centre's rows made if new, and its lease taken unless another indexer holds it (one commit)."""
        now = utcnow()
        upsert(self.session, Centre.__table__, {"id": self.centre, "first_seen_at": now}, keys=["id"], update=[])
        self.session.execute(insert_for(self.session, IndexCursor.__table__)
                             .values(centre_id=self.centre, start_after="", passes=0, lease_owner="")
                             .on_conflict_do_nothing(index_elements=["centre_id"]))
        result = self.session.execute(
            update(IndexCursor)
            .where(IndexCursor.centre_id == self.centre,
                   or_(IndexCursor.lease_until.is_(None), IndexCursor.lease_until < now,
                       IndexCursor.lease_owner == self.owner))
            .values(lease_owner=self.owner, lease_until=now + timedelta(seconds=self.config.lease_seconds)))
        self.session.commit()
        return result.rowcount == 1

    def _renew(self, start_after: str) -> bool:
        """Commit the cursor at ``start_after`` with everything before it; False if the lease was lost."""
        self._flush()
        result = self.session.execute(
            update(IndexCursor).where(IndexCursor.centre_id == self.centre, IndexCursor.lease_owner == self.owner)
            .values(start_after=start_after, lease_until=utcnow() + timedelta(seconds=self.config.lease_seconds)))
        if result.rowcount != 1:
            self.session.rollback()
            logger.warning("centre %s: the index lease was taken over; this pass stops", self.centre)
            return False
        self._touch_centre()
        self.session.commit()
        return True

    def _touch_centre(self, finished: bool = False) -> None:
        values: dict[str, Any] = {}
        if self.newest is not None:
            centre = self.session.get(Centre, self.centre)
            if centre is not None and (centre.last_manifest_at is None or centre.last_manifest_at < self.newest):
                values["last_manifest_at"] = self.newest
        if finished:
            values["last_indexed_at"] = utcnow()
        if values:
            self.session.execute(update(Centre).where(Centre.id == self.centre).values(**values))

    # --- the pass ----------------------------------------------------------------------------
    def run(self, stop_after: int | None = None) -> None:
        if not self._take_lease():
            self.report.busy.append(self.centre)
            return
        cursor = self.session.get(IndexCursor, self.centre)
        assert cursor is not None
        start_after = cursor.start_after or None
        if start_after is None:
            cursor.pass_started_at = utcnow()
        known = dict(self.session.execute(select(Attempt.manifest_key, Attempt.manifest_etag)
                                          .where(Attempt.centre_id == self.centre)).all())
        sittings = {row.sitting: row for row in self.session.scalars(
            select(Sitting).where(Sitting.centre_id == self.centre))}
        self.sittings = {name: row.id for name, row in sittings.items()}
        self.open_keys = set(self.session.scalars(
            select(Problem.key).where(Problem.centre_id == self.centre, Problem.resolved_at.is_(None),
                                      Problem.kind.in_([str(k) for k in problems.MANIFEST_KINDS]))))
        done, last = 0, start_after
        pool = ThreadPoolExecutor(self.config.fetch_concurrency, thread_name_prefix=f"index-{self.centre}")
        try:
            listing = self.store.list(self.centre + "/", start_after)

            def next_chunk() -> list[Listed]:
                """The next listed keys, their documents already being read on the pool."""
                chunk = list(itertools.islice(listing, PREFETCH))
                self._prefetch(pool, [item for item in chunk if self._wanted(item, known, sittings)])
                return chunk

            # One chunk ahead: its documents are read while this one is parsed and written.
            following = next_chunk()
            while chunk := following:
                following = next_chunk()
                for item in chunk:
                    self._one(item, known, sittings)
                    done += 1
                    last = item.key
                    self.report.listed += 1
                    if done % self.config.commit_every == 0 and not self._renew(last):
                        return
                    if stop_after is not None and done >= stop_after:
                        if self._renew(last):
                            self._release()
                        return
            self._finish()
        except StoreError as exc:  # the listing broke off: what was read is kept, the next pass resumes there
            logger.warning("centre %s: listing central storage failed after %s: %s", self.centre, last, exc)
            if last is None or self._renew(last):
                self._release()
        except SQLAlchemyError as exc:  # e.g. a lease taken over after it expired: this pass's batch is dropped
            logger.warning("centre %s: the pass stops at %s (database: %s); the next one resumes", self.centre,
                           last, exc)
            self.session.rollback()
            self.pending.clear()
            self._release()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.prefetched.clear()

    def _finish(self) -> None:
        self._flush()
        result = self.session.execute(
            update(IndexCursor).where(IndexCursor.centre_id == self.centre, IndexCursor.lease_owner == self.owner)
            .values(start_after="", passes=IndexCursor.passes + 1, last_pass_at=utcnow(), lease_owner="",
                    lease_until=None))
        if result.rowcount != 1:
            self.session.rollback()
            return
        self._touch_centre(finished=True)
        self.session.commit()
        self.report.finished.append(self.centre)

    def _release(self) -> None:
        self.session.execute(update(IndexCursor).where(IndexCursor.centre_id == self.centre,
                                                       IndexCursor.lease_owner == self.owner)
                             .values(lease_owner="", lease_until=None))
        self.session.commit()

    def _one(self, item: Listed, known: dict[str, str], sittings: dict[str, Sitting]) -> None:
        kind = kind_of_key(item.key)
        if kind == "other":
            return
        try:
            check_key(item.key)
        except ValueError:
            self._problem(ProblemKind.KEY_OUTSIDE_PREFIX, item.key, "a key that is not a plain relative key: not read")
            return
        if kind == "attempt":
            if known.get(item.key) == item.etag:
                return
            data = self._fetch(item)
            if data is not None:
                self._attempt(item, data)
        elif kind == "sitting":
            row = sittings.get(item.key.split("/")[1])
            if row is not None and row.manifest_etag == item.etag:
                return
            data = self._fetch(item)
            if data is not None:
                self._sitting(item, data)
        else:
            row = sittings.get(item.key.split("/")[1])
            if row is not None and row.lots_etag == item.etag:
                return
            data = self._fetch(item)
            if data is not None:
                self._lots(item, data)

    def _wanted(self, item: Listed, known: dict[str, str], sittings: dict[str, Sitting]) -> bool:
        """Whether ``_one`` will read the object (a document, new or with another ETag)."""
        kind = kind_of_key(item.key)
        if kind == "other":
            return False
        try:
            check_key(item.key)
        except ValueError:
            return False
        if kind == "attempt":
            return known.get(item.key) != item.etag
        row = sittings.get(item.key.split("/")[1])
        return row is None or (row.manifest_etag if kind == "sitting" else row.lots_etag) != item.etag

    def _prefetch(self, pool: ThreadPoolExecutor, items: list[Listed]) -> None:
        """Start reading the documents of one listing chunk on the pool (a GET's round trip dominates on S3)."""
        for item in items:
            self.prefetched[item.key] = pool.submit(self.store.get, item.key)

    def _fetch(self, item: Listed) -> bytes | None:
        self.report.fetched += 1
        try:
            future = self.prefetched.pop(item.key, None)
            return future.result() if future is not None else self.store.get(item.key)
        except StoreError as exc:
            self._problem(ProblemKind.UNREADABLE, item.key, f"central storage refused to give it: {exc}")
            return None

    def _problem(self, kind: ProblemKind, key: str, message: str) -> None:
        problems.record(self.session, kind, key, message, centre=self.centre)
        self.report.problems += 1
        logger.info("centre %s: %s %s: %s", self.centre, kind, key, message)

    def _refused(self, item: Listed, data: bytes, exc: ManifestError) -> None:
        self._problem(problems.manifest_problem_kind(exc, len(data)), item.key, exc.message)

    def _seen(self, item: Listed) -> None:
        if self.newest is None or item.last_modified > self.newest:
            self.newest = item.last_modified

    def _sitting_id(self, sitting: str) -> int:
        found = self.sittings.get(sitting)
        if found is None:
            found = upsert(self.session, Sitting.__table__, {"centre_id": self.centre, "sitting": sitting},
                           keys=["centre_id", "sitting"], update=["centre_id"])
            assert found is not None
            self.sittings[sitting] = found
        return found

    # --- the documents -------------------------------------------------------------------------
    def _attempt(self, item: Listed, data: bytes) -> None:
        try:
            manifest = parse_attempt_manifest(item.key, data)
        except ManifestError as exc:
            self._refused(item, data, exc)
            return
        self._seen(item)
        self.pending.append((attempt_values(manifest, item, data, self._sitting_id(manifest.sitting)), manifest))
        if len(self.pending) >= FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        """Write the pending attempts: one upsert, one delete and one insert of their objects."""
        if not self.pending:
            return
        if self._upsert_stmt is None:
            stmt = insert_for(self.session, Attempt.__table__)
            columns = [c for c in self.pending[0][0] if c != "manifest_key"]
            self._upsert_stmt = stmt.on_conflict_do_update(
                index_elements=["manifest_key"], set_={c: stmt.excluded[c] for c in columns},
            ).returning(Attempt.__table__.c.id, Attempt.__table__.c.manifest_key)
        rows = self.session.execute(self._upsert_stmt, [values for values, _ in self.pending]).all()
        ids = {key: pk for pk, key in rows}
        table = StoredObject.__table__
        self.session.execute(delete(table).where(table.c.attempt_id.in_(list(ids.values()))))
        objects = [row for values, manifest in self.pending
                   for row in object_rows(manifest, ids[values["manifest_key"]],
                                          (values["manifest_key"], values["manifest_sha256"], values["manifest_size"]))]
        if objects:
            self.session.execute(insert(table), objects)
        fixed = [values["manifest_key"] for values, _ in self.pending if values["manifest_key"] in self.open_keys]
        for key in fixed:
            problems.resolve(self.session, key, problems.MANIFEST_KINDS)
        self.report.attempts.extend(ids[values["manifest_key"]] for values, _ in self.pending)
        self.pending.clear()

    def _sitting(self, item: Listed, data: bytes) -> None:
        try:
            manifest = parse_sitting_manifest(item.key, data)
        except ManifestError as exc:
            self._refused(item, data, exc)
            return
        self._seen(item)
        self.sittings[manifest.sitting] = upsert(self.session, Sitting.__table__, sitting_values(manifest, item),
                                                 keys=["centre_id", "sitting"])  # type: ignore[assignment]
        if item.key in self.open_keys:
            problems.resolve(self.session, item.key, problems.MANIFEST_KINDS)

    def _lots(self, item: Listed, data: bytes) -> None:
        try:
            lots = parse_lot_map(item.key, data)
            tickets = {int(lot): ticket for lot, ticket in lots.lots.items()}
        except ManifestError as exc:
            self._refused(item, data, exc)
            return
        except ValueError:
            self._problem(ProblemKind.MALFORMED_MANIFEST, item.key, "a lot that is not a number")
            return
        sitting_pk = self._sitting_id(lots.sitting)
        self.session.execute(delete(LotTicket).where(LotTicket.sitting_id == sitting_pk))
        if tickets:
            self.session.execute(insert(LotTicket), [{"sitting_id": sitting_pk, "lot": lot, "ticket_no": ticket}
                                                     for lot, ticket in sorted(tickets.items())])
        self.session.execute(update(Sitting).where(Sitting.id == sitting_pk).values(lots_etag=item.etag))
        if item.key in self.open_keys:
            problems.resolve(self.session, item.key, problems.MANIFEST_KINDS)


def attempt_values(manifest: AttemptManifest, item: Listed, data: bytes, sitting_pk: int) -> dict[str, Any]:
    """The attempt row of a parsed manifest (verification reset: it is checked again)."""
    return {
        "centre_id": manifest.centre, "sitting_id": sitting_pk, "attempt": manifest.attempt, "lot": manifest.lot,
        "prefix": manifest.prefix, "manifest_key": item.key, "manifest_etag": item.etag,
        "manifest_sha256": hashlib.sha256(data).hexdigest(), "manifest_size": len(data),
        "manifest_modified_at": item.last_modified,
        "manifest": manifest.model_dump(mode="json", by_alias=True),
        "kind": manifest.kind, "scoring": manifest.scoring, "station": manifest.station,
        "end_reason": manifest.end_reason, "finished_at": manifest.finished_at, "indexed_at": utcnow(),
        "chain_verdict": str(ChainVerdict.UNCHECKED), "chain_problems": [],
        "verification": str(Verification.PENDING), "checked_at": None, "hashed_at": None, "hashed_bytes": 0,
    }


def object_rows(manifest: AttemptManifest, attempt_pk: int,
                document: tuple[str, str, int] | None = None) -> list[dict[str, Any]]:
    """One stored-object row per object the manifest lists, and for the manifest itself
    (``document``: its key, SHA-256 and size), so a manifest deleted later is named as missing."""
    rows: dict[str, dict[str, Any]] = {}

    def add(key: str, kind: ObjectKind, sha: str | None, size: int | None, info: dict[str, Any], *,
            camera: str | None = None, question: int | None = None, seq: int | None = None) -> None:
        rows[key] = {"attempt_id": attempt_pk, "key": key, "kind": str(kind), "camera": camera, "question": question,
                     "seq": seq, "expected_size": size, "expected_sha256": sha, "info": info, "check": "unchecked",
                     "detail": ""}

    for seg in manifest.objects:
        add(seg.key, ObjectKind.SEGMENT, seg.sha256, seg.size,
            {"started_at": seg.started_at, "ended_at": seg.ended_at, "chain": seg.chain.model_dump()},
            camera=seg.camera, question=seg.question, seq=seg.seq)
    for q in manifest.questions:
        add(q.key, ObjectKind.QUESTION, q.sha256, q.size,
            {"duration": q.duration, "expected_duration": q.expected_duration, "segments": q.segments,
             "complete": q.complete, "offset": q.offset}, camera=q.camera, question=q.question)
    for number, frame in enumerate([*manifest.face_login.tries, *manifest.face_login.reviews]):
        if frame.key and frame.sha256:
            add(frame.key, ObjectKind.FACE_FRAME, frame.sha256, None,
                frame.model_dump(mode="json", by_alias=True) | {"index": number})
    if document is not None:
        add(document[0], ObjectKind.MANIFEST, document[1], document[2], {})
    return list(rows.values())


def sitting_values(manifest: SittingManifest, item: Listed) -> dict[str, Any]:
    return {
        "centre_id": manifest.centre, "sitting": manifest.sitting, "manifest_key": item.key,
        "manifest_etag": item.etag, "name": manifest.name, "kind": manifest.kind,
        "timing_mode": manifest.timing_mode, "starts_at": manifest.starts_at, "ends_at": manifest.ends_at,
        "question_seconds": list(manifest.question_seconds), "expected": manifest.expected,
        "absent": manifest.absent, "lots": [lot.model_dump(mode="json") for lot in manifest.lots],
        "written_at": manifest.written_at, "indexed_at": utcnow(),
    }
