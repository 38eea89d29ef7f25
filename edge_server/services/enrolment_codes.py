"""One-time station enrolment codes (issue 5, Provisioning).

A centre admin makes a code on the Stations page; a new station's ``examkiosk-provision enrol``
sends it to ``POST /api/v1/enrol`` and gets its identity back: a station id, an API token and
MQTT credentials.

A code reads ``FFFF-XXXX-XXXX`` (examkiosk_wire/enrolment_code.py): ``FFFF`` is the start of the
edge's fingerprint, the ``fp`` of its zeroconf announcement, so the station can tell this edge
from another (or a rogue) before it sends the code anywhere. A code works once, for ``CODE_TTL``,
for the centre it was made for. Only an HMAC of the code (keyed with the edge's secret key) is
stored; the plain code is shown once to the admin. Making, using and refusing a code go to the
audit log.

Every use of the enrolment API is counted per client address; after ``MAX_FAILED_TRIES`` refused
tries within ``TRY_WINDOW`` the address is answered 429 until the window has passed.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edge_server.config import EdgeSettings
from edge_server.errors import Conflict, EdgeError, Forbidden
from edge_server.models import Centre, EnrolmentCode, EnrolmentTry, StaffRole, StaffUser, Station
from edge_server.services import audit, broker
from edge_server.services.stations import create_station
from examkiosk_wire.chain import valid_public_key
from examkiosk_wire.enrolment_code import display, fingerprint_prefix, new_code, parse

CODE_TTL = timedelta(minutes=15)
MAX_FAILED_TRIES = 5
TRY_WINDOW = timedelta(minutes=15)
CREATOR_ROLES = (StaffRole.CENTRE_ADMIN,)
STATION_ID_PATTERN = re.compile(r"^st-(\d+)$")
# A station id is its broker user name and one MQTT topic level.
REQUESTED_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,31}$")


class CodeRefused(Forbidden):
    """The code enrols nothing: ``code_invalid``, ``code_expired``, ``code_used``, ``code_wrong_edge``."""


class BadCodeFormat(EdgeError):
    """The code is not of the shape ``FFFF-XXXX-XXXX`` (a refused try all the same)."""

    code = "bad_code_format"


class TooManyTries(EdgeError):
    status = 429
    code = "too_many_tries"
    retry_after = 60


# Raised after a refused try was written to the session: commit, then answer.
COUNTED = (CodeRefused, BadCodeFormat)


_MESSAGES = {
    "code_invalid": "this enrolment code is not valid; check it or ask the centre admin for a new one",
    "code_expired": "this enrolment code has expired; ask the centre admin for a new one",
    "code_used": "this enrolment code has already been used; ask the centre admin for a new one",
    "code_wrong_edge": "this enrolment code was made by another edge server (its first group does not match "
                       "this server's fingerprint)",
}


# --- the code itself ----------------------------------------------------------------------------

def code_digest(key: bytes, normalised: str) -> str:
    return hmac.new(key, f"enrol:{normalised}".encode(), hashlib.sha256).hexdigest()


def qr_payload(plain: str) -> str:
    """What the code's QR carries (a phone or a station camera reads the code itself)."""
    return plain


# --- making codes -------------------------------------------------------------------------------

def ensure_centre(session: Session, centre_id: str, name: str) -> Centre:
    centre = session.get(Centre, centre_id)
    if centre is None:
        centre = Centre(id=centre_id, name=name)
        session.add(centre)
        session.flush()
    return centre


def create_code(session: Session, *, centre_id: str, staff: StaffUser, fingerprint: str, key: bytes,
                now: datetime) -> tuple[EnrolmentCode, str]:
    """A new code; returns the row and the plain code ``FFFF-XXXX-XXXX`` (shown once, then forgotten)."""
    if staff.role not in CREATOR_ROLES:
        raise Forbidden("only a centre admin may make an enrolment code", code="role_forbidden")
    plain = new_code(fingerprint)
    code = EnrolmentCode(centre_id=centre_id, code_hash=code_digest(key, plain), created_by=staff.id,
                         created_at=now, expires_at=now + CODE_TTL)
    session.add(code)
    session.flush()
    audit.append(session, kind="enrolment_code_created", station_id=None, attempt_id=None, source="staff",
                 payload={"code": code.id, "centre": centre_id, "by": staff.username,
                          "expires_at": code.expires_at.isoformat()})
    return code, display(plain)


def code_state(code: EnrolmentCode, now: datetime) -> str:
    """``used``, ``expired`` or ``active``."""
    if code.used_at is not None:
        return "used"
    if now >= code.expires_at:
        return "expired"
    return "active"


def list_codes(session: Session, centre_id: str, limit: int = 20) -> list[EnrolmentCode]:
    return list(session.scalars(select(EnrolmentCode).where(EnrolmentCode.centre_id == centre_id)
                                .order_by(EnrolmentCode.id.desc()).limit(limit)))


def enrolled_with(session: Session, station_ids: list[str]) -> dict[str, EnrolmentCode]:
    """The code each station enrolled with (stations made otherwise have none)."""
    if not station_ids:
        return {}
    rows = session.scalars(select(EnrolmentCode).where(EnrolmentCode.station_id.in_(station_ids)))
    return {row.station_id: row for row in rows if row.station_id is not None}


# --- using a code -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Enrolment:
    station: Station
    token: str
    mqtt_username: str
    mqtt_password: str
    code: EnrolmentCode


