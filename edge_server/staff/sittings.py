"""Sittings page: list, create and edit a sitting; centre admins edit, everyone signed in views.

Times are entered and shown in the edge server's local time zone (as every staff page shows
times) and stored in UTC. The time lock is the service's (services/sittings.py): once the waiting
room is open the server refuses every change but the name, whatever the browser sends.
"""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, DateTimeLocalField, IntegerField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from edge_server import auth
from edge_server.auth import ALL_STAFF, current_centre, staff
from edge_server.errors import EdgeError, NotFound
from edge_server.extensions import db
from edge_server.models import SittingKind, StaffRole, TimingMode
from edge_server.services import seats as seat_service
from edge_server.services import sittings as sitting_service
from edge_server.staff.blueprint import bp
from edge_server.staff.forms import LogoutForm
from edge_server.work_queue import DELIVERED, NOT_DELIVERED, enqueue_push, push_outcomes
from examkiosk_wire.commands import Moved, command

TIME_FORMAT = "%Y-%m-%dT%H:%M"
KIND_CHOICES = [(SittingKind.FORMAL.value, "正式 Formal"), (SittingKind.MOCK.value, "模拟 Mock")]
MODE_CHOICES = [(TimingMode.PER_QUESTION.value, "按题计时 Per question"),
                (TimingMode.WHOLE_SESSION.value, "整场计时 Whole session")]


def _when(label: str) -> DateTimeLocalField:
    return DateTimeLocalField(label, format=TIME_FORMAT,
                              validators=[InputRequired("请填写时间 · Enter a date and time")])


class SittingForm(FlaskForm):
    name = StringField("名称 Name", validators=[DataRequired("请填写名称 · Enter a name"), Length(max=200)])
    kind = SelectField("类型 Kind", choices=KIND_CHOICES)
    timing_mode = SelectField("计时方式 Timing mode", choices=MODE_CHOICES)
    waiting_opens_at = _when("候考室开放 Waiting room opens")
    lot_deadline_at = _when("抽签截止 Lot deadline")
    starts_at = _when("开考 Start")
    entry_closes_at = _when("入场截止 Entry cutoff")
    question_seconds = IntegerField("每题时长（秒）Seconds per question", validators=[Optional()],
                                    description="留空则按试卷 · empty: as the paper says")
    total_seconds = IntegerField("整场时长（秒）Total seconds", validators=[Optional()])
    early_finish_allowed = BooleanField("允许提前结束 Early finish allowed (whole session)")
    max_interruptions = IntegerField("最多中断次数 Interruptions allowed",
                                     validators=[InputRequired("请填写 · Enter a number"), NumberRange(min=0, max=10)])
    max_gap_seconds = IntegerField("每次中断最长（秒）Longest interruption (s)",
                                   validators=[InputRequired("请填写 · Enter a number")])
    mock_required = BooleanField("须先完成模拟测试 A completed mock is required")
    submit = SubmitField("保存 Save")

    def spec(self) -> sitting_service.SittingSpec:
        return sitting_service.SittingSpec(
            # The paper is not chosen here: it is imported sealed, for this sitting, on the Papers page.
            name=self.name.data.strip(), kind=SittingKind(self.kind.data), paper_id=0,
            timing_mode=TimingMode(self.timing_mode.data),
            waiting_opens_at=_utc(self.waiting_opens_at.data), starts_at=_utc(self.starts_at.data),
            entry_closes_at=_utc(self.entry_closes_at.data), lot_deadline_at=_utc(self.lot_deadline_at.data),
            question_seconds=self.question_seconds.data, total_seconds=self.total_seconds.data,
            early_finish_allowed=bool(self.early_finish_allowed.data),
            max_interruptions=self.max_interruptions.data, max_gap_seconds=self.max_gap_seconds.data,
            mock_required=bool(self.mock_required.data))


def _utc(local: datetime) -> datetime:
    """A naive time typed in the server's local zone, as UTC."""
    return local.astimezone().astimezone(timezone.utc)


def local(value: datetime) -> datetime:
    """A stored UTC time as naive local time, for a datetime-local input."""
    return value.astimezone().replace(tzinfo=None)


