"""Help chat and broadcasts on the dashboard: the help panel's JSON, replies, resolve, broadcast.

Everyone signed in reads (``GET /staff/api/messages``); proctors and centre admins reply, resolve and
broadcast (CSRF on every form). After the commit a reply is queued for its station and a broadcast for
the sitting's stations (the worker pushes them over MQTT, ``jobs/push.py``); the help panel shows each
push's outcome, and the stations also fetch both (``GET /api/v1/messages``).
Each POST answers JSON to ``Accept: application/json`` (the dashboard's fetch) and otherwise
redirects to the dashboard with a flash message.
"""
from __future__ import annotations

import time

from flask import flash, jsonify, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from edge_server import auth
from edge_server.auth import ALL_STAFF, current_centre, staff
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.services import messages as message_service
from edge_server.staff.blueprint import bp
from edge_server.work_queue import enqueue_push, push_outcomes
from examkiosk_wire.commands import command

LENGTH = Length(max=message_service.MAX_TEXT,
                message=f"最多 {message_service.MAX_TEXT} 字 · At most {message_service.MAX_TEXT} characters")


class ReplyForm(FlaskForm):
    text = TextAreaField("回复 Reply", validators=[DataRequired("请输入回复 · Write a reply"), LENGTH])


class ResolveForm(FlaskForm):
    pass


class BroadcastForm(FlaskForm):
    sitting = StringField("场次 Sitting", validators=[DataRequired("请选择场次 · Choose a sitting")])
    text = TextAreaField("通知 Notice", validators=[DataRequired("请输入通知内容 · Write the notice"), LENGTH])


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _answer(payload: dict, status: int, note: str):
    if _wants_json():
        return jsonify(payload), status
    flash(note, "info" if status < 400 else "error")
    return redirect(url_for("staff.dashboard"))


def _form_error(form: FlaskForm):
    errors = [e for field in form.errors.values() for e in field]
    message = "; ".join(str(e) for e in errors) or "表单无效 · Invalid form"
    return _answer({"error": message, "code": "bad_form"}, 400, message)


def _edge_error(exc: EdgeError):
    db.session.rollback()
    return _answer({"error": exc.message, "code": exc.code}, exc.status, exc.message)


@bp.get("/api/messages")
@staff(*ALL_STAFF)
def messages_json():
    data = message_service.dashboard(db.session, current_centre())
    message_service.add_push_outcomes(data, lambda abouts: push_outcomes(auth.settings(), abouts))
    data["can_chat"] = current_user.role in message_service.CHAT_ROLES
    return jsonify(data)


@bp.post("/help/<int:thread_id>/reply")
@staff(*message_service.CHAT_ROLES)
def reply(thread_id: int):
    form = ReplyForm()
    if not form.validate_on_submit():
        return _form_error(form)
    try:
        thread = message_service.get_thread(db.session, current_centre(), thread_id)
        message = message_service.reply(db.session, thread, staff=current_user, text=form.text.data)
    except EdgeError as exc:
        return _edge_error(exc)
    db.session.commit()
    push = enqueue_push(auth.settings(), message_service.push_about(message), [thread.station_id],
                        command(message_service.station_message(message),
                                attempt=thread.attempt_id, ts=time.time()))
    return _answer({"id": message.id, "thread": thread.id, "push": push}, 201,
                   f"已回复考位 {thread.station_id} · Reply sent")


@bp.post("/help/<int:thread_id>/resolve")
@staff(*message_service.CHAT_ROLES)
def resolve(thread_id: int):
    if not ResolveForm().validate_on_submit():
        return _answer({"error": "CSRF token missing or invalid", "code": "bad_form"}, 400, "表单无效 · Invalid form")
    try:
        thread = message_service.get_thread(db.session, current_centre(), thread_id)
        message_service.resolve(db.session, thread, staff=current_user)
    except EdgeError as exc:
        return _edge_error(exc)
    db.session.commit()
    return _answer({"thread": thread.id, "status": str(thread.status)}, 200,
                   f"考位 {thread.station_id} 的求助已解决 · Resolved")


@bp.post("/broadcasts")
@staff(*message_service.CHAT_ROLES)
def send_broadcast():
    form = BroadcastForm()
    if not form.validate_on_submit():
        return _form_error(form)
    try:
        sitting = message_service.get_sitting(db.session, current_centre(), form.sitting.data)
        message = message_service.broadcast(db.session, sitting, staff=current_user, text=form.text.data)
    except EdgeError as exc:
        return _edge_error(exc)
    db.session.commit()
    stations = list(message.recipients or [])
    push = enqueue_push(auth.settings(), message_service.push_about(message), stations,
                        command(message_service.station_message(message), ts=time.time()))
    return _answer({"id": message.id, "sitting": sitting.id, "stations": stations, "push": push}, 201,
                   f"通知已发送到 {len(stations)} 个考位 · Broadcast sent to {len(stations)} stations")
