"""Regional view under /region: across centres, which attempts reached the edge complete and
central storage; a CSV export. Regional admins only, and read-only: no station or centre actions."""
from datetime import datetime, timedelta, timezone

from flask import Blueprint, Response, jsonify, render_template, request
from flask_login import current_user

from edge_server import auth
from edge_server.auth import staff
from edge_server.extensions import db
from edge_server.models import StaffRole
from edge_server.region import summary as ov
from edge_server.staff.forms import LogoutForm

bp = Blueprint("region", __name__, url_prefix="/region", template_folder="../templates")


def _centre_arg() -> str | None:
    return (request.args.get("centre") or "").strip() or None


@bp.get("/")
@staff(StaffRole.REGIONAL_ADMIN)
def overview():
    centre = _centre_arg()
    names = ov.centre_names(db.session)
    stale = timedelta(seconds=auth.settings().dashboard.stale_seconds)
    all_rows = ov.attempt_rows(db.session)
    totals = ov.centre_totals(all_rows, names, ov.station_counts(db.session, datetime.now(timezone.utc), stale))
    rows = [r for r in all_rows if centre is None or r["centre"] == centre]
    unknown = centre is not None and centre not in names and not rows
    body = render_template("region/overview.html", totals=totals, rows=rows, centre=centre, names=names,
                           unknown=unknown, logout_form=LogoutForm())
    return body, 404 if unknown else 200, {"Cache-Control": "no-store"}


@bp.get("/attempts.csv")
@staff(StaffRole.REGIONAL_ADMIN)
def attempts_csv():
    centre = _centre_arg()
    text = ov.export(db.session, centre, by=current_user.username)
    db.session.commit()
    name = f"attempts-{centre or 'all'}-{datetime.now(timezone.utc):%Y%m%d-%H%M}.csv"
    return Response("\ufeff" + text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@bp.get("/api/attempts")
@staff(StaffRole.REGIONAL_ADMIN)
def attempts():
    return jsonify(attempts=ov.attempt_rows(db.session, _centre_arg()))