def _form(sitting=None, formdata=None) -> SittingForm:
    """The form, filled from the request, else from ``sitting``, else with the policy's defaults."""
    if formdata is not None:
        form = SittingForm(formdata=formdata)
    elif sitting is not None:
        data = {k: getattr(sitting, k) for k in ("name", "kind", "timing_mode", "question_seconds",
                                                 "total_seconds", "early_finish_allowed", "max_interruptions",
                                                 "max_gap_seconds", "mock_required")}
        data.update({k: local(getattr(sitting, k))
                     for k in ("waiting_opens_at", "lot_deadline_at", "starts_at", "entry_closes_at")})
        form = SittingForm(data=data)
    else:
        form = SittingForm(data={"max_interruptions": 1, "max_gap_seconds": 120, "early_finish_allowed": False})
    return form


def paper_state(sitting) -> str:
    """What is in the clear about a sitting's paper: sealed with n questions, or not imported yet."""
    paper = sitting.paper
    if paper is not None and paper.sealed and paper.sealed_for == sitting.id:
        return f"已密封 sealed · {len(paper.question_seconds or [])} 题 questions · {paper.source_name}"
    return "未导入 not imported yet"


def _stored_with(sitting, sent: MultiDict) -> MultiDict:
    """The sitting's stored settings as form data, overridden by what ``sent`` carries."""
    data = MultiDict()
    for key in ("name", "kind", "timing_mode", "question_seconds", "total_seconds",
                "max_interruptions", "max_gap_seconds"):
        value = getattr(sitting, key)
        data[key] = "" if value is None else str(value)
    for key in ("waiting_opens_at", "lot_deadline_at", "starts_at", "entry_closes_at"):
        data[key] = local(getattr(sitting, key)).strftime(TIME_FORMAT)
    for key in ("early_finish_allowed", "mock_required"):
        if getattr(sitting, key):
            data[key] = "y"
    for key in sent:
        data.setlist(key, sent.getlist(key))
    return data


def _render_form(form: SittingForm, sitting=None, *, status: int = 200, error: str | None = None):
    now = datetime.now(timezone.utc)
    locked = sitting is not None and sitting_service.is_locked(sitting, now)
    return render_template("staff/sitting_form.html", form=form, sitting=sitting, locked=locked, error=error,
                           time_fields=sitting_service.TIME_FIELDS, logout_form=LogoutForm(),
                           paper_state=paper_state(sitting) if sitting is not None else None,
                           can_edit=current_user.role == StaffRole.CENTRE_ADMIN), status


def _spec_or_errors(form: SittingForm) -> sitting_service.SittingSpec | None:
    """The form's spec, or None with the service's problems attached to their fields."""
    spec = form.spec()
    for field, message in sitting_service.problems(spec).items():
        getattr(form, field).errors = [*getattr(form, field).errors, message]
    return None if form.errors else spec


@bp.get("/sittings")
@staff(*ALL_STAFF)
def sittings_page():
    now = datetime.now(timezone.utc)
    rows = [(s, sitting_service.is_locked(s, now)) for s in sitting_service.list_sittings(db.session, current_centre())]
    return render_template("staff/sittings.html", sittings=rows, logout_form=LogoutForm(), local=local,
                           can_edit=current_user.role == StaffRole.CENTRE_ADMIN)


@bp.route("/sittings/new", methods=["GET", "POST"])
@staff(StaffRole.CENTRE_ADMIN)
def new_sitting():
    form = _form()
    if not form.validate_on_submit():
        return _render_form(form, status=400 if form.is_submitted() else 200)
    spec = _spec_or_errors(form)
    if spec is None:
        return _render_form(form, status=400)
    try:
        sitting = sitting_service.create(db.session, current_centre(), spec, by=current_user.username)
    except EdgeError as exc:
        db.session.rollback()
        return _render_form(form, status=exc.status, error=exc.message)
    db.session.commit()
    flash(f"已创建场次 {sitting.name} · Sitting created", "info")
    return redirect(url_for("staff.edit_sitting", sitting_id=sitting.id))


def _sitting_or_404(sitting_id: str):
    try:
        return sitting_service.get_sitting(db.session, current_centre(), sitting_id)
    except NotFound:
        from flask import abort

        abort(404)


@bp.get("/sittings/<sitting_id>")
@staff(*ALL_STAFF)
def edit_sitting(sitting_id: str):
    sitting = _sitting_or_404(sitting_id)
    return _render_form(_form(sitting), sitting)


