"""Regional view under /region: which attempts reached central storage (deepened later)."""
from flask import Blueprint, jsonify
from flask_login import login_required
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Attempt

bp = Blueprint("region", __name__, url_prefix="/region")


@bp.get("/api/attempts")
@login_required
def attempts():
    rows = db.session.scalars(select(Attempt).order_by(Attempt.created_at)).all()
    return jsonify(attempts=[{"id": a.id, "sitting": a.sitting_id, "lot": a.lot, "sync": str(a.sync_status),
                              "synced_at": a.synced_at.isoformat() if a.synced_at else None} for a in rows])
