"""Sealed exam papers: import, storage, key release at the start time.

Import (:func:`import_paper`) validates the file (``paper_format``), seals the whole paper as one
AES-256-GCM blob for its sitting (``examkiosk_wire/sealed.py``) and stores the ciphertext, the nonce and
the paper key *wrapped*: encrypted with a key derived (HKDF-SHA256) from ``paper_wrap.key``, 32
random bytes in the edge's data directory. A dump of the database alone therefore reveals no
paper. No ``Question`` row and no plaintext column is written; the countdowns (seconds per
question) are the only thing kept in the clear, because stations plan the exam with them.

Before the sitting's ``starts_at`` nothing returns the plaintext (:func:`open_sitting_paper` raises
:class:`PaperSealed`). The key goes to the stations ``lead`` seconds ahead of the start (the setting
``[papers] key_lead_seconds``), so each has the paper open in memory and shows it on its own timer
at the start: from then the edge daemon pushes the key to the sitting's stations
(:func:`due_releases`, :func:`mark_released`) and any station of the centre may ask the API for it
(:func:`fetch_key`); before it, both refuse. Every import and release is in the audit log, without the key.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.errors import Conflict, EdgeError, NotFound, TooEarly
from edge_server.models import Attempt, Event, Paper, Sitting, Station
from edge_server.services import audit
from edge_server.services.paper_format import PaperContent, parse_paper_file
from examkiosk_wire import sealed
from examkiosk_wire.commands import PaperKey

logger = logging.getLogger(__name__)

WRAP_FILE = "paper_wrap.key"
WRAP_INFO = b"examkiosk paper key wrap v1"


class PaperSealed(TooEarly):
    """The paper is asked for before its sitting starts."""

    code = "paper_sealed"


class PaperUnavailable(EdgeError):
    """The sitting has no sealed paper, or its key cannot be unwrapped here."""

    status = 409
    code = "paper_unavailable"


# --- the wrapping key ---------------------------------------------------------------------------

def wrap_key_path(data_dir: Path) -> Path:
    return Path(data_dir) / WRAP_FILE


def _wrapping_key(data_dir: Path, *, create: bool) -> bytes:
    """The key that wraps paper keys, from ``<data_dir>/paper_wrap.key`` (made once, mode 0600)."""
    path = wrap_key_path(data_dir)
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(os.urandom(32))
                out.flush()
                os.fsync(out.fileno())
    try:
        secret = path.read_bytes()
    except FileNotFoundError as exc:
        raise PaperUnavailable(f"the paper wrapping key {path} is missing: papers sealed here cannot be opened")\
            from exc
    if len(secret) != 32:
        raise PaperUnavailable(f"the paper wrapping key {path} is damaged ({len(secret)} bytes, not 32)")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=WRAP_INFO).derive(secret)


def wrap(data_dir: Path, key: bytes, sitting_id: str) -> str:
    nonce = os.urandom(12)
    wrapped = AESGCM(_wrapping_key(data_dir, create=True)).encrypt(nonce, key, sealed.associated_data(sitting_id))
    return sealed.b64(nonce + wrapped)


def unwrap(data_dir: Path, wrapped: str, sitting_id: str) -> bytes:
    raw = sealed.unb64(wrapped, "the wrapped paper key")
    try:
        return AESGCM(_wrapping_key(data_dir, create=False)).decrypt(raw[:12], raw[12:],
                                                                     sealed.associated_data(sitting_id))
    except InvalidTag as exc:
        raise PaperUnavailable("the paper key does not unwrap with this edge's paper_wrap.key") from exc


# --- import -------------------------------------------------------------------------------------

def sitting_of_centre(session: Session, centre_id: str, sitting_id: str) -> Sitting:
    sitting = session.get(Sitting, sitting_id)
    if sitting is None or sitting.centre_id != centre_id:
        raise NotFound("no such sitting", code="sitting_unknown")
    return sitting


def sealed_paper(data_dir: Path, sitting_id: str, content: PaperContent, *, source_name: str, by: str,
                 now: datetime) -> Paper:
    """A new (unsaved) paper row holding ``content`` sealed for ``sitting_id``."""
    key, blob = sealed.seal(content.to_plaintext(), sitting_id)
    return Paper(title="", instructions="", sealed_for=sitting_id, ciphertext=blob.ciphertext, nonce=blob.nonce,
                 sha256=blob.sha256, wrapped_key=wrap(data_dir, key, sitting_id),
                 question_seconds=content.question_seconds, source_name=source_name[:255], imported_by=by,
                 imported_at=now)


def import_paper(session: Session, data_dir: Path, sitting: Sitting, filename: str, data: bytes, *, by: str,
                 now: datetime) -> Paper:
    """Validate and seal an uploaded paper file for ``sitting`` (before its start only), audited.

    Raises ``PaperFormatError`` (with every problem) or :class:`Conflict`; nothing is stored then."""
    if now >= sitting.starts_at:
        raise Conflict("this sitting has started: its paper can no longer be replaced", code="sitting_started")
    content = parse_paper_file(filename, data)
    replaced = sitting.paper.sha256 if sitting.paper is not None else None
    paper = sealed_paper(data_dir, sitting.id, content, source_name=filename, by=by, now=now)
    session.add(paper)
    session.flush()
    sitting.paper = paper  # the previous row stays (its ciphertext is useless without its key's sitting)
    session.flush()
    audit.append(session, kind="paper_imported", station_id=None, attempt_id=None, source="staff", payload={
        "sitting": sitting.id, "paper": paper.id, "file": paper.source_name,
        "file_sha256": hashlib.sha256(data).hexdigest(), "sealed_sha256": paper.sha256,
        "questions": len(content.questions), "images": sum(len(q.images) for q in content.questions),
        "replaced_sha256": replaced, "by": by,
    })
    return paper


# --- stations -----------------------------------------------------------------------------------

def sealed_blob(sitting: Sitting) -> dict[str, Any]:
    """What a station downloads ahead of the start: ciphertext, nonce, checksum (never the key)."""
    paper = _sealed(sitting)
    return {"sitting": sitting.id, "ciphertext": sealed.b64(paper.ciphertext), "nonce": sealed.b64(paper.nonce),
            "sha256": paper.sha256, "starts_at": sitting.starts_at.timestamp()}


def paper_key(data_dir: Path, sitting: Sitting, now: datetime, lead: float = 0.0) -> bytes:
    """The sitting's paper key, from ``lead`` seconds before its start time on."""
    if now < sitting.starts_at - timedelta(seconds=lead):
        raise PaperSealed("the paper key is released at the start time", code="paper_sealed")
    paper = _sealed(sitting)
    return unwrap(data_dir, paper.wrapped_key, sitting.id)


