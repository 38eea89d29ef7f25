"""Stations / Provisioning page: the centre's stations, one-time enrolment codes and revocation
(centre admins only)."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SubmitField

from edge_server import auth
from edge_server.auth import current_centre, staff
from edge_server.extensions import db
from edge_server.identity import edge_fingerprint
from edge_server.models import StaffRole, StaffUser, Station
from edge_server.services import enrolment_codes as codes
from edge_server.services import live
from edge_server.services import stations as station_service
from edge_server.staff.blueprint import bp
from edge_server.staff.forms import LogoutForm


class EnrolmentCodeForm(FlaskForm):
    submit = SubmitField("生成登记码 Make an enrolment code")


def _qr_data_uri(text: str) -> str:
    import segno

    # make_qr, not make: a short text would become a Micro QR, which phones and OpenCV cannot read.
    return segno.make_qr(text, error="m").png_data_uri(scale=6, border=4)


def render_stations_page(*, issued: tuple | None = None, details_error: tuple | None = None, status: int = 200):
    now = datetime.now(timezone.utc)
    centre = current_centre()
    stations = db.session.scalars(select(Station).where(Station.centre_id == centre).order_by(Station.id)).all()
    enrolled = codes.enrolled_with(db.session, [s.id for s in stations])
    recent = codes.list_codes(db.session, centre)
    creators = {u.id: u.username for u in db.session.scalars(
        select(StaffUser).where(StaffUser.id.in_({c.created_by for c in recent if c.created_by})))}
    body = render_template(
        "staff/stations.html", form=EnrolmentCodeForm(), logout_form=LogoutForm(), issued=issued,
        stations=[(s, live.tile_of(auth.settings(), s, now), enrolled.get(s.id)) for s in stations],
        cut_offs=station_service.cut_off_states(db.session, [s.id for s in stations if s.revoked_at is not None]),
        codes=[(c, codes.code_state(c, now), creators.get(c.created_by, "")) for c in recent],
        ttl_minutes=int(codes.CODE_TTL.total_seconds() // 60), details_error=details_error,
    )
    return body, status, {"Cache-Control": "no-store"}


@bp.get("/stations")
@staff(StaffRole.CENTRE_ADMIN)
def stations_page():
    return render_stations_page()


@bp.post("/stations/enrolment-codes")
@staff(StaffRole.CENTRE_ADMIN)
def create_enrolment_code():
    """Make a code; the page shows it this once, as text and as a QR (only its HMAC is stored)."""
    if not EnrolmentCodeForm().validate_on_submit():
        abort(400)
    settings = auth.settings()
    centre = current_centre()
    codes.ensure_centre(db.session, centre, settings.centre_name if centre == settings.centre else centre)
    code, plain = codes.create_code(db.session, centre_id=centre, staff=current_user,
                                    fingerprint=edge_fingerprint(settings), key=settings.secret_key.encode(),
                                    now=datetime.now(timezone.utc))
    db.session.commit()
    return render_stations_page(issued=(code, plain, _qr_data_uri(codes.qr_payload(plain))), status=201)


@bp.post("/stations/<station_id>/revoke")
@staff(StaffRole.CENTRE_ADMIN)
def revoke_station(station_id: str):
    if not LogoutForm().validate_on_submit():  # any CSRF-only form will do
        abort(400)
    station = db.session.get(Station, station_id)
    if station is None or station.centre_id != current_centre():
        abort(404)
    cut = station_service.revoke_station(db.session, auth.settings(), station, by=current_user.username)
    if cut is not None and cut.problem:
        flash(f"考位 {station.id} 的 MQTT 登录未能完全撤销 · MQTT login not fully removed: {cut.problem}", "error")
    live.publish_tile(auth.settings(), station, datetime.now(timezone.utc))  # open dashboards show it at once
    flash(f"考位 {station.id} 已停用 · Station revoked", "info")
    return redirect(url_for("staff.dashboard"))
