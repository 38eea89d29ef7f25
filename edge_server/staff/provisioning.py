"""Stations / Provisioning page: the centre's stations and one-time enrolment codes (centre admins only)."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone

from flask import abort, flash, render_template
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SubmitField

from edge_server import auth
from edge_server.auth import current_centre, staff
from edge_server.extensions import db
from edge_server.models import StaffRole, StaffUser, Station
from edge_server.services import audit, broker, snapshots
from edge_server.services import enrolment_codes as codes
from edge_server.staff import bp
from edge_server.staff.forms import LogoutForm


class EnrolmentCodeForm(FlaskForm):
    submit = SubmitField("生成登记码 Make an enrolment code")


def _qr_data_uri(text: str) -> str:
    import segno

    # make_qr, not make: a short text would become a Micro QR, which phones and OpenCV cannot read.
    return segno.make_qr(text, error="m").png_data_uri(scale=6, border=4)


def _render(*, issued: tuple | None = None, details_error: tuple | None = None, status: int = 200):
    now = datetime.now(timezone.utc)
    centre = current_centre()
    stations = db.session.scalars(select(Station).where(Station.centre_id == centre).order_by(Station.id)).all()
    enrolled = codes.enrolled_with(db.session, [s.id for s in stations])
    recent = codes.list_codes(db.session, centre)
    creators = {u.id: u.username for u in db.session.scalars(
        select(StaffUser).where(StaffUser.id.in_({c.created_by for c in recent if c.created_by})))}
    from edge_server.staff.routes import station_tile

    body = render_template(
        "staff/stations.html", form=EnrolmentCodeForm(), logout_form=LogoutForm(), issued=issued,
        stations=[(s, station_tile(s, now), enrolled.get(s.id)) for s in stations],
        codes=[(c, codes.code_state(c, now), creators.get(c.created_by, "")) for c in recent],
        ttl_minutes=int(codes.CODE_TTL.total_seconds() // 60), details_error=details_error,
    )
    return body, status, {"Cache-Control": "no-store"}


@bp.get("/stations")
@staff(StaffRole.CENTRE_ADMIN)
def stations_page():
    return _render()


@bp.post("/stations/enrolment-codes")
@staff(StaffRole.CENTRE_ADMIN)
def create_enrolment_code():
    """Make a code; the page shows it this once, as text and as a QR (only its HMAC is stored)."""
    if not EnrolmentCodeForm().validate_on_submit():
        abort(400)
    settings = auth.settings()
    from edge_server.daemon.announce import edge_fingerprint

    centre = current_centre()
    codes.ensure_centre(db.session, centre, settings.centre_name if centre == settings.centre else centre)
    code, plain = codes.create_code(db.session, centre_id=centre, staff=current_user,
                                    fingerprint=edge_fingerprint(settings), key=settings.secret_key.encode(),
                                    now=datetime.now(timezone.utc))
    db.session.commit()
    return _render(issued=(code, plain, _qr_data_uri(codes.qr_payload(plain))), status=201)


def after_revoke(station: Station, by: str) -> None:
    """Called by the revoke action once the token is revoked: the station's MQTT login goes too
    (``revoked`` on its cmd topic, then its broker user deleted, which disconnects it), audited; its
    camera snapshot is deleted."""
    cut = broker.cut_off_station(auth.settings(), station.id)
    snapshots.discard(auth.settings().snapshots_dir, station.id)  # its last picture of a candidate goes too
    audit.append(db.session, kind="station_mqtt_cut_off", station_id=station.id, attempt_id=None, source="staff",
                 payload={"by": by, **asdict(cut)})
    db.session.commit()
    if cut.problem:
        flash(f"考位 {station.id} 的 MQTT 登录未能完全撤销 · MQTT login not fully removed: {cut.problem}", "error")
