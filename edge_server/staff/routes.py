"""Login, the live dashboard, the manual face-review queue, fallback codes, centre settings."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from edge_server import auth
from edge_server.auth import ALL_STAFF, CENTRE_STAFF, current_centre, public, staff
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.models import Attempt, Candidate, FaceTry, Review, ReviewStatus, StaffRole, StaffUser, Station
from edge_server.services import attempt_actions as actions
from edge_server.services import attempts as attempt_service
from edge_server.services import centres as centre_service
from edge_server.services import fallback as fallback_service
from edge_server.services import frames, live, tickets
from edge_server.services import staff as staff_service
from edge_server.services.moves import awaited_handovers
from edge_server.services.moves import waive_handover as waive
from edge_server.staff.blueprint import bp
from edge_server.staff.forms import (
    CentreSettingsForm,
    FallbackCodeForm,
    LoginForm,
    LogoutForm,
    ReviewForm,
    WaiveHandoverForm,
)
from edge_server.work_queue import enqueue_push, push_outcomes
from examkiosk_wire.commands import ReviewResult, command


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        address = request.remote_addr or "unknown"
        try:
            user = staff_service.sign_in_audited(db.session, form.username.data, form.password.data, address,
                                                 datetime.now(timezone.utc), limiter=staff_service.login_limiter(auth.settings().redis_url))
        except staff_service.LockedOut as exc:
            # A refused try writes nothing; the first refusal of each lockout is audited, once.
            if exc.first:
                db.session.commit()
            flash(exc.message, "error")
            return render_template("staff/login.html", form=form), 429
        db.session.commit()
        if user is not None:
            login_user(user)
            return redirect(url_for("staff.dashboard"))
        flash("用户名或密码错误 · Wrong username or password", "error")
        status = 401
    elif form.is_submitted():
        status = 400  # e.g. the CSRF token is missing or stale
    return render_template("staff/login.html", form=form), status


@bp.post("/logout")
@staff(*ALL_STAFF)
def logout():
    if LogoutForm().validate_on_submit():
        logout_user()
    return redirect(url_for("staff.login"))


@bp.get("/")
@staff(*ALL_STAFF)
def dashboard():
    return render_template("staff/dashboard.html", review_form=ReviewForm(), logout_form=LogoutForm(),
                           can_revoke=current_user.role == StaffRole.CENTRE_ADMIN,
                           can_configure=current_user.role == StaffRole.CENTRE_ADMIN)


@bp.get("/api/stations")
@staff(*ALL_STAFF)
def stations_json():
    now = datetime.now(timezone.utc)
    stations = db.session.scalars(select(Station).where(Station.centre_id == current_centre())
                                  .order_by(Station.id)).all()
    return jsonify(stations=[live.tile_of(auth.settings(), s, now) for s in stations], server_time=now.timestamp())


@bp.get("/api/reviews")
@staff(*ALL_STAFF)
def reviews_json():
    reviews = attempt_service.pending_reviews(db.session, current_centre())
    # Attempts whose face login failed at least once and that no pending review covers yet.
    pending = {r.attempt_id for r in reviews}
    failing = attempt_service.failing_face_logins(db.session, current_centre())
    return jsonify(reviews=[{
        "id": r.id,
        "attempt": r.attempt_id,
        "ticket_no": r.attempt.candidate.ticket_no,
        "name": r.attempt.candidate.name,
        "station": r.attempt.station_id,
        "best_distance": r.best_distance,
        "created_at": r.created_at.isoformat(),
    } for r in reviews], face_failures=[{
        "attempt": a.id,
        "ticket_no": a.candidate.ticket_no,
        "name": a.candidate.name,
        "station": a.station_id,
        "tries": attempt_service.face_tries(db.session, a),
    } for a in failing if a.id not in pending])


@bp.get("/api/attempts")
@staff(*ALL_STAFF)
def attempts_json():
    rows = []
    for a in attempt_service.recent_attempts(db.session, current_centre(), limit=200):
        status = attempt_service.upload_status(db.session, a)
        rows.append({"id": a.id, "lot": a.lot, "ticket_no": a.candidate.ticket_no, "station": a.station_id,
                     "verified": status["verified"], "expected": status["expected"],
                     "complete": status["complete"], "sync": status["sync"],
                     "awaiting_handover": status["awaiting_handover"]})
    return jsonify(attempts=rows)


@bp.get("/reviews/<int:review_id>/<any(frame, photo):which>.jpg")
@staff(*ALL_STAFF)
def review_image(review_id: int, which: str):
    """The frame the station captured, or the enrolled photo, for the side-by-side review."""
    review = db.session.get(Review, review_id)
    if review is None or review.attempt.sitting.centre_id != current_centre():
        abort(404)
    path = (frames.review_frame_path(auth.settings().data_dir, review.id) if which == "frame"
            else Path(review.attempt.candidate.photo_path))
    return _jpeg(path)


def _jpeg(path: Path):
    from flask import send_file

    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype="image/jpeg", max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _attempt_of_centre(attempt_id: str) -> Attempt:
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None or attempt.sitting.centre_id != current_centre():
        abort(404)
    return attempt


@bp.get("/attempts/<attempt_id>/photo.jpg")
@staff(*ALL_STAFF)
def attempt_photo(attempt_id: str):
    """The candidate's enrolled photo (it never leaves the edge)."""
    return _jpeg(Path(_attempt_of_centre(attempt_id).candidate.photo_path))


