"""The kiosk UI's Flask app: a small local web app on 127.0.0.1 that the kiosk browser shows.

The page is driven by ``/api/stream`` (server-sent events: a snapshot of what the state machine
says at each change, and every ``STREAM_IDLE_SECONDS`` otherwise), with ``/api/state`` polled as
the fallback while the stream is down, and sends the candidate's actions to ``/api/event``. The root element carries ``data-screen`` and every control
``data-action``, so any browser script can drive it. The app reads the station through its port
(``station.kiosk.port``): one :class:`KioskView` per request and a few calls.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, TypeVar

from flask import Flask, Response, abort, jsonify, render_template, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import make_server

from examkiosk_wire.bodies import Body, BodyError, parse_body, parse_model
from station import flow
from station.capture.backends import list_cameras, list_microphones
from station.flow import Screen
from station.kiosk.bodies import ACTION_PAYLOADS, MAX_BODY_BYTES, EventBody, FocusBody, HelpBody, NoBody, SeenBody
from station.kiosk.content import READING
from station.kiosk.paper_view import NotServed, question_view, served_image
from station.kiosk.port import KioskPort, KioskView
from station.kiosk.watchback import add_watchback_routes
from station.messages import MessageError
from station.vision.face_quality import GUIDANCE_EN, GUIDANCE_ZH
from station.voice import PROMPTS

# The name Flask logs under (and finds templates/ and static/ by): the kiosk package.
APP_NAME = "station.kiosk"
PREVIEW_WIDTH = 640
# The stream sends a snapshot at each change and at least this often (the countdown, the mic level);
# it ends after STREAM_SECONDS and the page's EventSource reconnects.
STREAM_IDLE_SECONDS = 0.3
STREAM_SECONDS = 300.0

logger = logging.getLogger(__name__)

BodyT = TypeVar("BodyT", bound=Body)

# Events the page may send; everything else (results of I/O, ticks) comes from the agent itself.
CANDIDATE_ACTIONS = frozenset(ACTION_PAYLOADS)

LOOPBACK_NAMES = ("127.0.0.1", "localhost")
# The parser's refusals of the request as such (413 too_large, 400 too_deep) keep their code; any
# other body that is not what a route takes gets that route's code (bad_event, bad_help, ...).
_LIMIT_CODES = frozenset({"too_large", "too_deep"})


def kiosk_hosts(port: int, bind_host: str = "127.0.0.1") -> frozenset[str]:
    """The ``Host`` headers that name the kiosk served on ``port``: a loopback name and that port.

    Any other name is refused, so a page elsewhere cannot reach the kiosk through a hostname that
    it rebinds to 127.0.0.1 (DNS rebinding). ``[::1]`` counts when the kiosk binds an IPv6 address.
    A Host without a port means 80, HTTP's default: that is what an app not served on a socket is
    told (Flask's test client sends ``Host: localhost``); the kiosk's own server passes its port.
    """
    names = list(LOOPBACK_NAMES) + (["[::1]"] if ":" in bind_host else [])
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:
        hosts.update(names)
    return frozenset(hosts)


def create_kiosk_app(station: KioskPort, *, port: int = 80, bind_host: str = "127.0.0.1") -> Flask:
    """The kiosk app for ``station``, answering only requests addressed to ``bind_host``:``port``
    (see :func:`kiosk_hosts`)."""
    app = Flask(APP_NAME)
    app.config["JSON_AS_ASCII"] = False
    # A body declared larger is refused (413) before a byte of it is read. One byte more than a body
    # may have: werkzeug stops reading a chunked body at this bound, so the parser still sees it too large.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1
    hosts = kiosk_hosts(port, bind_host)
    origins = frozenset(f"http://{host}" for host in hosts)

    @app.before_request
    def addressed_to_the_kiosk():
        host = request.environ.get("HTTP_HOST", "").lower()
        if host not in hosts:
            logger.warning("refused a request for host %r (kiosk: %s)", host[:80], ", ".join(sorted(hosts)))
            return jsonify(error="this server answers only its own address", code="wrong_host"), 421
        # A page elsewhere may still POST to 127.0.0.1 itself; browsers say where it came from.
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD", "OPTIONS") and origin is not None and origin.lower() not in origins:
            logger.warning("refused a %s %s from origin %r", request.method, request.path, origin[:80])
            return jsonify(error="requests from other pages are refused", code="wrong_origin"), 403
        return None

    @app.errorhandler(BodyError)
    def refused_body(exc: BodyError):
        logger.warning("refused %s %s: %s (%s)", request.method, request.path, exc.message, exc.code)
        return jsonify(error=exc.message, code=exc.code), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        if status >= 500:
            # An unhandled exception: Flask has logged it with its traceback before it comes here.
            return jsonify(error="internal error", code="internal_error"), status
        return jsonify(error=exc.description, code=exc.name.lower().replace(" ", "_")), status

    def parsed(model: type[BodyT], code: str) -> BodyT:
        """The request's body as ``model``, refused (BodyError) when it is too large, too deep, not
        JSON or not that model; with ``code`` when it is not what the route takes."""
        try:
            raw = request.get_data(cache=False)
        except RequestEntityTooLarge as exc:
            raise BodyError(f"the body may have at most {MAX_BODY_BYTES} bytes", "too_large", 413) from exc
        if raw.strip() and not request.is_json:
            raise BodyError("the body must be sent as application/json", "not_json", 415)
        try:
            return parse_body(model, raw, max_bytes=MAX_BODY_BYTES)
        except BodyError as exc:
            if exc.code in _LIMIT_CODES:
                raise
            raise BodyError(exc.message, code, exc.status) from exc

    @app.get("/")
    def index():
        shown = station.kiosk_view()
        return render_template("kiosk.html", station=shown.station_id, voice=shown.voice)

    @app.get("/api/state")
    def state():
        return jsonify(view(station.kiosk_view()))

    @app.get("/api/stream")
    def stream():
        def snapshots():
            seen, ends = -1, time.monotonic() + STREAM_SECONDS
            while time.monotonic() < ends:
                seen = station.wait_changed(seen, STREAM_IDLE_SECONDS)
                yield f"data: {json.dumps(view(station.kiosk_view()), ensure_ascii=False)}\n\n"

        return Response(snapshots(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.post("/api/event")
    def event():
        sent = parsed(EventBody, "bad_event")
        name = sent.name
        if name not in ACTION_PAYLOADS:
            return jsonify(error=f"unknown action {name!r}", code="unknown_action"), 400
        try:
            payload = parse_model(ACTION_PAYLOADS[name], sent.payload).model_dump()
        except BodyError as exc:
            raise BodyError(f"payload of {name}: {exc.message}", "bad_event") from exc
        station.post(name, payload)
        return jsonify(ok=True), 202

    @app.post("/api/focus")
    def focus():
        station.focus(parsed(FocusBody, "bad_focus").visible)
        return jsonify(ok=True), 202

    @app.post("/api/help")
    def ask_for_help():
        """The candidate's 求助: a quick reason and an optional short text (station/messages.py)."""
        sent = parsed(HelpBody, "bad_help")
        try:
            local_id = station.ask_help(sent.reason, sent.text)
        except MessageError as exc:
            return jsonify(error=str(exc), code="bad_help"), 400
        return jsonify(ok=True, local_id=local_id), 202

    @app.post("/api/messages/<int:message_id>/ack")
    def acknowledge(message_id: int):
        """The candidate acknowledged a broadcast's banner; the edge logs it."""
        parsed(NoBody, "bad_ack")
        if not station.acknowledge(message_id):
            return jsonify(error="no such broadcast", code="unknown_message"), 404
        return jsonify(ok=True), 202

    @app.post("/api/messages/seen")
    def messages_seen():
        station.mark_seen(parsed(SeenBody, "bad_seen").upto)
        return jsonify(ok=True), 202

    @app.get("/preview.jpg")
    def preview():
        try:
            jpeg = station.preview_jpeg(PREVIEW_WIDTH)
        except ValueError:
            return Response(status=500)
        if jpeg is None:
            return Response(status=204)
        return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/paper/q/<int:position>/image/<int:index>")
    def paper_image(position: int, index: int):
        """A question's image, from the paper in memory: only while answering, only for the
        current or an answered question; never cached by the browser (no copy on disk)."""
        shown = station.kiosk_view()
        state = shown.state
        try:
            media_type, data = served_image(shown.paper, state.screen == Screen.ANSWERING, state.question,
                                            state.answered, position, index)
        except NotServed as exc:
            return jsonify(error=exc.reason, code="image_not_served"), exc.status
        return Response(data, mimetype=media_type, headers={"Cache-Control": "no-store",
                                                              "X-Content-Type-Options": "nosniff"})

    @app.get("/voice/<cue>.wav")
    def voice(cue: str):
        shown = station.kiosk_view()
        if cue not in PROMPTS or not shown.voice:
            abort(404)
        return send_from_directory(shown.voice_dir, f"{cue}.wav", mimetype="audio/wav", max_age=3600)

    @app.get("/api/devices")
    def devices():
        shown = station.kiosk_view()
        return jsonify(cameras=list_cameras(), microphones=list_microphones(), camera=shown.camera,
                       microphone=shown.microphone)

    add_watchback_routes(app, station)  # 回看: a mock attempt's recording, played back (watchback.py)
    return app


def voice_on(shown: KioskView) -> bool:
    """The centre's choice, sent with the attempt, else the station's config."""
    return shown.state.voice if shown.state.voice is not None else shown.voice


def view(shown: KioskView) -> dict[str, Any]:
    """Everything the page shows, derived from one snapshot of the station."""
    state = shown.state
    now = shown.now
    sch = state.schedule
    cand = state.candidate
    guidance = shown.live_guidance
    data: dict[str, Any] = {
        "screen": str(state.screen),
        "notice": state.notice,
        # Notices that are face guidance carry their text (the gate owns those messages).
        "notice_text": {"zh": GUIDANCE_ZH[state.notice], "en": GUIDANCE_EN[state.notice]}
        if state.notice in GUIDANCE_ZH else None,
        "guidance": None if guidance is None or state.screen != Screen.FACE_LOGIN else {
            "code": guidance, "zh": GUIDANCE_ZH[guidance], "en": GUIDANCE_EN[guidance]},
        "busy": state.busy,
        # The liveness challenge under way: which way to turn the head.
        "challenge": shown.live_challenge if state.screen == Screen.FACE_LOGIN else None,
        "server_time": now,
        "server_ok": bool(shown.server_ok),
        "station": shown.station_id,
        "mic_level": round(shown.mic_level, 3),
        "camera_ok": shown.camera_ok,
        "mic_ok": shown.mic_ok,
        "time_left": flow.time_left(state, now),
        "face_tries": state.face_tries,
        "max_face_tries": flow.MAX_FACE_TRIES,
        "lot": state.lot,
        "question": state.question,
        "answered": list(state.answered),
        "end_reason": state.end_reason,
        "interruptions": state.interruptions,
        "resume_cause": state.resume_cause,
        "moved_to": state.moved_to,
        "backlog": shown.backlog,
        # Sealed segments the station could not journal yet: staff were told; the page shows it.
        "recording_problem": list(shown.recording_problem) or None,
        "cue": ({"name": shown.last_cue[0], "at": shown.last_cue[1]}
                if voice_on(shown) and shown.last_cue and time.time() - shown.last_cue[1] < 5 else None),
        "candidate": None if cand is None else {
            "name": cand.name, "id_number_masked": cand.id_number_masked, "seat": cand.seat,
            "ticket_no": cand.ticket_no,
        },
        # Help chat and broadcasts: the current attempt's thread (or the station's own, before one).
        "messages": dict(shown.messages),
        "sitting": None if sch is None else {
            "id": sch.sitting, "kind": sch.kind, "timing_mode": str(sch.timing_mode), "questions": sch.questions,
            "early_finish": sch.early_finish,
            "starts_at": sch.starts_at, "waiting_opens_at": sch.waiting_opens_at,
            "entry_closes_at": sch.entry_closes_at, "lot_deadline_at": sch.lot_deadline_at,
        },
    }
    if state.screen in flow.READING_ORDER:
        data["reading"] = READING[str(state.screen)]
    if state.screen == Screen.ANSWERING and shown.paper and state.question:
        # The question's pages as text and its images as URLs this server answers from memory.
        data["paper"] = question_view(shown.paper, state.question)
    if shown.upload is not None:
        done, total, verified, count = shown.upload
        data["upload"] = {"bytes_done": done, "bytes_total": total, "verified": verified, "segments": count}
    return data


class KioskServer:
    def __init__(self, station: KioskPort, host: str, port: int):
        self._server = make_server(host, port, create_kiosk_app(station, port=port, bind_host=host), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kiosk", daemon=True)

    def start(self) -> "KioskServer":
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._server.shutdown()


def serve_kiosk(station: KioskPort, host: str, port: int) -> KioskServer:
    return KioskServer(station, host, port).start()
