"""Central storage as edges write it and the regional server reads it: the key layout and the manifests.

Every attempt lives under ``<centre>/<sitting>/lot-<NNN>`` (the lot number, never the candidate's
name; ``unassigned-<attempt>`` before a lot is drawn)::

    <prefix>/segments/<segment name>         the verified segments, as uploaded
    <prefix>/questions/<camera>_q<N>.mp4     per question, joined without re-encoding (``_waiting``)
    <prefix>/face_login/try-<NN>.jpg         the frame of each face login try
    <prefix>/face_login/review-<id>.jpg      the frame a manual review was decided on
    <prefix>/manifest.json                   what the copy holds (``AttemptManifest``), written last

and every sitting has ``<centre>/<sitting>/sitting.json`` (``SittingManifest``: timing, the lots
expected, who was absent, per lot how far it got; no names) and ``<centre>/<sitting>/lots.json``
(``LotMap``: lot -> ticket number, for the regional admin's results only).

An attempt's manifest is its **commit marker**: an edge writes it only after every object it
lists is stored and confirmed, so a reader that finds a manifest may expect every object in it.
A reader parses manifests with :func:`parse_attempt_manifest` / :func:`parse_sitting_manifest`,
which refuse a malformed, truncated or foreign document with a :class:`ManifestError` that names
the key, and refuse any object key outside the manifest's own prefix.
"""
from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Callable, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ATTEMPT_FORMAT = "examkiosk-manifest/1"
SITTING_FORMAT = "examkiosk-sitting/1"
LOTS_FORMAT = "examkiosk-lots/1"
MANIFEST_NAME = "manifest.json"
SITTING_NAME = "sitting.json"
LOTS_NAME = "lots.json"
SHA256_META = "sha256"  # the user metadata (x-amz-meta-sha256) every stored object carries

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ManifestError(ValueError):
    """A manifest a reader refuses; ``key`` names the object it came from."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def check_key(key: str) -> str:
    """An object key that is relative, has no empty, ``.`` or ``..`` part: returned unchanged."""
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or "\\" in key or any(p in ("..", ".", "") for p in key.split("/")) \
            or not parts:
        raise ValueError(f"bad object key {key!r}")
    return key


def lot_folder(lot: int | None, attempt_id: str) -> str:
    return f"lot-{lot:03d}" if lot is not None else f"unassigned-{attempt_id}"


def sitting_prefix(centre: str, sitting: str) -> str:
    return f"{centre}/{sitting}"


def attempt_prefix(centre: str, sitting: str, lot: int | None, attempt_id: str) -> str:
    """The attempt's folder in central storage: filed under the lot number, never the candidate's name."""
    return f"{sitting_prefix(centre, sitting)}/{lot_folder(lot, attempt_id)}"


def segment_key(prefix: str, name: str) -> str:
    return f"{prefix}/segments/{name}"


def question_key(prefix: str, name: str) -> str:
    return f"{prefix}/questions/{name}"


def face_try_key(prefix: str, number: int) -> str:
    return f"{prefix}/face_login/try-{number:02d}.jpg"


def review_frame_key(prefix: str, review_id: int) -> str:
    return f"{prefix}/face_login/review-{review_id}.jpg"


def manifest_key(prefix: str) -> str:
    return f"{prefix}/{MANIFEST_NAME}"


def sitting_manifest_key(centre: str, sitting: str) -> str:
    return f"{sitting_prefix(centre, sitting)}/{SITTING_NAME}"


def lots_key(centre: str, sitting: str) -> str:
    return f"{sitting_prefix(centre, sitting)}/{LOTS_NAME}"


def kind_of_key(key: str) -> Literal["attempt", "sitting", "lots", "other"]:
    """What a listed key is to a reader: an attempt manifest, a sitting manifest, a lot map, or data."""
    parts = key.split("/")
    if len(parts) == 4 and parts[3] == MANIFEST_NAME:
        return "attempt"
    if len(parts) == 3 and parts[2] == SITTING_NAME:
        return "sitting"
    if len(parts) == 3 and parts[2] == LOTS_NAME:
        return "lots"
    return "other"


# --- the documents ----------------------------------------------------------------------------
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Ident = Annotated[str, Field(pattern=_ID.pattern)]
Size = Annotated[int, Field(ge=0, le=1 << 50)]


class Document(BaseModel):
    """Strict types; fields a later format adds are ignored by an older reader."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Chain(Document):
    prev: str = ""
    entry: str = ""
    sig: str = ""
    # The public key (base64 Ed25519) of the station that recorded and signed this segment: after a move
    # to another station one camera's chain holds links signed by two stations. None: the manifest's
    # ``station_public_key`` (manifests written before this field).
    key: str | None = None


class SegmentObject(Document):
    key: str
    sha256: Sha256
    size: Size
    camera: Ident
    seq: int = Field(ge=0)
    question: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    chain: Chain = Chain()


class QuestionObject(Document):
    key: str
    sha256: Sha256
    size: Size | None = None
    camera: Ident
    question: int | None = None  # None: the waiting room
    duration: float | None = None
    expected_duration: float | None = None
    segments: list[str] = []
    complete: bool = True
    offset: float | None = None  # server time of the file's first frame, for the player's flag marks


