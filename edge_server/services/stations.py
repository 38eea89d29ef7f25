"""Station identity: API tokens (stored hashed), revocation, status from the MQTT bridge."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.errors import Conflict, EdgeError, Forbidden, Unauthorized
from edge_server.models import Station, utcnow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_station(session: Session, station_id: str, centre_id: str, *, name: str = "", seat: str = "",
                   token: str | None = None) -> tuple[Station, str]:
    """Create a station and return it with its plain API token (shown once)."""
    token = token or secrets.token_urlsafe(32)
    station = Station(id=station_id, centre_id=centre_id, name=name or station_id, seat=seat,
                      token_hash=hash_token(token))
    session.add(station)
    session.flush()
    return station, token


def authenticate(session: Session, authorization: str | None) -> Station:
    """The station behind an ``Authorization: Bearer <token>`` header."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("missing bearer token", code="token_missing")
    token = authorization[len("Bearer "):].strip()
    station = session.scalar(select(Station).where(Station.token_hash == hash_token(token)))
    if station is None:
        raise Unauthorized("unknown station token", code="token_invalid")
    if station.revoked_at is not None:
        raise Forbidden("this station has been revoked", code="station_revoked")
    return station


def revoke(session: Session, station: Station) -> None:
    station.revoked_at = utcnow()


def record_status(session: Session, station_id: str, status: dict[str, Any], seen_at: datetime) -> bool:
    """Store the latest status a station published; False if the station is unknown."""
    station = session.get(Station, station_id)
    if station is None:
        return False
    station.last_status = status
    station.online = bool(status.get("online", True))
    station.last_seen_at = seen_at
    return True


def register_key(session: Session, station: Station, public_key_b64: str) -> None:
    """A station's chain-signing key is set once; another key is refused (re-enrol to change it)."""
    from station.chain import valid_public_key

    if not isinstance(public_key_b64, str) or not valid_public_key(public_key_b64):
        raise EdgeError("public_key must be a base64 Ed25519 public key", code="bad_public_key")
    if station.public_key is None:
        station.public_key = public_key_b64
    elif station.public_key != public_key_b64:
        raise Conflict("this station already registered another signing key", code="key_mismatch")
