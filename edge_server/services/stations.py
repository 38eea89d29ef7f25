"""Station identity: API tokens (stored hashed), revocation, status from the MQTT bridge."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.config import EdgeSettings
from edge_server.errors import Conflict, EdgeError, Forbidden, Unauthorized
from edge_server.models import Event, Station, utcnow
from edge_server.services import audit, broker, snapshots
from edge_server.work_queue import enqueue_cut_off
from examkiosk_wire.chain import valid_public_key


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
    """Refuse the station's API token from now on (the token only; see ``revoke_station``)."""
    station.revoked_at = utcnow()


def revoke_station(session: Session, settings: EdgeSettings, station: Station, *, by: str) -> broker.CutOff | None:
    """A centre admin's revocation, audited: the token is refused (committed first, so it holds whatever
    follows) and the station's last camera snapshot deleted. Its MQTT login goes too (:func:`cut_off`):
    in the worker, so the request does not wait for the broker; here and now (its ``CutOff`` returned)
    when the queue is unavailable. None: queued."""
    revoke(session, station)
    audit.append(session, kind="station_revoked", station_id=station.id, attempt_id=None, source="staff",
                 payload={"by": by})
    session.commit()
    snapshots.discard(settings.snapshots_dir, station.id)
    if enqueue_cut_off(settings, station.id, by):
        return None
    return cut_off(session, settings, station.id, by=by)


def cut_off(session: Session, settings: EdgeSettings, station_id: str, *, by: str) -> broker.CutOff:
    """The revoked station's MQTT side (``revoked`` on its cmd topic, then its broker user deleted, which
    disconnects it), audited with what it did (``station_mqtt_cut_off``). Never raises for the broker."""
    cut = broker.cut_off_station(settings, station_id)
    audit.append(session, kind="station_mqtt_cut_off", station_id=station_id, attempt_id=None, source="staff",
                 payload={"by": by, **asdict(cut)})
    session.commit()
    return cut


def cut_off_states(session: Session, station_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The latest MQTT cut-off of each station that has one (its audit payload)."""
    if not station_ids:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for event in session.scalars(select(Event).where(Event.kind == "station_mqtt_cut_off",
                                                     Event.station_id.in_(station_ids)).order_by(Event.id)):
        found[event.station_id] = event.payload
    return found


def record_status(session: Session, station_id: str, status: dict[str, Any], seen_at: datetime) -> bool:
    """Store the latest status a station published; False if the station is unknown."""
    return bool(record_statuses(session, {station_id: (status, seen_at)}))


def record_statuses(session: Session, statuses: dict[str, tuple[dict[str, Any], datetime]]) -> list[Station]:
    """``record_status`` for many stations in one query: ``{station id: (status, seen at)}``; the
    stations found (an id the database does not hold is left out)."""
    if not statuses:
        return []
    found = session.scalars(select(Station).where(Station.id.in_(list(statuses)))).all()
    for station in found:
        status, seen_at = statuses[station.id]
        station.last_status = status
        station.online = bool(status.get("online", True))
        station.last_seen_at = seen_at
    return list(found)


def register_key(session: Session, station: Station, public_key_b64: str) -> None:
    """A station's chain-signing key is set once; another key is refused (re-enrol to change it)."""
    if not isinstance(public_key_b64, str) or not valid_public_key(public_key_b64):
        raise EdgeError("public_key must be a base64 Ed25519 public key", code="bad_public_key")
    if station.public_key is None:
        station.public_key = public_key_b64
    elif station.public_key != public_key_b64:
        raise Conflict("this station already registered another signing key", code="key_mismatch")


MAX_NAME = 200
MAX_SEAT = 32


def update_details(session: Session, station: Station, *, name: str, seat: str, by: str) -> dict[str, Any]:
    """Rename and/or re-seat a station, audited; returns ``{field: [before, after]}`` of what changed.

    The name is what staff see (the id never changes); a seat is held by one station of a centre.
    """
    name, seat = (name or "").strip(), (seat or "").strip()
    if not name:
        raise EdgeError("考位名称不能为空 · The station needs a name", code="bad_name")
    if len(name) > MAX_NAME:
        raise EdgeError(f"名称最多 {MAX_NAME} 字 · At most {MAX_NAME} characters in a name", code="bad_name")
    if len(seat) > MAX_SEAT:
        raise EdgeError(f"座位最多 {MAX_SEAT} 字 · At most {MAX_SEAT} characters in a seat", code="bad_seat")
    if seat:
        taken = session.scalar(select(Station.id).where(Station.centre_id == station.centre_id, Station.seat == seat,
                                                        Station.id != station.id))
        if taken is not None:
            raise Conflict(f"座位 {seat} 已分配给考位 {taken} · Seat {seat} is already station {taken}'s",
                           code="seat_taken")
    changes = {k: [old, new] for k, old, new in (("name", station.name, name), ("seat", station.seat, seat))
               if old != new}
    if changes:
        station.name, station.seat = name, seat
        audit.append(session, kind="station_details_changed", station_id=station.id, attempt_id=None,
                     source="staff", payload={"by": by, "changes": changes})
    return changes
