"""Request bodies of the edge's station API (``/api/v1``), as the edge parses them (strictly).

Each model is what one route accepts; the station's ``EdgeClient`` sends these fields.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from examkiosk_wire.bodies import Body, Number, Text, check_tree
from examkiosk_wire.commands import MessagePush, PaperKey

API_PREFIX = "/api/v1"  # every station API route lives under it
TUS_VERSION = "1.0.0"  # the tus protocol version of the segment uploads (core, creation, checksum, termination)

AttemptId = Text(64, min_length=1)
# A face frame: a JPEG of at most 2 MiB, base64-encoded (the edge decodes and checks it).
FrameB64 = Text(2 * 1024 * 1024 * 4 // 3 + 4)
FRAME_ERROR = ("bad_frame", "frame_jpeg must be a base64 JPEG of at most 2 MiB")
# Free-form event details: JSON of bounded depth (the parser), keys and strings without NUL or lone surrogates.
Payload = Annotated[dict[str, Any], AfterValidator(check_tree)]


class OpenAttempt(Body):
    ticket_no: Text(32, min_length=1)


class FaceTry(Body):
    matched: bool
    distance: Number | None = None
    liveness: Text(32, min_length=1) | None = None  # the head-turn challenge's outcome ("ok", "rigid", ...)
    frame_jpeg: FrameB64 | None = None

    field_errors: ClassVar[dict[str, tuple[str, str]]] = {"frame_jpeg": FRAME_ERROR}


class ReviewRequest(Body):
    best_distance: Number | None = None
    frame_jpeg: FrameB64 | None = None

    field_errors: ClassVar[dict[str, tuple[str, str]]] = {"frame_jpeg": FRAME_ERROR}


class FallbackCode(Body):
    code: Text(32, min_length=1)


class NoFields(Body):
    """A POST whose body carries nothing (an empty body or ``{}``)."""


class StationEvent(Body):
    kind: Text(64, min_length=1)
    payload: Payload = Field(default_factory=dict)
    attempt: AttemptId | None = None


class StationKey(Body):
    public_key: Text(128, min_length=1)


class Finish(Body):
    segments: Annotated[list[Text(200, min_length=1)], Field(max_length=100_000)]
    reason: Text(64) = ""


class HelpRequest(Body):
    reason: Text(32, min_length=1)
    text: Text(2000) = ""  # the edge trims it and keeps at most its own limit
    attempt_id: AttemptId | None = None

    field_errors: ClassVar[dict[str, tuple[str, str]]] = {
        "reason": ("bad_reason", "reason must be one of device, network, login, other")}


class Acknowledge(Body):
    attempt_id: AttemptId | None = None


class Enrol(Body):
    code: Text(64, min_length=1)
    hostname: Text(255, min_length=1)
    version: Text(64, min_length=1)
    public_key: Text(128, min_length=1) | None = None
    station_id: Text(32, min_length=1) | None = None


# --- replies ------------------------------------------------------------------------------------
# What each route answers, as the edge builds it and the station reads it. Unknown fields are
# ignored, so a station keeps working with a newer edge that answers more.
class Reply(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class ServerTime(Reply):
    server_time: float


class SittingInfo(Reply):
    id: str
    name: str
    kind: str
    timing_mode: str
    waiting_opens_at: float
    starts_at: float
    entry_closes_at: float
    lot_deadline_at: float
    question_seconds: list[int]
    total_seconds: int
    early_finish: bool = True
    max_interruptions: int = 1
    max_gap_seconds: float = 120.0


class ScheduleReply(Reply):
    server_time: float
    centre: str
    station: str
    sittings: list[SittingInfo]


class CandidateInfo(Reply):
    ticket_no: str
    name: str
    id_number_masked: str
    seat: str | None = None
    sitting: str
    descriptor: list[float] | None = None


class ReviewInfo(Reply):
    id: int
    status: str  # pending, approved, rejected
    reason: str | None = None


class CentreSettings(Reply):
    face_threshold: float | None = None
    voice_prompts: bool | None = None


class ResumeInfo(Reply):
    """Where an attempt stands when a station opens it again (after a move or a restart)."""

    moved: bool = False
    moves: int = 0
    moved_at: float | None = None
    entered: bool = False
    question: int | None = None
    question_started_at: float | None = None
    answered: list[int] = []
    interruptions: int = 0
    seq_from: int = 0


class AttemptInfo(Reply):
    id: str
    sitting: SittingInfo
    candidate: CandidateInfo
    lot: int | None = None
    lot_auto: bool = False
    face_verified: str | None = None  # how the face was verified: "face", "review"; None: not yet
    face_tries: int = 0
    review: ReviewInfo | None = None
    finished: bool = False
    centre: CentreSettings = CentreSettings()
    resume: ResumeInfo = ResumeInfo()
    moved_to: str | None = None  # the seat map moved the candidate to this station (its label)


class FaceTryReply(Reply):
    tries: int
    face_verified: str | None


class FallbackReply(Reply):
    status: str
    review: int
    face_verified: str | None


class LotReply(Reply):
    lot: int
    auto: bool


class Accepted(Reply):
    ok: bool = True


class KeyReply(Reply):
    station: str
    public_key: str | None


class UploadStatus(Reply):
    """An attempt's uploads as the edge has them: what arrived verified, what is missing, the chain."""

    attempt: str
    finished: bool
    expected: int
    verified: int
    missing: list[str]
    corrupt: list[str]
    bytes_received: int
    chain_ok: bool
    chain_problems: list[str]
    awaiting_handover: list[str]  # stations moved away from that have not declared their segments
    complete: bool
    sync: str


# A message (the help chat, broadcasts) is ``commands.MessagePush``, pushed or fetched alike; the paper
# key route answers the ``paper_key`` command's payload, ``commands.PaperKey``.
PaperKeyReply = PaperKey


class SealedPaperReply(Reply):
    sitting: str
    ciphertext: str  # base64
    nonce: str  # base64
    sha256: str
    starts_at: float


class MessagePage(Reply):
    messages: list[MessagePush]
    last_id: int | None = None
    more: bool = False


class ThreadInfo(Reply):
    id: int
    status: str


class MessageReply(Reply):
    message: MessagePush
    thread: ThreadInfo | None = None


class AckReply(Reply):
    message: int
    acknowledged_at: float
    new: bool


class MqttAccess(Reply):
    host: str
    port: int
    tls: bool
    username: str
    password: str


class EnrolReply(Reply):
    station_id: str
    token: str
    centre: str
    fingerprint: str | None = None
    server_time: float
    mqtt: MqttAccess
