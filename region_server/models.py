"""SQLAlchemy 2.0 typed models of the regional server: what the indexer and the verifier found in
central storage, and the region's own users. All times are UTC.

The region's only source of truth is central storage: every row here is derived from an object
there (keyed by its object key) and can be rebuilt by indexing again.
"""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
KEY_LENGTH = 1024  # S3's longest object key


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use UTC-aware datetimes")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Role(enum.StrEnum):
    REGIONAL_ADMIN = "regional_admin"
    REVIEWER = "reviewer"
    MARKER = "marker"


class ChainVerdict(enum.StrEnum):
    UNCHECKED = "unchecked"
    OK = "ok"
    BROKEN = "broken"  # a changed, missing, reordered or inserted segment, or a bad signature
    UNSIGNED = "unsigned"  # the manifest carries no station key (nothing to check against)


class Verification(enum.StrEnum):
    PENDING = "pending"  # indexed, not checked yet
    PRESENT = "present"  # every listed object answered HEAD with its size; not re-hashed yet
    VERIFIED = "verified"  # every byte re-hashed and matching, chain intact
    DAMAGED = "damaged"  # something is missing, changed, inserted, or the chain is broken


class ObjectKind(enum.StrEnum):
    SEGMENT = "segment"
    QUESTION = "question"
    FACE_FRAME = "face_frame"
    MANIFEST = "manifest"  # the attempt's manifest itself: checked like the rest, so its deletion is named


class ObjectCheck(enum.StrEnum):
    UNCHECKED = "unchecked"
    OK = "ok"  # HEAD: present with its size; after a re-hash (hashed_at set): its SHA-256 too
    MISSING = "missing"
    SIZE_MISMATCH = "size_mismatch"
    SHA_MISMATCH = "sha_mismatch"
    UNLISTED = "unlisted"  # found under the attempt's segments/ but not in its manifest (inserted)


class ProblemKind(enum.StrEnum):
    MALFORMED_MANIFEST = "malformed_manifest"
    TRUNCATED_MANIFEST = "truncated_manifest"
    FOREIGN_MANIFEST = "foreign_manifest"
    KEY_OUTSIDE_PREFIX = "key_outside_prefix"
    MISSING_OBJECT = "missing_object"
    SIZE_MISMATCH = "size_mismatch"
    SHA_MISMATCH = "sha_mismatch"
    INSERTED_OBJECT = "inserted_object"
    CHAIN = "chain"
    UNREADABLE = "unreadable"  # the store refused to give the object


class Centre(Base):
    """A top-level prefix of central storage."""

    __tablename__ = "centre"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # LastModified of the newest manifest (attempt or sitting) the indexer has seen of this centre.
    last_manifest_at: Mapped[datetime | None] = mapped_column(default=None)
    last_indexed_at: Mapped[datetime | None] = mapped_column(default=None)


class IndexCursor(Base):
    """Where a centre's index pass is (``start_after``: the last key done; "" at a pass's start) and
    who holds the centre's lease (one indexer per centre at a time)."""

    __tablename__ = "index_cursor"
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"), primary_key=True)
    start_after: Mapped[str] = mapped_column(String(KEY_LENGTH), default="")
    passes: Mapped[int] = mapped_column(Integer, default=0)
    pass_started_at: Mapped[datetime | None] = mapped_column(default=None)
    last_pass_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_owner: Mapped[str] = mapped_column(String(128), default="")
    lease_until: Mapped[datetime | None] = mapped_column(default=None)


class Sitting(Base):
    """A sitting of a centre, from its ``sitting.json`` (a row exists as soon as any of its attempts does)."""

    __tablename__ = "sitting"
    __table_args__ = (UniqueConstraint("centre_id", "sitting"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"))
    sitting: Mapped[str] = mapped_column(String(64))  # the edge's sitting id
    manifest_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH), default=None)
    manifest_etag: Mapped[str | None] = mapped_column(String(128), default=None)
    lots_etag: Mapped[str | None] = mapped_column(String(128), default=None)
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(32), default="formal")
    timing_mode: Mapped[str] = mapped_column(String(32), default="")
    starts_at: Mapped[float | None] = mapped_column(Float, default=None)
    ends_at: Mapped[float | None] = mapped_column(Float, default=None)
    question_seconds: Mapped[list[Any]] = mapped_column(default=list)
    expected: Mapped[int] = mapped_column(Integer, default=0)
    absent: Mapped[int] = mapped_column(Integer, default=0)
    lots: Mapped[list[Any]] = mapped_column(default=list)  # SittingManifest.lots as dicts
    written_at: Mapped[str | None] = mapped_column(String(64), default=None)
    indexed_at: Mapped[datetime | None] = mapped_column(default=None)


