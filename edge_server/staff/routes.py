"""Login, the live dashboard, and the manual face-review queue."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from edge_server.extensions import db, login_manager
from functools import wraps

from edge_server.models import Attempt, Review, ReviewStatus, StaffRole, StaffUser, Station
from edge_server.services import attempts as attempt_service
from edge_server.services import staff as staff_service
from edge_server.staff import bp
from edge_server.staff.forms import LoginForm, LogoutForm, ReviewForm

# A station whose last status is older than this is shown offline even without its last will.
STALE_AFTER = timedelta(seconds=10)


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    return db.session.get(StaffUser, int(user_id))


def roles_required(*roles: StaffRole):
    """Only staff with one of ``roles`` may use the view; everyone else gets 403."""
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return wrapper
    return decorator


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        address = request.remote_addr or "unknown"
        try:
            user = staff_service.sign_in(db.session, form.username.data, form.password.data, address,
                                         datetime.now(timezone.utc))
        except staff_service.LockedOut as exc:
            attempt_service.log_event(db.session, kind="staff_login_locked", station_id=None, source="staff",
                                      payload={"user": form.username.data, "address": address})
            db.session.commit()
            flash(exc.message, "error")
            return render_template("staff/login.html", form=form), 429
        if user is not None:
            login_user(user)
            attempt_service.log_event(db.session, kind="staff_login", station_id=None, source="staff",
                                      payload={"user": user.username, "address": address})
            db.session.commit()
            return redirect(url_for("staff.dashboard"))
        attempt_service.log_event(db.session, kind="staff_login_failed", station_id=None, source="staff",
                                  payload={"user": form.username.data, "address": address})
        db.session.commit()
        flash("用户名或密码错误 · Wrong username or password", "error")
        status = 401
    elif form.is_submitted():
        status = 400  # e.g. the CSRF token is missing or stale
    return render_template("staff/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    if LogoutForm().validate_on_submit():
        logout_user()
    return redirect(url_for("staff.login"))


@bp.get("/")
@login_required
def dashboard():
    return render_template("staff/dashboard.html", review_form=ReviewForm(), logout_form=LogoutForm(),
                           can_revoke=current_user.role == StaffRole.CENTRE_ADMIN)


def station_tile(station: Station, now: datetime) -> dict:
    status = station.last_status or {}
    fresh = station.last_seen_at is not None and now - station.last_seen_at < STALE_AFTER
    return {
        "id": station.id,
        "name": station.name,
        "seat": station.seat,
        "revoked": station.revoked_at is not None,
        "online": bool(station.online and fresh),
        "state": status.get("state"),
        "lot": status.get("lot"),
        "question": status.get("question"),
        "time_left": status.get("time_left"),
        "mic_level": status.get("mic_level"),
        "backlog": status.get("backlog"),
        "disk_free_mb": status.get("disk_free_mb"),
        "clock_offset_ms": status.get("clock_offset_ms"),
        "flags": status.get("flags") or [],
        "last_seen": station.last_seen_at.isoformat() if station.last_seen_at else None,
    }


@bp.get("/api/stations")
@login_required
def stations_json():
    now = datetime.now(timezone.utc)
    stations = db.session.scalars(select(Station).where(Station.centre_id == _centre()).order_by(Station.id)).all()
    return jsonify(stations=[station_tile(s, now) for s in stations], server_time=now.timestamp())


@bp.get("/api/reviews")
@login_required
def reviews_json():
    reviews = db.session.scalars(
        select(Review).where(Review.status == ReviewStatus.PENDING).order_by(Review.created_at)
    ).all()
    return jsonify(reviews=[{
        "id": r.id,
        "attempt": r.attempt_id,
        "ticket_no": r.attempt.candidate.ticket_no,
        "name": r.attempt.candidate.name,
        "station": r.attempt.station_id,
        "best_distance": r.best_distance,
        "created_at": r.created_at.isoformat(),
    } for r in reviews if r.attempt.sitting.centre_id == _centre()])


@bp.get("/api/attempts")
@login_required
def attempts_json():
    attempts = db.session.scalars(select(Attempt).order_by(Attempt.created_at.desc()).limit(200)).all()
    rows = []
    for a in attempts:
        if a.sitting.centre_id != _centre():
            continue
        status = attempt_service.upload_status(db.session, a)
        rows.append({"id": a.id, "lot": a.lot, "ticket_no": a.candidate.ticket_no, "station": a.station_id,
                     "verified": status["verified"], "expected": status["expected"],
                     "complete": status["complete"], "sync": status["sync"]})
    return jsonify(attempts=rows)


@bp.get("/reviews/<int:review_id>/<any(frame, photo):which>.jpg")
@login_required
def review_image(review_id: int, which: str):
    """The frame the station captured, or the enrolled photo, for the side-by-side review."""
    from flask import send_file

    from edge_server import settings_of
    from edge_server.api.routes import review_frame_path
    from flask import current_app

    review = db.session.get(Review, review_id)
    if review is None or review.attempt.sitting.centre_id != _centre():
        abort(404)
    path = (review_frame_path(settings_of(current_app).data_dir, review.id) if which == "frame"
            else Path(review.attempt.candidate.photo_path))
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="image/jpeg", max_age=0)


@bp.get("/api/candidates")
@login_required
def candidates_json():
    from edge_server.models import Candidate

    rows = db.session.scalars(select(Candidate).where(Candidate.centre_id == _centre())
                              .order_by(Candidate.sitting_id, Candidate.ticket_no)).all()
    return jsonify(candidates=[{"ticket_no": c.ticket_no, "name": c.name, "seat": c.seat, "sitting": c.sitting_id,
                                "enrolled": c.descriptor is not None} for c in rows])


@bp.get("/candidates/<ticket_no>/ticket.<any(png, pdf):fmt>")
@login_required
def admission_ticket(ticket_no: str, fmt: str):
    """A printable admission ticket whose QR code logs the candidate in at a station."""
    from flask import Response

    from edge_server.models import Candidate, Sitting
    from edge_server.services.tickets import ticket_pdf, ticket_png

    cand = db.session.scalar(select(Candidate).where(Candidate.centre_id == _centre(),
                                                     Candidate.ticket_no == ticket_no))
    if cand is None:
        abort(404)
    sitting = db.session.get(Sitting, cand.sitting_id)
    render = ticket_pdf if fmt == "pdf" else ticket_png
    data = render(cand.ticket_no, cand.name, sitting.name if sitting else "", cand.seat)
    attempt_service.log_event(db.session, kind="ticket_printed", station_id=None, source="staff",
                              payload={"ticket_no": ticket_no, "by": current_user.username})
    db.session.commit()
    return Response(data, mimetype="application/pdf" if fmt == "pdf" else "image/png",
                    headers={"Content-Disposition": f'inline; filename="ticket-{ticket_no}.{fmt}"'})


@bp.post("/stations/<station_id>/revoke")
@roles_required(StaffRole.CENTRE_ADMIN)
def revoke_station(station_id: str):
    if not LogoutForm().validate_on_submit():  # any CSRF-only form will do
        abort(400)
    station = db.session.get(Station, station_id)
    if station is None or station.centre_id != _centre():
        abort(404)
    from edge_server.services.stations import revoke

    revoke(db.session, station)
    attempt_service.log_event(db.session, kind="station_revoked", station_id=station.id, source="staff",
                              payload={"by": current_user.username})
    db.session.commit()
    flash(f"考位 {station.id} 已停用 · Station revoked", "info")
    return redirect(url_for("staff.dashboard"))


@bp.post("/reviews/<int:review_id>")
@login_required
def decide_review(review_id: int):
    form = ReviewForm()
    if not form.validate_on_submit():
        abort(400)
    review = db.session.get(Review, review_id)
    if review is None or review.attempt.sitting.centre_id != _centre():
        abort(404)
    approve = bool(form.approve.data)
    attempt_service.decide_review(db.session, review, approve=approve, staff_id=current_user.id,
                                  reason=form.reason.data or "")
    attempt_service.log_event(db.session, kind="review_decided", station_id=review.attempt.station_id,
                              attempt_id=review.attempt_id, source="staff",
                              payload={"review": review.id, "approved": approve, "by": current_user.username,
                                       "reason": form.reason.data or ""})
    db.session.commit()
    if request.accept_mimetypes.best == "application/json":
        return jsonify(id=review.id, status=str(review.status))
    flash(f"已处理 · Review {review.id}: {review.status}", "info")
    return redirect(url_for("staff.dashboard"))


def _centre() -> str:
    from edge_server import settings_of
    from flask import current_app

    return current_user.centre_id or settings_of(current_app).centre
