"""The regional admin's marking tools: assign markers and set the scale per sitting, export the
markers' package and the results (lot -> ticket number), and read the audit log with its check.
Every export is an audit row, written before the first byte is sent."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from region_server import audit
from region_server.auth import roles_required
from region_server.extensions import db
from region_server.marking import access, exports, scoring, tables
from region_server.marking.blueprint import bp
from region_server.marking.models import Assignment
from region_server.models import Role, Sitting
from region_server.store import store_for

ADMIN = Role.REGIONAL_ADMIN
NO_STORE = {"Cache-Control": "no-store"}


def _sitting(sitting_id: int) -> Sitting:
    sitting = db.session.get(Sitting, sitting_id)
    if sitting is None:
        abort(404)
    return sitting


def _file_stem(sitting: Sitting) -> str:
    return f"{sitting.centre_id}-{sitting.sitting}-{datetime.now(timezone.utc):%Y%m%d-%H%M}"


def _setup_page(sitting: Sitting, *, typed: dict | None = None, status: int = 200):
    assigned = set(db.session.scalars(select(Assignment.user_id).where(Assignment.sitting_id == sitting.id)))
    return render_template("marking/setup.html", sitting=sitting, markers=access.markers(db.session),
                           assigned=assigned, scale=scoring.scale_of(db.session, sitting.id), typed=typed or {},
                           fmt=scoring.fmt), status, NO_STORE


@bp.get("/sittings/<int:sitting_id>/setup")
@roles_required(ADMIN)
def setup(sitting_id: int):
    return _setup_page(_sitting(sitting_id))


@bp.post("/sittings/<int:sitting_id>/scale")
@roles_required(ADMIN)
def set_scale(sitting_id: int):
    sitting = _sitting(sitting_id)
    typed = {k: request.form.get(k, "") for k in ("min_score", "max_score", "step")}
    try:
        values = [scoring.parse_score(typed[k]) for k in ("min_score", "max_score", "step")]
        scoring.set_scale(db.session, sitting, *values, by=current_user.username)
    except scoring.ScoringError as exc:
        db.session.rollback()
        flash(f"未保存 Not saved: {exc}", "error")
        return _setup_page(sitting, typed=typed, status=400)
    db.session.commit()
    flash("评分刻度已保存 Scale saved", "info")
    return redirect(url_for("marking.setup", sitting_id=sitting.id), code=303)


@bp.post("/sittings/<int:sitting_id>/markers")
@roles_required(ADMIN)
def set_markers(sitting_id: int):
    """The checked markers are assigned to the sitting, the others unassigned."""
    sitting = _sitting(sitting_id)
    wanted = set(request.form.getlist("marker", type=int))
    markers = access.markers(db.session)
    unknown = wanted - {m.id for m in markers}
    if unknown:
        flash("未保存 Not saved: 不是评分员 not a marker: " + ", ".join(map(str, sorted(unknown))), "error")
        return _setup_page(sitting, status=400)
    for marker in markers:
        if marker.id in wanted:
            scoring.assign(db.session, sitting, marker, by=current_user.username)
        else:
            scoring.unassign(db.session, sitting, marker, by=current_user.username)
    db.session.commit()
    flash("评分员分配已保存 Markers saved", "info")
    return redirect(url_for("marking.setup", sitting_id=sitting.id), code=303)


@bp.get("/sittings/<int:sitting_id>/package.zip")
@roles_required(ADMIN)
def package(sitting_id: int):
    """The markers' package, streamed: nothing of it is held in memory beyond one chunk."""
    sitting = _sitting(sitting_id)
    plan = exports.plan_package(db.session, store_for(), sitting)
    audit.record(db.session, actor=current_user.username, action="export.package",
                 subject=f"sitting {sitting.centre_id}/{sitting.sitting}",
                 payload={"sitting": sitting.id, "lots": plan.lots, "files": [m.path for m in plan.members],
                          "missing": plan.missing})
    db.session.commit()
    name = f"markers-{_file_stem(sitting)}.zip"
    return Response(exports.stream_package(plan), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE})


@bp.get("/sittings/<int:sitting_id>/results.csv")
@roles_required(ADMIN)
def results(sitting_id: int):
    sitting = _sitting(sitting_id)
    rows = exports.result_rows(db.session, sitting)
    audit.record(db.session, actor=current_user.username, action="export.results",
                 subject=f"sitting {sitting.centre_id}/{sitting.sitting}",
                 payload={"sitting": sitting.id, "rows": len(rows)})
    db.session.commit()
    name = f"results-{_file_stem(sitting)}.csv"
    return Response(tables.results_csv(rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE})


@bp.get("/audit")
@roles_required(ADMIN)
def audit_log():
    broken = audit.verify_chain(db.session)
    return render_template("marking/audit.html", rows=audit.rows(db.session), broken=broken), 200, NO_STORE