def fetch_key(session: Session, data_dir: Path, station_id: str, sitting: Sitting, now: datetime,
              lead: float = 0.0) -> bytes:
    """A station's fallback fetch of the key (from ``lead`` seconds before the start on), audited
    without the key."""
    key = paper_key(data_dir, sitting, now, lead)
    audit.append(session, kind="paper_key_fetched", station_id=station_id, attempt_id=None, source="api",
                 payload={"sitting": sitting.id, "paper": sitting.paper_id})
    return key


def refuse_import(session: Session, sitting_id: str, filename: str, problems: list[str], *, by: str) -> None:
    """Audit an import the page refused, with its first problems (the file is not kept)."""
    audit.append(session, kind="paper_import_refused", station_id=None, attempt_id=None, source="staff",
                 payload={"sitting": sitting_id, "file": filename, "problems": problems[:20], "by": by})


def open_sitting_paper(data_dir: Path, sitting: Sitting, now: datetime) -> dict[str, Any]:
    """The decrypted paper, from the start time on."""
    key = paper_key(data_dir, sitting, now)
    paper = sitting.paper
    try:
        return sealed.open_paper(key, sealed.SealedBlob(paper.ciphertext, paper.nonce), sitting.id)
    except sealed.SealError as exc:
        raise PaperUnavailable(str(exc)) from exc


def _sealed(sitting: Sitting) -> Paper:
    paper = sitting.paper
    if paper is None or not paper.sealed or paper.sealed_for != sitting.id:
        raise PaperUnavailable("this sitting has no sealed paper yet: a centre admin imports it on the papers page",
                               code="paper_missing")
    return paper


# --- release at the start -----------------------------------------------------------------------

@dataclass(frozen=True)
class Release:
    sitting: str
    paper: int
    key: bytes
    stations: tuple[str, ...]


def due_releases(session: Session, data_dir: Path, centre_id: str, now: datetime,
                 lead: float = 0.0) -> list[Release]:
    """Sittings of the centre that start within ``lead`` seconds (or have started), whose sealed
    key was not pushed yet, with the stations that have an open attempt in them."""
    rows = session.execute(
        select(Sitting, Paper).join(Paper, Sitting.paper_id == Paper.id)
        .where(Sitting.centre_id == centre_id, Sitting.starts_at <= now + timedelta(seconds=lead),
               Paper.released_at.is_(None),
               Paper.ciphertext.is_not(None), Paper.sealed_for == Sitting.id)
    ).all()
    return [Release(sitting.id, paper.id, unwrap(data_dir, paper.wrapped_key, sitting.id),
                    _release_stations(session, sitting.id)) for sitting, paper in rows]


