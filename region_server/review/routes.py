"""Review pages (regional admins and reviewers): attempts with flags, the player, flag decisions."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from region_server.auth import REGION_STAFF, roles_required
from region_server.extensions import db
from region_server.models import Attempt, Sitting
from region_server.review import decisions, media, timeline
from region_server.review.blueprint import bp
from region_server.review.models import DECISION_LABELS, Decision
from region_server.review.player import manifest_of, player_page
from region_server.store import store_for

LIST_LIMIT = 500


def lot_label(lot: int | None) -> str:
    return "未抽签 no lot" if lot is None else f"签号 Lot {lot:03d}"


def staff_heading(attempt: Attempt) -> str:
    sitting = attempt.sitting_row
    return f"{attempt.centre_id} · {sitting.name or sitting.sitting} · {lot_label(attempt.lot)}"


def _attempt(attempt_id: int) -> Attempt:
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None:
        abort(404)
    return attempt


@bp.get("/")
@roles_required(*REGION_STAFF)
def index():
    """Attempts with their flags and how many are decided; filter by centre and "undecided only"."""
    centre = (request.args.get("centre") or "").strip() or None
    undecided_only = request.args.get("undecided") == "1"
    query = select(Attempt).join(Sitting, Attempt.sitting_id == Sitting.id) \
        .order_by(Attempt.centre_id, Sitting.sitting, Attempt.lot, Attempt.id).limit(LIST_LIMIT)
    if centre:
        query = query.where(Attempt.centre_id == centre)
    rows = []
    for attempt in db.session.scalars(query):
        keys = {timeline.flag_key(f) for f in manifest_of(attempt).flags}
        decided = decisions.decisions_of(db.session, attempt.id)
        pending = len(keys - set(decided))
        needs = sum(1 for k, d in decided.items() if k in keys and d.decision == Decision.NEEDS_DECISION)
        if undecided_only and not pending:
            continue
        rows.append({"attempt": attempt, "flags": len(keys), "pending": pending, "needs": needs})
    centres = db.session.scalars(select(Attempt.centre_id).distinct().order_by(Attempt.centre_id)).all()
    return render_template("review/index.html", rows=rows, centre=centre, centres=centres,
                           undecided_only=undecided_only, lot_label=lot_label, limit=LIST_LIMIT)


@bp.get("/attempts/<int:attempt_id>/")
@bp.get("/attempts/<int:attempt_id>/q/<int:number>")
@roles_required(*REGION_STAFF)
def player(attempt_id: int, number: int | None = None):
    attempt = _attempt(attempt_id)
    manifest = manifest_of(attempt)
    page = player_page(
        manifest, number, heading=staff_heading(attempt),
        question_url=lambda n: url_for("review.player", attempt_id=attempt.id, number=n),
        media_url=lambda name: url_for("review.media_file", attempt_id=attempt.id, name=name))
    if page is None:
        if number is None:
            return render_template("review/no_media.html", attempt=attempt, heading=staff_heading(attempt))
        abort(404)
    all_marks = {timeline.flag_key(f): timeline.flag_label(f.kind) for f in manifest.flags}
    return render_template("review/review_player.html", page=page, attempt=attempt,
                           decisions=decisions.decisions_of(db.session, attempt.id), all_marks=all_marks,
                           labels=DECISION_LABELS, choices=list(Decision))


@bp.get("/attempts/<int:attempt_id>/media/<name>")
@roles_required(*REGION_STAFF)
def media_file(attempt_id: int, name: str):
    attempt = _attempt(attempt_id)
    obj = timeline.media_object(manifest_of(attempt), name)
    if obj is None:
        abort(404)
    return media.serve(store_for(), obj.key)


@bp.post("/attempts/<int:attempt_id>/flags")
@roles_required(*REGION_STAFF)
def decide(attempt_id: int):
    attempt = _attempt(attempt_id)
    known = {timeline.flag_key(f) for f in manifest_of(attempt).flags}
    number = request.form.get("question", type=int)
    try:
        decisions.decide(db.session, attempt, request.form.get("flag_key", ""), request.form.get("decision", ""),
                         request.form.get("note", ""), by=current_user.username, known_keys=known)
    except decisions.DecisionError as exc:
        db.session.rollback()
        flash(f"未保存 Not saved: {exc}", "error")
        return redirect(url_for("review.player", attempt_id=attempt.id, number=number), code=303)
    db.session.commit()
    flash("已保存 Saved", "info")
    return redirect(url_for("review.player", attempt_id=attempt.id, number=number), code=303)
