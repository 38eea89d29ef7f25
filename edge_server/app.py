"""The edge server's Flask application factory."""
from __future__ import annotations

import logging
import sqlite3
import sys
from pathlib import Path

from flask import Flask, abort, jsonify, redirect, request, url_for
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException, InternalServerError

from edge_server import auth, cli
from edge_server.api import bp as api_bp
from edge_server.audience import AudienceGate
from edge_server.config import EdgeSettings, load_settings
from edge_server.errors import EdgeError
from edge_server.extensions import csrf, db, login_manager, migrate
from edge_server.staff import bp as staff_bp

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_app(settings: EdgeSettings | None = None) -> Flask:
    """Wire the app: extensions, blueprints, error handlers. No I/O beyond that."""
    settings = settings or load_settings()
    _log_to_stdout()
    app = Flask("edge_server")  # its logger is "edge_server"; templates and static under edge_server/
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        TESTING=settings.testing,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookies_secure,
        REMEMBER_COOKIE_SECURE=settings.cookies_secure,
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=settings.max_chunk_bytes + 64 * 1024,
    )
    app.extensions[auth.SETTINGS_EXTENSION] = settings

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "staff.login"

    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(staff_bp)

    cli.register(app)

    _error_handlers(app)
    _refuse_nul_characters(app)
    auth.refuse_undeclared(app)

    @app.get("/")
    @auth.public
    def index():
        return redirect(url_for("staff.dashboard"))

    @app.get("/healthz")
    @auth.public
    def healthz():
        return jsonify(ok=True)

    if settings.serve != "all":  # one instance per audience (edge_server/audience.py)
        app.wsgi_app = AudienceGate(app.wsgi_app, settings.serve)
    return app


def _refuse_nul_characters(app: Flask) -> None:
    """A NUL in the path, the query or a form field is refused before any view sees it (no database
    stores it: PostgreSQL refuses it outright). JSON bodies are checked by their parser."""
    @app.before_request
    def _no_nul():
        values = [request.path, *request.args.keys(), *request.args.values()]
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            values += [*request.form.keys(), *request.form.values()]
        if any("\x00" in value for value in values):
            if request.path.startswith("/api/"):
                raise EdgeError("the request holds a NUL character", code="bad_characters")
            abort(400, "the request holds a NUL character")


def _error_handlers(app: Flask) -> None:
    """Domain errors and refusals as ``{"error", "code"}`` JSON on the API; every 500 logged with its traceback."""
    @app.errorhandler(EdgeError)
    def _edge_error(exc: EdgeError):
        return jsonify(error=exc.message, code=exc.code), exc.status

    @app.errorhandler(413)
    def _too_large(exc):
        return jsonify(error="request body too large", code="too_large"), 413

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not request.path.startswith("/api/"):
            return exc
        return jsonify(error=exc.description or exc.name, code=exc.name.lower().replace(" ", "_")), exc.code

    @app.errorhandler(InternalServerError)
    def _internal_error(exc: InternalServerError):
        # Flask has logged the traceback (app.logger) before it calls this handler.
        if not request.path.startswith("/api/"):
            return exc
        return jsonify(error="internal server error", code="internal_error"), 500


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite in WAL mode with foreign keys, for every connection."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()


def _log_to_stdout() -> None:
    """The app's records (a 500's traceback among them) go to stdout for journald, unless the
    program (a CLI, gunicorn with a log config, pytest) has configured logging already."""
    app_logger = logging.getLogger("edge_server")
    if app_logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)