def check_rate(session: Session, address: str, now: datetime) -> None:
    """TooManyTries when ``address`` had too many refused tries within the window."""
    failures = session.scalar(select(func.count(EnrolmentTry.id)).where(
        EnrolmentTry.address == address, EnrolmentTry.ok.is_(False), EnrolmentTry.at > now - TRY_WINDOW))
    if failures >= MAX_FAILED_TRIES:
        oldest = session.scalar(select(func.min(EnrolmentTry.at)).where(
            EnrolmentTry.address == address, EnrolmentTry.ok.is_(False), EnrolmentTry.at > now - TRY_WINDOW))
        retry = max(1, int(((oldest or now) + TRY_WINDOW - now).total_seconds()) + 1)
        error = TooManyTries(f"too many refused enrolment tries from {address}; try again in {retry} s")
        error.retry_after = retry
        raise error


def record_try(session: Session, address: str, now: datetime, *, ok: bool, reason: str = "") -> None:
    session.add(EnrolmentTry(address=address, ok=ok, reason=reason, at=now))
    session.flush()


def _refuse(session: Session, address: str, now: datetime, reason: str, code: EnrolmentCode | None = None,
            hostname: str = "") -> NoReturn:
    """Count the refused try and audit it; the caller commits before it answers."""
    record_try(session, address, now, ok=False, reason=reason)
    audit.append(session, kind="enrolment_refused", station_id=None, attempt_id=None, source="api",
                 payload={"reason": reason, "code": code.id if code else None, "address": address,
                          "hostname": hostname})
    raise CodeRefused(_MESSAGES[reason], code=reason)


def station_id_taken(session: Session, station_id: str, broker_users: set[str]) -> bool:
    return station_id in broker_users or session.get(Station, station_id) is not None


def next_station_id(session: Session, broker_users: set[str] = frozenset()) -> str:
    """``st-NN`` after the highest number in use (stations and broker users), at least two digits."""
    numbers = [int(m.group(1)) for m in (STATION_ID_PATTERN.match(s) for s in
                                          [*session.scalars(select(Station.id)), *broker_users]) if m]
    return f"st-{max(numbers, default=0) + 1:02d}"


def check_requested_id(station_id: str) -> str:
    if not isinstance(station_id, str) or not REQUESTED_ID_PATTERN.match(station_id):
        raise EdgeError("station_id must be 2-32 lower-case letters, digits or '-'", code="bad_field")
    return station_id


def enrol(session: Session, *, code: str, address: str, hostname: str, version: str, fingerprint: str,
          key: bytes, now: datetime, settings: EdgeSettings, reserved_users: set[str],
          public_key: str | None = None, station_id: str | None = None) -> Enrolment:
    """Use ``code``: a new station with a token, a broker user and its signing key.

    Refusals (``COUNTED``) are counted (and audited) in the session before they are raised: the
    caller commits, then answers. Anything else raised leaves nothing the caller should keep
    (roll back); the code is then still unused.
    """
    check_rate(session, address, now)
    normalised = parse(code)
    if normalised is None:
        record_try(session, address, now, ok=False, reason="bad_code_format")
        raise BadCodeFormat("the code must look like FFFF-XXXX-XXXX")
    if public_key is not None:
        if not isinstance(public_key, str) or not valid_public_key(public_key):
            raise EdgeError("public_key must be a base64 Ed25519 public key", code="bad_public_key")
    if station_id is not None:
        check_requested_id(station_id)
    if not normalised.startswith(fingerprint_prefix(fingerprint)):
        _refuse(session, address, now, "code_wrong_edge", hostname=hostname)
    row = session.scalar(select(EnrolmentCode).where(EnrolmentCode.code_hash == code_digest(key, normalised)))
    if row is None:
        _refuse(session, address, now, "code_invalid", hostname=hostname)
    if row.used_at is not None:
        _refuse(session, address, now, "code_used", row, hostname)
    if now >= row.expires_at:
        _refuse(session, address, now, "code_expired", row, hostname)
    broker_users = set(broker.station_users(settings)) | reserved_users
    if station_id is not None and station_id_taken(session, station_id, broker_users):
        raise Conflict(f"station id {station_id!r} is already taken", code="station_id_taken")

    marked = session.execute(
        update(EnrolmentCode).where(EnrolmentCode.id == row.id, EnrolmentCode.used_at.is_(None))
        .values(used_at=now, used_from=address[:64], hostname=hostname[:255], version=version[:64])
        .execution_options(synchronize_session=False)
    )
    if marked.rowcount != 1:  # another station used it a moment ago
        session.refresh(row)
        _refuse(session, address, now, "code_used", row, hostname)

    token = None
    for _ in range(10):
        new_id = station_id or next_station_id(session, broker_users)
        try:
            with session.begin_nested():
                station, token = create_station(session, new_id, row.centre_id)
        except IntegrityError:
            if station_id is not None:
                raise Conflict(f"station id {station_id!r} is already taken", code="station_id_taken") from None
            continue  # another enrolment took this number meanwhile
        break
    if token is None:
        raise Conflict("could not find a free station id", code="station_id_taken")
    if public_key is not None:
        station.public_key = public_key
    session.execute(update(EnrolmentCode).where(EnrolmentCode.id == row.id).values(station_id=station.id)
                    .execution_options(synchronize_session=False))
    session.refresh(row)
    record_try(session, address, now, ok=True)
    audit.append(session, kind="station_enrolled", station_id=station.id, attempt_id=None, source="api",
                 payload={"code": row.id, "centre": row.centre_id, "address": address, "hostname": hostname,
                          "version": version, "signing_key": public_key is not None})
    password = secrets.token_urlsafe(24)
    broker.add_user(settings, station.id, password)  # last: nothing to undo in the broker if the above fails
    return Enrolment(station=station, token=token, mqtt_username=station.id, mqtt_password=password, code=row)

