"""Markers' pages: the sittings assigned to them, a sitting's lots, a lot in the player with its
score form, and the same as JSON. Nothing here shows a name, a ticket number, an ID number, a
station, a message or a face frame; a lot is named by its number only."""
from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from region_server.auth import roles_required
from region_server.extensions import db
from region_server.marking import access, scoring
from region_server.marking.blueprint import bp
from region_server.models import Attempt, Role, Sitting
from region_server.review import media, timeline
from region_server.review.player import manifest_of, player_page
from region_server.store import store_for

MARKING = (Role.REGIONAL_ADMIN, Role.MARKER)
NO_STORE = {"Cache-Control": "no-store"}


def sitting_label(sitting: Sitting) -> str:
    return f"{sitting.centre_id} · {sitting.name or sitting.sitting}"


def lot_heading(sitting: Sitting, lot: int) -> str:
    return f"{sitting_label(sitting)} · 签号 Lot {lot:03d}"


def _sitting(sitting_id: int) -> Sitting:
    sitting = db.session.get(Sitting, sitting_id)
    if sitting is None:
        abort(404)
    if not access.may_mark(db.session, current_user, sitting):
        abort(403)
    return sitting


def _lot(sitting: Sitting, lot: int) -> Attempt:
    attempt = access.lot_attempt(db.session, sitting.id, lot)
    if attempt is None:
        abort(404)
    return attempt


def _my_scores(attempts: list[Attempt]) -> dict[tuple[int, int], scoring.Score]:
    if Role(current_user.role) != Role.MARKER:
        return {}
    rows = scoring.scores_of(db.session, [a.id for a in attempts], current_user)
    return {(s.attempt_id, s.question): s for s in rows}


@bp.get("/")
@roles_required(*MARKING)
def index():
    rows = []
    for sitting in access.sittings_for(db.session, current_user):
        lots = access.lots_of(db.session, sitting.id)
        mine = _my_scores(list(lots.values()))
        questions = sum(len(scoring.question_numbers(a)) for a in lots.values())
        rows.append({"sitting": sitting, "label": sitting_label(sitting), "lots": len(lots),
                     "questions": questions, "scored": len(mine), "scale": scoring.scale_of(db.session, sitting.id)})
    return render_template("marking/index.html", rows=rows, is_admin=current_user.role == Role.REGIONAL_ADMIN,
                           fmt=scoring.fmt), 200, NO_STORE


@bp.get("/sittings/<int:sitting_id>/")
@roles_required(*MARKING)
def sitting_lots(sitting_id: int):
    sitting = _sitting(sitting_id)
    lots = access.lots_of(db.session, sitting.id)
    mine = _my_scores(list(lots.values()))
    rows = [{"lot": lot, "questions": scoring.question_numbers(a),
             "scores": {n: mine[(a.id, n)] for n in scoring.question_numbers(a) if (a.id, n) in mine}}
            for lot, a in lots.items()]
    return render_template("marking/sitting.html", sitting=sitting, label=sitting_label(sitting), rows=rows,
                           scale=scoring.scale_of(db.session, sitting.id), fmt=scoring.fmt,
                           is_admin=current_user.role == Role.REGIONAL_ADMIN), 200, NO_STORE


@bp.get("/api/sittings/<int:sitting_id>/lots")
@roles_required(*MARKING)
def sitting_lots_json(sitting_id: int):
    sitting = _sitting(sitting_id)
    lots = access.lots_of(db.session, sitting.id)
    mine = _my_scores(list(lots.values()))
    scale = scoring.scale_of(db.session, sitting.id)
    return jsonify(
        sitting={"id": sitting.id, "label": sitting_label(sitting),
                 "scale": {"min": scale.min_score, "max": scale.max_score, "step": scale.step}},
        lots=[{"lot": lot, "questions": scoring.question_numbers(a),
               "flags": len(manifest_of(a).flags),
               "my_scores": {str(n): {"score": mine[(a.id, n)].value, "note": mine[(a.id, n)].note}
                             for n in scoring.question_numbers(a) if (a.id, n) in mine}}
              for lot, a in lots.items()]), 200, NO_STORE


def _render_lot(sitting: Sitting, lot: int, attempt: Attempt, number: int | None, *, typed: dict | None = None,
                status: int = 200):
    page = player_page(
        manifest_of(attempt), number, heading=lot_heading(sitting, lot),
        question_url=lambda n: url_for("marking.lot", sitting_id=sitting.id, lot=lot, number=n),
        media_url=lambda name: url_for("marking.lot_media", sitting_id=sitting.id, lot=lot, name=name))
    if page is None:
        if number is None:
            return render_template("marking/no_media.html", heading=lot_heading(sitting, lot), sitting=sitting), 200
        abort(404)
    mine = _my_scores([attempt]).get((attempt.id, page.view.number))
    return render_template("marking/lot.html", page=page, sitting=sitting, lot=lot, saved=mine, typed=typed,
                           scale=scoring.scale_of(db.session, sitting.id), fmt=scoring.fmt,
                           can_score=current_user.role == Role.MARKER), status, NO_STORE


@bp.get("/sittings/<int:sitting_id>/lots/<int:lot>/")
@bp.get("/sittings/<int:sitting_id>/lots/<int:lot>/q/<int:number>")
@roles_required(*MARKING)
def lot(sitting_id: int, lot: int, number: int | None = None):
    sitting = _sitting(sitting_id)
    return _render_lot(sitting, lot, _lot(sitting, lot), number)


@bp.post("/sittings/<int:sitting_id>/lots/<int:lot>/q/<int:number>")
@roles_required(Role.MARKER)
def save_score(sitting_id: int, lot: int, number: int):
    sitting = _sitting(sitting_id)
    attempt = _lot(sitting, lot)
    typed = {"score": request.form.get("score", ""), "note": request.form.get("note", "")}
    try:
        value = scoring.parse_score(typed["score"])
        scoring.save_score(db.session, attempt, number, current_user, value, typed["note"])
    except scoring.ScoringError as exc:
        db.session.rollback()
        flash(f"未保存 Not saved: {exc}", "error")
        return _render_lot(sitting, lot, attempt, number, typed=typed, status=400)
    db.session.commit()
    flash(f"已保存第{number}题 Question {number} saved", "info")
    return redirect(url_for("marking.lot", sitting_id=sitting.id, lot=lot, number=number), code=303)


@bp.get("/sittings/<int:sitting_id>/lots/<int:lot>/media/<name>")
@roles_required(*MARKING)
def lot_media(sitting_id: int, lot: int, name: str):
    sitting = _sitting(sitting_id)
    obj = timeline.media_object(manifest_of(_lot(sitting, lot)), name)
    if obj is None or obj.question is None:
        abort(404)
    return media.serve(store_for(), obj.key)