@bp.get("/face-tries/<int:try_id>.jpg")
@staff(*ALL_STAFF)
def face_try_frame(try_id: int):
    """The frame a station matched in one face login try."""
    face_try = db.session.get(FaceTry, try_id)
    if face_try is None or face_try.frame_sha256 is None:
        abort(404)
    attempt = _attempt_of_centre(face_try.attempt_id)
    return _jpeg(frames.face_try_frame_path(auth.settings().data_dir, attempt.id, face_try.frame_sha256))


def _render_attempt(attempt: Attempt, *, issued: tuple | None = None, error: str | None = None, status: int = 200,
                    waive_form: WaiveHandoverForm | None = None):
    now = datetime.now(timezone.utc)
    review = attempt_service.latest_review(db.session, attempt)
    review_push = (push_outcomes(auth.settings(), [review_push_about(review)]).get(review_push_about(review))
                   if review is not None and review.status != ReviewStatus.PENDING else None)
    codes = [(c, fallback_service.code_state(c, now), db.session.get(StaffUser, c.issued_by) if c.issued_by else None)
             for c in fallback_service.list_codes(db.session, attempt)]
    response = render_template(
        "staff/attempt.html", attempt=attempt, candidate=attempt.candidate, review=review, review_push=review_push,
        review_frame=review is not None and frames.review_frame_path(auth.settings().data_dir, review.id).is_file(),
        tries=attempt_service.list_face_tries(db.session, attempt), codes=codes,
        can_issue=current_user.role in fallback_service.ISSUER_ROLES,
        issue_problem=fallback_service.issue_problem(attempt), issued=issued, error=error,
        review_form=ReviewForm(), code_form=FallbackCodeForm(), logout_form=LogoutForm(),
        display_code=fallback_service.display, awaited=awaited_handovers(db.session, attempt),
        can_waive=current_user.role == StaffRole.CENTRE_ADMIN, waive_form=waive_form or WaiveHandoverForm(),
    )
    return response, status, {"Cache-Control": "no-store"}


def review_push_about(review: Review) -> str:
    """The name a review decision's push is queued under (``work_queue.enqueue_push``)."""
    return f"review-{review.id}"


@bp.get("/attempts/<attempt_id>")
@staff(*ALL_STAFF)
def attempt_review(attempt_id: str):
    """Every face try of the attempt (time, distance, frame) beside the enrolled photo."""
    return _render_attempt(_attempt_of_centre(attempt_id))


@bp.post("/attempts/<attempt_id>/fallback-code")
@staff(*fallback_service.ISSUER_ROLES)
def issue_fallback_code(attempt_id: str):
    """Issue a one-time code; the page shows it this once (only its HMAC is stored)."""
    if not FallbackCodeForm().validate_on_submit():
        abort(400)
    attempt = _attempt_of_centre(attempt_id)
    try:
        code, plain = fallback_service.issue(db.session, attempt, staff=current_user,
                                             key=auth.settings().secret_key.encode(),
                                             now=datetime.now(timezone.utc))
    except EdgeError as exc:
        db.session.rollback()
        return _render_attempt(attempt, error=exc.message, status=exc.status)
    db.session.commit()
    return _render_attempt(attempt, issued=(code, plain), status=201)


