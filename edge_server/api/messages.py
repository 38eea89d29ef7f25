"""Station API for help chat and broadcasts (services/messages.py has the rules).

- ``POST /api/v1/help`` ``{"attempt_id"?: str|null, "reason": "device"|"network"|"login"|"other",
  "text"?: str (≤ 500)}`` → 201 ``{"message": {...}, "thread": {"id", "status"}}``.
- ``GET /api/v1/messages?after=<id>`` → ``{"messages": [...], "last_id": int, "more": bool}``: the
  station's help threads (its own requests and the replies) and the broadcasts of its sittings,
  with ids above ``after``, oldest first, at most 100 (``more``: ask again from ``last_id``).
- ``POST /api/v1/messages/<id>/ack`` ``{"attempt_id"?: str|null}`` → 200 ``{"message", "acknowledged_at", "new"}``:
  the candidate acknowledged a broadcast (audited once).

A message is ``{"id", "kind": "help"|"reply"|"broadcast", "thread", "attempt", "sitting", "reason",
"text", "from": "candidate"|"staff", "at": epoch seconds, "acknowledged": bool}``; the same object
is pushed over MQTT as the payload of a ``message`` command.
"""
from __future__ import annotations

from flask import g, request

from edge_server.api.blueprint import bp
from edge_server.auth import station
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.models import HelpThread
from edge_server.services import messages as message_service
from examkiosk_wire import api


@bp.post("/help")
@station(body=api.HelpRequest)
def ask_for_help(body: api.HelpRequest):
    message = message_service.ask_for_help(db.session, g.station, attempt_id=body.attempt_id,
                                           reason=body.reason, text=body.text)
    thread = db.session.get(HelpThread, message.thread_id)
    db.session.commit()
    return api.MessageReply(message=message_service.station_message(message),
                            thread=api.ThreadInfo(id=thread.id, status=str(thread.status))).to_json(), 201


@bp.get("/messages")
@station
def station_messages():
    raw = request.args.get("after", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise EdgeError("after must be a message id (a non-negative integer)", code="bad_field")
    found, more = message_service.messages_for_station(db.session, g.station, int(raw))
    acked = message_service.acked_by(db.session, g.station.id, [m.id for m in found])
    return api.MessagePage(messages=[message_service.station_message(m, acknowledged=m.id in acked) for m in found],
                           last_id=found[-1].id if found else int(raw), more=more).to_json()


@bp.post("/messages/<int:message_id>/ack")
@station(body=api.Acknowledge)
def acknowledge(message_id: int, body: api.Acknowledge):
    ack, new = message_service.acknowledge(db.session, g.station, message_id, attempt_id=body.attempt_id)
    db.session.commit()
    return api.AckReply(message=message_id, acknowledged_at=ack.at.timestamp(), new=new).to_json()
