"""Request bodies of the edge's station API (``/api/v1``), as the edge parses them (strictly).

Each model is what one route accepts; the station's ``EdgeClient`` sends these fields.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field

from examkiosk_wire.bodies import Body, Number, Text, check_tree

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
