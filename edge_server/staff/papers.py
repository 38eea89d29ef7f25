"""Papers page: a centre admin imports a sitting's paper file; it is sealed at once.

The page shows, per sitting, whether its paper is sealed and what the stations need to plan
(question count, minutes), never the paper's text: nobody at the centre reads it before the start.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import render_template
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from wtforms import SelectField, SubmitField
from wtforms.validators import DataRequired

from edge_server import auth
from edge_server.auth import current_centre, staff
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.models import Sitting, StaffRole
from edge_server.services import papers
from edge_server.services.paper_format import PaperFormatError
from edge_server.staff.blueprint import bp
from edge_server.staff.forms import LogoutForm


class PaperImportForm(FlaskForm):
    sitting = SelectField("考试场次 Sitting", validators=[DataRequired("请选择考试场次 · Choose a sitting")])
    file = FileField("试卷文件 Paper file (.json / .yaml / .zip)",
                     validators=[FileRequired("请选择试卷文件 · Choose a paper file")])
    submit = SubmitField("导入并密封 Import and seal")


def _sittings() -> list[Sitting]:
    return list(db.session.scalars(select(Sitting).where(Sitting.centre_id == current_centre())
                                   .order_by(Sitting.starts_at)))


def _render(form: PaperImportForm, *, problems: list[str] | None = None, imported: dict | None = None,
            status: int = 200):
    now = datetime.now(timezone.utc)
    sittings = _sittings()
    body = render_template("staff/papers.html", form=form, logout_form=LogoutForm(), problems=problems or [],
                           imported=imported, now=now,
                           rows=[(s, papers.status(s), now >= s.starts_at) for s in sittings])
    return body, status, {"Cache-Control": "no-store"}


def _form(sittings: list[Sitting]) -> PaperImportForm:
    form = PaperImportForm()
    form.sitting.choices = [(s.id, f"{s.name} ({s.id}) · {s.starts_at.astimezone().strftime('%Y-%m-%d %H:%M')}")
                            for s in sittings]
    return form


@bp.get("/papers")
@staff(StaffRole.CENTRE_ADMIN)
def papers_page():
    return _render(_form(_sittings()))


@bp.post("/papers")
@staff(StaffRole.CENTRE_ADMIN)
def import_paper():
    form = _form(_sittings())
    if not form.validate_on_submit():  # (a missing CSRF token is refused before, by CSRFProtect)
        return _render(form, problems=[e for errors in form.errors.values() for e in errors], status=400)
    upload = form.file.data
    filename = (upload.filename or "").rsplit("/", 1)[-1][:255]
    data = upload.read()
    now = datetime.now(timezone.utc)
    try:
        sitting = papers.sitting_of_centre(db.session, current_centre(), form.sitting.data)
        paper = papers.import_paper(db.session, auth.settings().data_dir, sitting, filename, data,
                                    by=current_user.username, now=now)
    except PaperFormatError as exc:
        db.session.rollback()
        _refused(form.sitting.data, filename, exc.problems)
        return _render(form, problems=exc.problems, status=400)
    except EdgeError as exc:
        db.session.rollback()
        _refused(form.sitting.data, filename, [exc.message])
        return _render(form, problems=[exc.message], status=exc.status)
    db.session.commit()
    return _render(_form(_sittings()), imported={"sitting": sitting, "paper": paper,
                                                 "questions": len(paper.question_seconds or [])}, status=201)


def _refused(sitting_id: str, filename: str, problems: list[str]) -> None:
    papers.refuse_import(db.session, sitting_id, filename, problems, by=current_user.username)
    db.session.commit()
