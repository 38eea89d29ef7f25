"""Station details on the Stations page: rename and seat a station (centre admins, audited).

Bad input re-renders the page with the message beside the row and the typed values kept.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import abort, flash, redirect, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField

from edge_server import auth
from edge_server.auth import current_centre, staff
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.models import StaffRole, Station
from edge_server.services import live
from edge_server.services import stations as station_service
from edge_server.staff.blueprint import bp
from edge_server.staff.provisioning import render_stations_page


class StationDetailsForm(FlaskForm):
    name = StringField("名称 Name")
    seat = StringField("座位 Seat")


@bp.post("/stations/<station_id>/details")
@staff(StaffRole.CENTRE_ADMIN)
def station_details(station_id: str):
    station = db.session.get(Station, station_id)
    if station is None or station.centre_id != current_centre():
        abort(404)
    form = StationDetailsForm()
    if not form.validate_on_submit():
        abort(400)  # the CSRF token is missing or stale
    try:
        changes = station_service.update_details(db.session, station, name=form.name.data, seat=form.seat.data,
                                                 by=current_user.username)
    except EdgeError as exc:
        db.session.rollback()
        return render_stations_page(details_error=(station_id, exc.message, form.name.data or "", form.seat.data or ""),
                       status=exc.status)
    db.session.commit()
    if changes:
        live.publish_tile(auth.settings(), station, datetime.now(timezone.utc))
    flash(f"考位 {station.id} 已保存 · Station saved" if changes else "没有变化 · Nothing changed", "info")
    return redirect(url_for("staff.stations_page"))
