"""Station API for sealed papers: the ciphertext any time, the key from the start.

- ``GET /sittings/<id>/paper/sealed``: ciphertext, nonce (base64) and the ciphertext's SHA-256;
  a station downloads it ahead of the start.
- ``GET /sittings/<id>/paper/key``: 403 ``paper_sealed`` until ``[papers] key_lead_seconds`` before
  ``starts_at``, then the key (base64). The edge daemon pushes the same key over MQTT at that
  moment; this is the fallback.

Only stations of the sitting's centre are served; every key handed out is audited (not the key).
"""
from __future__ import annotations

from flask import g

from edge_server.api.blueprint import bp
from edge_server.api.helpers import now
from edge_server.auth import settings, station
from edge_server.extensions import db
from edge_server.services import papers
from examkiosk_wire import api


def _sitting(sitting_id: str):
    return papers.sitting_of_centre(db.session, g.station.centre_id, sitting_id)


@bp.get("/sittings/<sitting_id>/paper/sealed")
@station
def sealed_paper(sitting_id: str):
    return api.SealedPaperReply(**papers.sealed_blob(_sitting(sitting_id))).to_json()


@bp.get("/sittings/<sitting_id>/paper/key")
@station
def paper_key(sitting_id: str):
    sitting = _sitting(sitting_id)
    key = papers.fetch_key(db.session, settings().data_dir, g.station.id, sitting, now(),
                           settings().papers.key_lead_seconds)
    db.session.commit()
    return papers.key_command(sitting.id, key).to_payload()