@bp.post("/attempts/<attempt_id>/waive-handover")
@staff(StaffRole.CENTRE_ADMIN)
def waive_handover(attempt_id: str):
    """Stop waiting for the recording of a station the candidate was moved away from (it is lost);
    the attempt then completes with what arrived, and the audit log says why."""
    attempt = _attempt_of_centre(attempt_id)
    form = WaiveHandoverForm()
    if not form.validate_on_submit():
        problems = [e for errors in form.errors.values() for e in errors]
        return _render_attempt(attempt, error="; ".join(problems), status=400, waive_form=form)
    try:
        waive(db.session, attempt, form.station.data, reason=form.reason.data, by=current_user.username)
    except EdgeError as exc:
        db.session.rollback()
        return _render_attempt(attempt, error=exc.message, status=exc.status, waive_form=form)
    attempt_service.queue_sync_if_complete(db.session, auth.settings(), attempt)
    db.session.commit()
    flash(f"不再等待考位 {form.station.data} 的录像 · No longer waiting for station {form.station.data}", "info")
    return redirect(url_for("staff.attempt_review", attempt_id=attempt.id), code=303)


@bp.route("/centre", methods=["GET", "POST"])
@staff(StaffRole.CENTRE_ADMIN)
def centre_settings():
    """The centre's face threshold and voice prompts, which its stations follow."""
    try:
        centre = centre_service.get_centre(db.session, current_centre())
    except EdgeError:
        abort(404)
    form = CentreSettingsForm(obj=centre)
    status = 200
    if form.validate_on_submit():
        try:
            changes = centre_service.update_settings(db.session, centre, face_threshold=form.face_threshold.data,
                                                     voice_prompts=form.voice_prompts.data, by=current_user.username)
        except EdgeError as exc:
            db.session.rollback()
            form.face_threshold.errors = [*form.face_threshold.errors, exc.message]
            status = 400
        else:
            db.session.commit()
            flash("已保存 · Settings saved" if changes else "没有变化 · Nothing changed", "info")
            return redirect(url_for("staff.centre_settings"))
    elif form.is_submitted():
        status = 400
    return render_template("staff/centre.html", form=form, centre=centre, logout_form=LogoutForm(),
                           min_threshold=centre_service.MIN_FACE_THRESHOLD,
                           max_threshold=centre_service.MAX_FACE_THRESHOLD), status


@bp.get("/api/candidates")
@staff(*ALL_STAFF)
def candidates_json():
    rows = db.session.scalars(select(Candidate).where(Candidate.centre_id == current_centre())
                              .order_by(Candidate.sitting_id, Candidate.ticket_no)).all()
    return jsonify(candidates=[{"ticket_no": c.ticket_no, "name": c.name, "seat": c.seat, "sitting": c.sitting_id,
                                "enrolled": c.descriptor is not None} for c in rows])


@bp.get("/candidates/<ticket_no>/ticket.<any(png, pdf):fmt>")
@staff(*ALL_STAFF)
def admission_ticket(ticket_no: str, fmt: str):
    """A printable admission ticket whose QR code logs the candidate in at a station."""
    data = tickets.print_ticket(db.session, current_centre(), ticket_no, fmt, by=current_user.username)
    if data is None:
        abort(404)
    db.session.commit()
    return Response(data, mimetype="application/pdf" if fmt == "pdf" else "image/png",
                    headers={"Content-Disposition": f'inline; filename="ticket-{ticket_no}.{fmt}"'})


@bp.post("/reviews/<int:review_id>")
@staff(*CENTRE_STAFF)  # regional admins only look
def decide_review(review_id: int):
    form = ReviewForm()
    if not form.validate_on_submit():
        abort(400)
    review = db.session.get(Review, review_id)
    if review is None or review.attempt.sitting.centre_id != current_centre():
        abort(404)
    actions.decide_review(db.session, review, approve=bool(form.approve.data), by=current_user,
                          reason=form.reason.data or "")
    db.session.commit()
    push = None
    if review.attempt.station_id:  # the worker tells the station at once (it also asks the API, as a fallback)
        push = enqueue_push(auth.settings(), review_push_about(review), [review.attempt.station_id],
                            command(ReviewResult(status=str(review.status), reason=review.reason or ""),
                                    attempt=review.attempt_id, ts=time.time()))
    if request.accept_mimetypes.best == "application/json":
        return jsonify(id=review.id, status=str(review.status), push=push)
    flash(f"已处理 · Review {review.id}: {review.status}", "info")
    return redirect(url_for("staff.dashboard"))