def _release_stations(session: Session, sitting_id: str) -> tuple[str, ...]:
    """The stations with an open attempt in the sitting (the key's push goes to them)."""
    stations = session.scalars(
        select(Attempt.station_id).join(Station, Station.id == Attempt.station_id)
        .where(Attempt.sitting_id == sitting_id, Attempt.finished_at.is_(None), Station.revoked_at.is_(None))
        .distinct()
    ).all()
    return tuple(sorted(stations))


# The audit entries that say whether a paper's key push got through (``payload["pushed"]``).
PUSH_AUDIT_KINDS = ("paper_key_released", "paper_key_pushed")


def unpushed_releases(session: Session, data_dir: Path, centre_id: str, now: datetime,
                      lead: float = 0.0) -> list[Release]:
    """Released sittings whose key push has not got through yet (the broker was down or refused
    it) and whose entry has not closed: the daemon tries the push again. The audit log is the
    record of each push's outcome, so a restarted daemon goes on where it stopped."""
    rows = session.execute(
        select(Sitting, Paper).join(Paper, Sitting.paper_id == Paper.id)
        .where(Sitting.centre_id == centre_id, Sitting.starts_at <= now + timedelta(seconds=lead),
               Sitting.entry_closes_at > now,
               Paper.released_at.is_not(None), Paper.ciphertext.is_not(None), Paper.sealed_for == Sitting.id)
    ).all()
    if not rows:
        return []
    pushed: dict[int, bool] = {}
    for payload in session.scalars(select(Event.payload).where(Event.kind.in_(PUSH_AUDIT_KINDS)).order_by(Event.id)):
        if isinstance(payload, dict) and isinstance(payload.get("paper"), int):
            pushed[payload["paper"]] = bool(payload.get("pushed"))
    return [Release(sitting.id, paper.id, unwrap(data_dir, paper.wrapped_key, sitting.id),
                    _release_stations(session, sitting.id))
            for sitting, paper in rows if pushed.get(paper.id) is False]


def next_start(session: Session, centre_id: str, now: datetime, lead: float = 0.0) -> datetime | None:
    """The earliest key release (``lead`` seconds before its start) after ``now`` of a sitting whose
    sealed key is still to be pushed."""
    ahead = timedelta(seconds=lead)
    start = session.scalar(
        select(Sitting.starts_at).join(Paper, Sitting.paper_id == Paper.id)
        .where(Sitting.centre_id == centre_id, Sitting.starts_at > now + ahead, Paper.released_at.is_(None),
               Paper.ciphertext.is_not(None))
        .order_by(Sitting.starts_at).limit(1)
    )
    return None if start is None else start - ahead


def mark_released(session: Session, release: Release, *, pushed: bool, now: datetime) -> None:
    paper = session.get(Paper, release.paper)
    paper.released_at = now
    audit.append(session, kind="paper_key_released", station_id=None, attempt_id=None, source="daemon",
                 payload={"sitting": release.sitting, "paper": release.paper, "stations": list(release.stations),
                          "pushed": pushed})


def mark_pushed(session: Session, release: Release, *, tried_at: datetime) -> None:
    """A key push that failed at the release got through on a later try (audited once)."""
    audit.append(session, kind="paper_key_pushed", station_id=None, attempt_id=None, source="daemon",
                 payload={"sitting": release.sitting, "paper": release.paper, "stations": list(release.stations),
                          "pushed": True, "retried": True, "tried_at": tried_at.isoformat()})


def key_command(sitting_id: str, key: bytes) -> PaperKey:
    """The ``paper_key`` command's payload (also the key route's body)."""
    return PaperKey(sitting=sitting_id, key=sealed.b64(key))


def status(sitting: Sitting) -> dict[str, Any]:
    """What the staff page shows about a sitting's paper (no plaintext, no key)."""
    paper = sitting.paper
    is_sealed = paper is not None and paper.sealed and paper.sealed_for == sitting.id
    seconds = (paper.question_seconds or []) if paper is not None else []
    return {
        "sealed": is_sealed,
        "plaintext_rows": paper is not None and not paper.sealed and bool(paper.questions),
        "questions": len(seconds),
        "minutes": round(sum(seconds) / 60, 1),
        "source_name": paper.source_name if is_sealed else "",
        "sha256": paper.sha256 if is_sealed else "",
        "size": len(paper.ciphertext) if is_sealed else 0,
        "imported_by": paper.imported_by if is_sealed else "",
        "imported_at": paper.imported_at if is_sealed else None,
        "released_at": paper.released_at if is_sealed else None,
    }