class LotTicket(Base):
    """Lot -> ticket number of a sitting, from ``lots.json``: for the regional admin's results only."""

    __tablename__ = "lot_ticket"
    __table_args__ = (UniqueConstraint("sitting_id", "lot"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sitting.id"))
    lot: Mapped[int] = mapped_column(Integer)
    ticket_no: Mapped[str] = mapped_column(String(64))


class Attempt(Base):
    """One attempt manifest as indexed, with what central verification found."""

    __tablename__ = "attempt"
    id: Mapped[int] = mapped_column(primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"), index=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sitting.id"), index=True)
    attempt: Mapped[str] = mapped_column(String(64), index=True)  # the edge's attempt id
    lot: Mapped[int | None] = mapped_column(Integer, default=None)
    prefix: Mapped[str] = mapped_column(String(KEY_LENGTH))
    manifest_key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    manifest_etag: Mapped[str] = mapped_column(String(128))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    manifest_size: Mapped[int] = mapped_column(BigInteger, default=0)
    manifest_modified_at: Mapped[datetime | None] = mapped_column(default=None)
    manifest: Mapped[dict[str, Any]] = mapped_column()  # the parsed AttemptManifest (model_dump, by alias)
    kind: Mapped[str] = mapped_column(String(32), default="formal")
    scoring: Mapped[bool] = mapped_column(default=True)
    station: Mapped[str | None] = mapped_column(String(64), default=None)
    end_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    finished_at: Mapped[str | None] = mapped_column(String(64), default=None)
    indexed_at: Mapped[datetime] = mapped_column(default=utcnow)
    chain_verdict: Mapped[ChainVerdict] = mapped_column(String(16), default=ChainVerdict.UNCHECKED)
    chain_problems: Mapped[list[Any]] = mapped_column(default=list)  # [{"key", "message"}]
    verification: Mapped[Verification] = mapped_column(String(16), default=Verification.PENDING, index=True)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)  # last HEAD pass
    hashed_at: Mapped[datetime | None] = mapped_column(default=None)  # last full re-hash
    hashed_bytes: Mapped[int] = mapped_column(BigInteger, default=0)

    sitting_row: Mapped[Sitting] = relationship()
    objects: Mapped[list["StoredObject"]] = relationship(back_populates="attempt_row", order_by="StoredObject.key",
                                                         cascade="all, delete-orphan")


class StoredObject(Base):
    """One object an attempt's manifest lists (or one found under its segments/ that it does not)."""

    __tablename__ = "stored_object"
    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempt.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    kind: Mapped[ObjectKind] = mapped_column(String(16))
    camera: Mapped[str | None] = mapped_column(String(64), default=None)
    question: Mapped[int | None] = mapped_column(Integer, default=None)
    seq: Mapped[int | None] = mapped_column(Integer, default=None)
    expected_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    expected_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # Per kind, from the manifest: a segment's chain and times; a question file's duration, offset, ...
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    found_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    found_etag: Mapped[str | None] = mapped_column(String(128), default=None)
    found_sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # from the re-hash
    check: Mapped[ObjectCheck] = mapped_column(String(16), default=ObjectCheck.UNCHECKED)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    hashed_at: Mapped[datetime | None] = mapped_column(default=None)
    detail: Mapped[str] = mapped_column(Text, default="")

    attempt_row: Mapped[Attempt] = relationship(back_populates="objects")


class Problem(Base):
    """Something wrong found in central storage, named by its object key; ``resolved_at`` once it is gone."""

    __tablename__ = "problem"
    __table_args__ = (UniqueConstraint("kind", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), index=True)
    kind: Mapped[ProblemKind] = mapped_column(String(32))
    centre_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempt.id", ondelete="SET NULL"), default=None,
                                                   index=True)
    message: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class User(Base):
    """A regional user: ``regional_admin``, ``reviewer`` or ``marker`` (argon2 password hash)."""

    __tablename__ = "region_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Flask-Login protocol
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return str(self.id)