@bp.post("/sittings/<sitting_id>")
@staff(StaffRole.CENTRE_ADMIN)
def save_sitting(sitting_id: str):
    sitting = _sitting_or_404(sitting_id)
    form = _form()
    locked = sitting_service.is_locked(sitting, datetime.now(timezone.utc))
    if locked:
        # The page sends only the name then (the rest is disabled): the stored values fill in the rest,
        # and whatever else a request does send is checked against the lock by the service.
        form = _form(formdata=_stored_with(sitting, request.form))
    if not form.validate_on_submit():
        return _render_form(form, sitting, status=400)
    if locked:  # what the request did not send stays exactly as stored (the form keeps minutes only)
        spec = replace(form.spec(), **{k: getattr(sitting, k) for k in (*sitting_service.TIME_FIELDS,
                                                                         "mock_required") if k not in request.form})
    else:
        spec = _spec_or_errors(form)
        if spec is None:
            return _render_form(form, sitting, status=400)
    spec = replace(spec, paper_id=sitting.paper_id)  # only the Papers page changes the paper
    try:
        changed = sitting_service.update(db.session, sitting, spec, by=current_user.username,
                                         now=datetime.now(timezone.utc))
    except EdgeError as exc:
        db.session.rollback()
        return _render_form(form, sitting, status=exc.status, error=exc.message)
    db.session.commit()
    flash("已保存 · Sitting saved" if changed else "没有变化 · Nothing changed", "info")
    return redirect(url_for("staff.edit_sitting", sitting_id=sitting.id))


# --- seat map ---------------------------------------------------------------------------------

class SeatForm(FlaskForm):
    ticket_no = StringField("考生 Candidate", validators=[DataRequired("请选择考生 · Choose a candidate")])
    station = StringField("考位 Station", validators=[DataRequired("请选择考位 · Choose a station")])


def _render_seats(sitting, *, error: str | None = None, status: int = 200):
    now = datetime.now(timezone.utc)
    seats = seat_service.seat_map(db.session, sitting)
    candidates = seat_service.candidates(db.session, sitting)
    stations = {s.station.id: s.station for s in seats}
    notices = seat_service.move_notices(db.session, sitting)
    queued = push_outcomes(auth.settings(), [n.about for n in notices.values() if n.delivered is None])
    # What became of telling each moved candidate's old station: the push job's audit row, else the queue.
    move_push = {ticket: (NOT_DELIVERED, DELIVERED)[n.delivered] if n.delivered is not None
                 else queued.get(n.about, NOT_DELIVERED) for ticket, n in notices.items()}
    return render_template(
        "staff/seats.html", sitting=sitting, seats=seats, form=SeatForm(), error=error, logout_form=LogoutForm(),
        unseated=[c for c in candidates if c.station_id is None], spare=[s.station for s in seats
                                                                         if s.candidate is None and s.station.revoked_at is None],
        stations=stations, started=now >= sitting.starts_at, label=seat_service.label, notices=notices,
        move_push=move_push,
        can_move=current_user.role in (StaffRole.CENTRE_ADMIN, StaffRole.PROCTOR)), status


@bp.get("/sittings/<sitting_id>/seats")
@staff(*ALL_STAFF)
def seat_map(sitting_id: str):
    return _render_seats(_sitting_or_404(sitting_id))


@bp.post("/sittings/<sitting_id>/seats")
@staff(StaffRole.CENTRE_ADMIN, StaffRole.PROCTOR)
def move_seat(sitting_id: str):
    """Assign a candidate to a station, or move one to a spare station (mid-exam: an interruption)."""
    sitting = _sitting_or_404(sitting_id)
    form = SeatForm()
    if not form.validate_on_submit():
        return _render_seats(sitting, error="; ".join(e for errs in form.errors.values() for e in errs), status=400)
    try:
        move = seat_service.assign(db.session, sitting, form.ticket_no.data, form.station.data,
                                   by=current_user.username, now=datetime.now(timezone.utc))
    except EdgeError as exc:
        db.session.rollback()
        return _render_seats(sitting, error=exc.message, status=exc.status)
    db.session.commit()
    if move.before is not None and move.attempt is not None:
        # The old station stops and hands its recording over (it also learns it from the API's attempt answer).
        enqueue_push(auth.settings(), move.push_about, [move.before],
                     command(Moved(to=move.candidate.seat, station=move.after), attempt=move.attempt, ts=time.time()))
    text = f"{move.candidate.name}（{move.candidate.ticket_no}）→ {move.candidate.seat}"
    if move.interruption is not None:
        text += (f"：考试中换座，计为第 {move.interruption} 次中断（共可 {sitting.max_interruptions} 次） · "
                 f"moved during the exam, counted as interruption {move.interruption} of {sitting.max_interruptions}")
    flash(text, "info")
    return redirect(url_for("staff.seat_map", sitting_id=sitting.id))
