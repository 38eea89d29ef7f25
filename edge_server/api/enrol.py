"""``POST /api/v1/enrol``: a new station trades a one-time enrolment code for its identity.

No bearer token (the station has none yet); the code is the credential, and refused tries are
rate-limited per client address (services/enrolment_codes.py). Body::

    {"code": "FFFF-XXXX-XXXX", "hostname": "...", "version": "...",
     "public_key": "<base64 Ed25519>"?, "station_id": "st-07"?}

201 answer::

    {"station_id", "token", "centre", "fingerprint", "server_time",
     "mqtt": {"host", "port", "tls", "username", "password"}}

``mqtt.host`` is empty when the edge reaches its broker on loopback (the station uses the edge's
address); with ``tls`` the port is the broker's TLS listener, pinned to ``fingerprint``.

403 ``code_invalid`` / ``code_expired`` / ``code_used`` / ``code_wrong_edge``; 400 for a bad
body (``bad_json``, ``missing_field``, ``bad_field``, ``bad_code_format``, ``bad_public_key``);
409 ``station_id_taken``; 429 ``too_many_tries`` (with Retry-After); 503 ``broker_unavailable``
when the station's MQTT user cannot be made (the code stays unused).
"""
from __future__ import annotations

import logging

from flask import jsonify, request

from edge_server.api.blueprint import bp
from edge_server.api.helpers import now, server_time
from edge_server.auth import public, settings
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.identity import edge_fingerprint, station_mqtt
from edge_server.services import broker
from edge_server.services import enrolment_codes as codes
from examkiosk_wire import api

logger = logging.getLogger(__name__)



def _string(value: str, key: str) -> str:
    """A required field, trimmed (its length is bounded by the body model)."""
    if not value.strip():
        raise EdgeError(f"{key} must not be blank", code="bad_field")
    return value.strip()


@bp.post("/enrol")
@public(body=api.Enrol)
def enrol(body: api.Enrol):
    code, hostname, version = (_string(getattr(body, k), k) for k in ("code", "hostname", "version"))
    public_key, station_id = body.public_key, body.station_id
    if station_id is not None:
        codes.check_requested_id(station_id)
    edge = settings()
    fingerprint = edge_fingerprint(edge)
    address = request.remote_addr or "unknown"
    try:
        result = codes.enrol(db.session, code=code, address=address, hostname=hostname, version=version,
                             fingerprint=fingerprint, key=edge.secret_key.encode(), now=now(), settings=edge,
                             reserved_users={edge.mqtt.username}, public_key=public_key, station_id=station_id)
    except codes.COUNTED:
        db.session.commit()
        raise
    except codes.TooManyTries as exc:
        db.session.rollback()
        logger.warning("enrolment from %s refused: %s", address, exc.message)
        response = jsonify(error=exc.message, code=exc.code)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response, exc.status
    except BaseException:
        db.session.rollback()
        raise
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        broker.remove_user(edge, result.mqtt_username)
        raise
    logger.info("station %s enrolled from %s (%s, %s)", result.station.id, address, hostname, version)
    return api.EnrolReply(
        station_id=result.station.id, token=result.token, centre=result.station.centre_id, fingerprint=fingerprint,
        server_time=server_time(),
        mqtt=api.MqttAccess(**station_mqtt(edge), username=result.mqtt_username, password=result.mqtt_password),
    ).to_json(), 201
