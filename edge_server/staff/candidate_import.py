"""Candidate import pages: upload a CSV and a ZIP of photos, preview every row, confirm.

Centre admins only. The upload is a form of its own (its CSRF token checked by the form) so that
its size limit can be larger than the station API's; the preview page shows the descriptor job's
progress from ``GET /staff/imports/<id>/progress`` and reloads when the job is done.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from wtforms import SubmitField

from edge_server import auth
from edge_server.auth import current_centre, staff
from edge_server.errors import EdgeError, NotFound
from edge_server.extensions import csrf, db
from edge_server.models import CandidateImport, ImportStatus, StaffRole
from edge_server.services import candidate_import as import_service
from edge_server.services import roster
from edge_server.services import sittings as sitting_service
from edge_server.staff.blueprint import bp
from edge_server.staff.forms import LogoutForm
from edge_server.work_queue import enqueue_import_analysis

MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class ImportForm(FlaskForm):
    csv_file = FileField("考生名单 CSV · Candidate list (CSV)", validators=[FileRequired("请选择 CSV 文件 · Choose the CSV file")])
    zip_file = FileField("照片 ZIP · Photos (ZIP)", validators=[FileRequired("请选择照片 ZIP · Choose the ZIP of photos")])
    submit = SubmitField("上传并预览 Upload and preview")


class ConfirmForm(FlaskForm):
    submit = SubmitField("确认导入 Confirm import")


def _sitting(sitting_id: str):
    try:
        return sitting_service.get_sitting(db.session, current_centre(), sitting_id)
    except NotFound:
        abort(404)


def _import(import_id: str) -> CandidateImport:
    try:
        return import_service.get_import(db.session, current_centre(), import_id)
    except NotFound:
        abort(404)


def _render_upload(sitting, form: ImportForm, *, error: str | None = None, status: int = 200):
    recent = db.session.scalars(db.select(CandidateImport).where(CandidateImport.sitting_id == sitting.id)
                                .order_by(CandidateImport.created_at.desc()).limit(10)).all()
    return render_template("staff/import_upload.html", sitting=sitting, form=form, error=error, recent=recent,
                           columns=roster.COLUMNS, logout_form=LogoutForm()), status


@bp.get("/sittings/<sitting_id>/import")
@staff(StaffRole.CENTRE_ADMIN)
def new_import(sitting_id: str):
    return _render_upload(_sitting(sitting_id), ImportForm())


@bp.post("/sittings/<sitting_id>/import")
@csrf.exempt  # the form checks its own token, after the larger size limit below is in place
@staff(StaffRole.CENTRE_ADMIN)
def upload_import(sitting_id: str):
    request.max_content_length = MAX_UPLOAD_BYTES
    sitting = _sitting(sitting_id)
    form = ImportForm()
    if not form.validate_on_submit():
        return _render_upload(sitting, form, status=400)
    settings = auth.settings()
    try:
        imp = import_service.start(db.session, settings.data_dir, sitting, form.csv_file.data.read(),
                                   form.zip_file.data.stream, current_user)
    except EdgeError as exc:
        db.session.rollback()
        return _render_upload(sitting, form, error=exc.message, status=exc.status)
    db.session.commit()
    if imp.status == ImportStatus.ANALYSING:
        try:
            enqueue_import_analysis(settings, imp.id)
        except RedisError as exc:
            imp.status = ImportStatus.FAILED
            imp.error = f"任务队列不可用，请稍后重新上传 · The job queue is unavailable, upload again later ({exc})"
            db.session.commit()
    return redirect(url_for("staff.import_preview", import_id=imp.id))


@bp.get("/imports/<import_id>")
@staff(StaffRole.CENTRE_ADMIN)
def import_preview(import_id: str):
    imp = _import(import_id)
    sitting = _sitting(imp.sitting_id)
    return render_template("staff/import_preview.html", imp=imp, sitting=sitting, summary=import_service.summary(imp),
                           form=ConfirmForm(), logout_form=LogoutForm()), 200, {"Cache-Control": "no-store"}


@bp.get("/imports/<import_id>/progress")
@staff(StaffRole.CENTRE_ADMIN)
def import_progress(import_id: str):
    return jsonify(import_service.summary(_import(import_id)))


@bp.post("/imports/<import_id>/confirm")
@staff(StaffRole.CENTRE_ADMIN)
def confirm_import(import_id: str):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    imp = _import(import_id)
    settings = auth.settings()
    try:
        copied = import_service.confirm(db.session, imp, settings.data_dir, current_user, datetime.now(timezone.utc))
    except EdgeError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("staff.import_preview", import_id=import_id))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        for path in copied:
            path.unlink(missing_ok=True)
        flash("准考证号已被登记，请重新上传 · A ticket number was enrolled meanwhile: upload again", "error")
        return redirect(url_for("staff.import_preview", import_id=import_id))
    import_service.discard_staging(settings.data_dir, import_id)
    flash(f"已导入 {imp.imported} 名考生 · {imp.imported} candidates imported", "info")
    return redirect(url_for("staff.import_preview", import_id=import_id))
