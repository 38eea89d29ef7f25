"""SQLAlchemy 2.0 typed models of the edge server. All times are UTC."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


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


class SittingKind(enum.StrEnum):
    FORMAL = "formal"
    MOCK = "mock"


class TimingMode(enum.StrEnum):
    PER_QUESTION = "per_question"
    WHOLE_SESSION = "whole_session"


class StaffRole(enum.StrEnum):
    PROCTOR = "proctor"
    CENTRE_ADMIN = "centre_admin"
    REGIONAL_ADMIN = "regional_admin"


class ReviewStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class SegmentStatus(enum.StrEnum):
    UPLOADING = "uploading"
    VERIFIED = "verified"
    CORRUPT = "corrupt"


class SyncStatus(enum.StrEnum):
    NONE = "none"
    QUEUED = "queued"
    SYNCED = "synced"
    FAILED = "failed"


# Face-match distance at or below which a station accepts the candidate (calibrated on the test images).
DEFAULT_FACE_THRESHOLD = 0.6


class Centre(Base):
    __tablename__ = "centre"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Per-centre settings sent to the stations with each attempt (see services/centres.py).
    face_threshold: Mapped[float] = mapped_column(Float, default=DEFAULT_FACE_THRESHOLD)
    voice_prompts: Mapped[bool] = mapped_column(default=True)


class Station(Base):
    __tablename__ = "station"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    seat: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Ed25519 key the station signs its segment chain with (base64 raw public key).
    public_key: Mapped[str | None] = mapped_column(String(64), default=None)
    # Latest status as the MQTT bridge saw it.
    online: Mapped[bool] = mapped_column(default=False)
    last_status: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)


class StaffUser(Base):
    __tablename__ = "staff_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[StaffRole] = mapped_column(String(32))
    centre_id: Mapped[str | None] = mapped_column(ForeignKey("centre.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Flask-Login protocol
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


class LoginAttempt(Base):
    """Staff sign-in attempts, for rate limiting and lockout."""

    __tablename__ = "login_attempt"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    ok: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Paper(Base):
    """An exam paper. A sealed paper (services/papers.py) keeps only ciphertext: ``title`` and
    ``instructions`` stay empty and it has no ``Question`` rows; the text is in ``ciphertext``
    (AES-256-GCM, examkiosk_wire/sealed.py) and the key in ``wrapped_key``, itself encrypted with a key
    that lives in the edge's data directory, not in the database. ``question_seconds`` (the
    countdowns, which stations need before the start) is the only part stored in the clear."""

    __tablename__ = "paper"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="")
    questions: Mapped[list["Question"]] = relationship(order_by="Question.position", back_populates="paper")
    # Sealed paper: the sitting it is sealed for (the associated data), blob, nonce, SHA-256 of the blob.
    sealed_for: Mapped[str | None] = mapped_column(String(64), default=None)
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    nonce: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    wrapped_key: Mapped[str | None] = mapped_column(Text, default=None)
    question_seconds: Mapped[list[Any] | None] = mapped_column(default=None)
    source_name: Mapped[str] = mapped_column(String(255), default="")
    imported_by: Mapped[str] = mapped_column(String(80), default="")
    imported_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the edge daemon first pushed the key to the sitting's stations.
    released_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def sealed(self) -> bool:
        return self.ciphertext is not None


class Question(Base):
    __tablename__ = "question"
    __table_args__ = (UniqueConstraint("paper_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("paper.id"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    seconds: Mapped[int] = mapped_column(Integer)
    paper: Mapped[Paper] = relationship(back_populates="questions")


class Sitting(Base):
    __tablename__ = "sitting"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[SittingKind] = mapped_column(String(16), default=SittingKind.FORMAL)
    timing_mode: Mapped[TimingMode] = mapped_column(String(16), default=TimingMode.PER_QUESTION)
    paper_id: Mapped[int] = mapped_column(ForeignKey("paper.id"))
    waiting_opens_at: Mapped[datetime]
    starts_at: Mapped[datetime]
    entry_closes_at: Mapped[datetime]
    lot_deadline_at: Mapped[datetime]
    # Whole-session mode: one countdown of this many seconds. Per-question mode sums the questions.
    total_seconds: Mapped[int | None] = mapped_column(default=None)
    max_interruptions: Mapped[int] = mapped_column(default=1)
    max_gap_seconds: Mapped[int] = mapped_column(default=120)
    # Per-question mode: every question lasts this long (None: each question's own ``seconds``).
    question_seconds: Mapped[int | None] = mapped_column(default=None)
    # Whole-session mode: the candidate may end early after a confirmation.
    early_finish_allowed: Mapped[bool] = mapped_column(default=True)
    # Formal sittings: a candidate must have completed a mock sitting first.
    mock_required: Mapped[bool] = mapped_column(default=False)
    paper: Mapped[Paper] = relationship()


class Candidate(Base):
    __tablename__ = "candidate"
    __table_args__ = (UniqueConstraint("centre_id", "ticket_no"),
                      Index("uq_candidate_sitting_station", "sitting_id", "station_id", unique=True))
    id: Mapped[int] = mapped_column(primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"))
    sitting_id: Mapped[str] = mapped_column(ForeignKey("sitting.id"))
    ticket_no: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    id_number: Mapped[str] = mapped_column(String(32))
    seat: Mapped[str] = mapped_column(String(32), default="")
    # The station the seat map assigned (services/seats.py); identifying elsewhere is refused.
    station_id: Mapped[str | None] = mapped_column(ForeignKey("station.id"), default=None)
    photo_path: Mapped[str] = mapped_column(String(500), default="")
    # 128-d face descriptor computed from the enrolled photo at import.
    descriptor: Mapped[list[Any] | None] = mapped_column(default=None)


class Attempt(Base):
    __tablename__ = "attempt"
    __table_args__ = (
        UniqueConstraint("sitting_id", "candidate_id"),
        UniqueConstraint("sitting_id", "lot"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    sitting_id: Mapped[str] = mapped_column(ForeignKey("sitting.id"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidate.id"))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("station.id"), default=None)
    lot: Mapped[int | None] = mapped_column(default=None)
    lot_auto: Mapped[bool] = mapped_column(default=False)
    face_verified: Mapped[str | None] = mapped_column(String(16), default=None)  # "face" | "review"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Segment names the station declared at the end: the edge is done when all are verified.
    expected_segments: Mapped[list[Any] | None] = mapped_column(default=None)
    upload_complete_at: Mapped[datetime | None] = mapped_column(default=None)
    sync_status: Mapped[SyncStatus] = mapped_column(String(16), default=SyncStatus.NONE)
    synced_at: Mapped[datetime | None] = mapped_column(default=None)
    sync_error: Mapped[str] = mapped_column(Text, default="")
    # Why answering ended (time_up, ended_by_candidate, too_many_interruptions, …), from the station.
    end_reason: Mapped[str] = mapped_column(String(64), default="")
    # The sync job's progress (jobs/sync.py), committed every few objects; the attempt page shows it.
    sync_objects_done: Mapped[int] = mapped_column(Integer, default=0)
    sync_objects_total: Mapped[int] = mapped_column(Integer, default=0)
    sync_bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    sync_bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    candidate: Mapped[Candidate] = relationship()
    sitting: Mapped[Sitting] = relationship()
    segments: Mapped[list["Segment"]] = relationship(back_populates="attempt", order_by="Segment.name")


class FaceTry(Base):
    __tablename__ = "face_try"
    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("attempt.id"))
    distance: Mapped[float | None] = mapped_column(Float, default=None)
    matched: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # SHA-256 of the frame the station matched, kept for the reviewer (services/frames.py has the file).
    frame_sha256: Mapped[str | None] = mapped_column(String(64), default=None)


class Review(Base):
    __tablename__ = "review"
    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("attempt.id"))
    status: Mapped[ReviewStatus] = mapped_column(String(16), default=ReviewStatus.PENDING)
    best_distance: Mapped[float | None] = mapped_column(Float, default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    attempt: Mapped[Attempt] = relationship()


class FallbackCode(Base):
    """A one-time code a staff member issues instead of face login (services/fallback.py).

    Only an HMAC of the code is stored. It is bound to the attempt, its candidate and one station,
    and works once before ``expires_at``; a newer code for the attempt supersedes it.
    """

    __tablename__ = "fallback_code"
    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("attempt.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidate.id"))
    station_id: Mapped[str] = mapped_column(ForeignKey("station.id"))
    code_hash: Mapped[str] = mapped_column(String(64))
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    superseded_at: Mapped[datetime | None] = mapped_column(default=None)
    failed_tries: Mapped[int] = mapped_column(Integer, default=0)


class Segment(Base):
    """One recording segment; its id is the tus upload id."""

    __tablename__ = "segment"
    __table_args__ = (UniqueConstraint("attempt_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("attempt.id"))
    station_id: Mapped[str] = mapped_column(ForeignKey("station.id"))
    name: Mapped[str] = mapped_column(String(200))
    camera: Mapped[str] = mapped_column(String(32), default="main")
    seq: Mapped[int] = mapped_column(default=0)
    question: Mapped[int | None] = mapped_column(default=None)
    started_at: Mapped[float | None] = mapped_column(Float, default=None)
    ended_at: Mapped[float | None] = mapped_column(Float, default=None)
    length: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(Integer, default=0)
    sha256_declared: Mapped[str] = mapped_column(String(64))
    sha256_actual: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[SegmentStatus] = mapped_column(String(16), default=SegmentStatus.UPLOADING)
    # Link in the station's signed hash chain (see examkiosk_wire/chain.py).
    prev_hash: Mapped[str] = mapped_column(String(64), default="")
    entry_hash: Mapped[str] = mapped_column(String(64), default="")
    signature: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    attempt: Mapped[Attempt] = relationship(back_populates="segments")


class CentralDocument(Base):
    """A manifest the edge wrote to central storage: its SHA-256 and when (jobs/documents.py)."""
    __tablename__ = "central_document"
    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[datetime]


class Event(Base):
    """Append-only audit log of station events and staff actions (see services/audit.py)."""

    __tablename__ = "event"
    __table_args__ = (UniqueConstraint("prev_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[str | None] = mapped_column(ForeignKey("station.id"), default=None)
    attempt_id: Mapped[str | None] = mapped_column(ForeignKey("attempt.id"), default=None)
    kind: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="api")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")
    hash: Mapped[str] = mapped_column(String(64), default="")


class EnrolmentCode(Base):
    """A one-time code a centre admin makes to enrol a station (services/enrolment_codes.py).

    Only an HMAC of the code is stored. It works once, before ``expires_at``; using it creates
    ``station_id`` and records where the station enrolled from and what it runs.
    """

    __tablename__ = "enrolment_code"
    id: Mapped[int] = mapped_column(primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    station_id: Mapped[str | None] = mapped_column(ForeignKey("station.id"), default=None)
    used_from: Mapped[str] = mapped_column(String(64), default="")
    hostname: Mapped[str] = mapped_column(String(255), default="")
    version: Mapped[str] = mapped_column(String(64), default="")


class EnrolmentTry(Base):
    """Every use of ``POST /api/v1/enrol``, for the per-address rate limit."""

    __tablename__ = "enrolment_try"
    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    ok: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str] = mapped_column(String(32), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class MessageKind(enum.StrEnum):
    HELP = "help"            # a candidate's 求助, sent from a station
    REPLY = "reply"          # a proctor's answer in a help thread
    BROADCAST = "broadcast"  # a proctor's notice to every station of a sitting


class ThreadStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class HelpThread(Base):
    """A station's help conversation: one per station and attempt, or per station alone
    (``attempt_id`` None) before a candidate is identified. See services/messages.py."""

    __tablename__ = "help_thread"
    __table_args__ = (UniqueConstraint("station_id", "attempt_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"))
    station_id: Mapped[str] = mapped_column(ForeignKey("station.id"))
    attempt_id: Mapped[str | None] = mapped_column(ForeignKey("attempt.id"), default=None)
    status: Mapped[ThreadStatus] = mapped_column(String(16), default=ThreadStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), default=None)


class Message(Base):
    """One help request, reply or broadcast. Help and replies belong to a thread (and carry its
    attempt, so the history stays with the attempt); a broadcast names its sitting and the
    stations it was pushed to when it was sent."""

    __tablename__ = "message"
    id: Mapped[int] = mapped_column(primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"))
    kind: Mapped[MessageKind] = mapped_column(String(16))
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("help_thread.id"), default=None, index=True)
    station_id: Mapped[str | None] = mapped_column(ForeignKey("station.id"), default=None)
    attempt_id: Mapped[str | None] = mapped_column(ForeignKey("attempt.id"), default=None, index=True)
    sitting_id: Mapped[str | None] = mapped_column(ForeignKey("sitting.id"), default=None, index=True)
    # Help: the quick reason the candidate chose (device, network, login, other).
    reason: Mapped[str] = mapped_column(String(32), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), default=None)
    # Staff user name for replies and broadcasts; "" for a candidate's help.
    author: Mapped[str] = mapped_column(String(80), default="")
    # Broadcast: the station ids it was pushed to at send time.
    recipients: Mapped[list[Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageAck(Base):
    """A station's candidate acknowledged a broadcast (the kiosk's banner stays until then)."""

    __tablename__ = "message_ack"
    __table_args__ = (UniqueConstraint("message_id", "station_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"))
    station_id: Mapped[str] = mapped_column(ForeignKey("station.id"))
    attempt_id: Mapped[str | None] = mapped_column(ForeignKey("attempt.id"), default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportStatus(enum.StrEnum):
    ANALYSING = "analysing"  # the RQ job is computing the photos' descriptors
    READY = "ready"          # every row checked: the preview is complete
    FAILED = "failed"        # the job could not finish (see ``error``)
    CONFIRMED = "confirmed"  # the valid rows were written


class CandidateImport(Base):
    """One upload of a candidate CSV and a ZIP of photos (services/candidate_import.py).

    The files sit in a staging directory named by ``id`` (random) until the import is confirmed;
    ``rows`` is the preview, one entry per CSV row with its problems and, once the job ran, its
    face descriptor.
    """

    __tablename__ = "candidate_import"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centre.id"))
    sitting_id: Mapped[str] = mapped_column(ForeignKey("sitting.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[ImportStatus] = mapped_column(String(16), default=ImportStatus.ANALYSING)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str] = mapped_column(Text, default="")
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    imported: Mapped[int] = mapped_column(Integer, default=0)