class FaceFrame(Document):
    key: str | None = None
    sha256: Sha256 | None = None
    try_: int | None = Field(default=None, alias="try")
    at: str | None = None
    distance: float | None = None
    matched: bool | None = None
    status: str | None = None
    reason: str | None = None
    best_distance: float | None = None


class FaceLogin(Document):
    tries: list[FaceFrame] = []
    reviews: list[FaceFrame] = []


class Flag(Document):
    """A monitoring flag (or an edge flag such as ``ended_early``), in server time where it has one."""

    kind: str
    started_at: float | None = None
    ended_at: float | None = None
    reason: str | None = None
    detail: Any = None


class AttemptManifest(Document):
    format: Literal["examkiosk-manifest/1"]
    centre: Ident
    sitting: Ident
    attempt: Ident
    kind: str = "formal"
    scoring: bool = True
    lot: int | None = None
    station: str | None = None
    finished_at: str | None = None
    end_reason: str | None = None
    written_at: str | None = None
    started_at: float | None = None  # server time of the sitting's start, for the timeline
    flags: list[Flag] = []
    station_public_key: str | None = None
    objects: list[SegmentObject] = []
    questions: list[QuestionObject] = []
    media_problems: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    face_login: FaceLogin = FaceLogin()

    @property
    def prefix(self) -> str:
        return attempt_prefix(self.centre, self.sitting, self.lot, self.attempt)

    def keys(self) -> list[tuple[str, str, int | None]]:
        """Every object the manifest lists: (key, sha256, size or None)."""
        found = [(o.key, o.sha256, o.size) for o in self.objects]
        found += [(q.key, q.sha256, q.size) for q in self.questions]
        for frame in [*self.face_login.tries, *self.face_login.reviews]:
            if frame.key and frame.sha256:
                found.append((frame.key, frame.sha256, None))
        return found


class LotState(Document):
    lot: int
    attempt: str | None = None
    started: bool = False
    finished: bool = False
    ended_early: bool = False
    end_reason: str | None = None
    complete_at_edge: bool = False
    synced: bool = False


class SittingManifest(Document):
    format: Literal["examkiosk-sitting/1"]
    centre: Ident
    sitting: Ident
    name: str = ""
    kind: str = "formal"
    timing_mode: str = ""
    starts_at: float | None = None
    ends_at: float | None = None
    question_seconds: list[int] = []
    expected: int = 0  # candidates expected at this centre for the sitting
    absent: int = 0  # expected candidates who never logged in (counted, not named)
    lots: list[LotState] = []
    written_at: str | None = None


class LotMap(Document):
    format: Literal["examkiosk-lots/1"]
    centre: Ident
    sitting: Ident
    lots: dict[str, str]  # "<lot>" -> ticket number


D = TypeVar("D", SittingManifest, LotMap)


def dump(document: BaseModel) -> bytes:
    """A document as stored: sorted UTF-8 JSON, the same bytes for the same content."""
    return json.dumps(document.model_dump(mode="json", by_alias=True), indent=2, ensure_ascii=False,
                      sort_keys=True).encode()


def _load(key: str, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ManifestError(key, "is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(key, f"is not JSON (truncated?): {exc.msg} at {exc.pos}") from None
    if not isinstance(value, dict):
        raise ManifestError(key, "is not a JSON object")
    return value


def _validate(model: type[Document], key: str, value: dict[str, Any]) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise ManifestError(key, f"{where}: {first['msg']}") from None


def _expect_format(key: str, value: dict[str, Any], expected: str) -> None:
    if value.get("format") != expected:
        raise ManifestError(key, f"is not an {expected} document (format {value.get('format')!r})")


def _inside(key: str, prefix: str, what: str) -> None:
    try:
        check_key(what)
    except ValueError:
        raise ManifestError(key, f"names the object key {what!r}, which is not a plain relative key") from None
    if not what.startswith(prefix + "/"):
        raise ManifestError(key, f"names the object key {what!r}, outside its prefix {prefix}/")


def parse_attempt_manifest(key: str, data: bytes) -> AttemptManifest:
    """An attempt manifest read from ``key``; it must sit where its own fields file it."""
    value = _load(key, data)
    _expect_format(key, value, ATTEMPT_FORMAT)
    manifest: AttemptManifest = _validate(AttemptManifest, key, value)
    if manifest_key(manifest.prefix) != key:
        raise ManifestError(key, f"describes {manifest.prefix}/, not the folder it was found in")
    for what, _sha, _size in manifest.keys():
        _inside(key, manifest.prefix, what)
    return manifest


def _parse_sitting_document(model: type[D], fmt: str, where: Callable[[str, str], str], key: str, data: bytes) -> D:
    """A per-sitting document read from ``key``; it must sit where its centre and sitting file it."""
    value = _load(key, data)
    _expect_format(key, value, fmt)
    document = _validate(model, key, value)
    if where(document.centre, document.sitting) != key:
        raise ManifestError(key, f"describes {document.centre}/{document.sitting}/, not the folder it was found in")
    return document


def parse_sitting_manifest(key: str, data: bytes) -> SittingManifest:
    return _parse_sitting_document(SittingManifest, SITTING_FORMAT, sitting_manifest_key, key, data)


def parse_lot_map(key: str, data: bytes) -> LotMap:
    return _parse_sitting_document(LotMap, LOTS_FORMAT, lots_key, key, data)
