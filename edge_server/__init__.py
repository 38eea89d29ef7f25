"""The edge server's Flask application factory."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy import event
from sqlalchemy.engine import Engine

from edge_server.config import EdgeSettings, load_settings
from edge_server.errors import EdgeError


def create_app(settings: EdgeSettings | None = None) -> Flask:
    """Wire the app: extensions, blueprints, error handlers. No I/O beyond that."""
    settings = settings or load_settings()
    app = Flask(__name__)
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
    app.extensions["examkiosk.settings"] = settings

    from edge_server.extensions import csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "staff.login"

    from edge_server.api import bp as api_bp
    from edge_server.region import bp as region_bp
    from edge_server.staff import bp as staff_bp

    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(region_bp)

    from edge_server import cli

    cli.register(app)

    @app.errorhandler(EdgeError)
    def _edge_error(exc: EdgeError):
        return jsonify(error=exc.message, code=exc.code), exc.status

    @app.errorhandler(413)
    def _too_large(exc):
        return jsonify(error="request body too large", code="too_large"), 413

    @app.get("/")
    def index():
        from flask import redirect, url_for

        return redirect(url_for("staff.dashboard"))

    @app.get("/healthz")
    def healthz():
        return jsonify(ok=True)

    return app


def settings_of(app: Flask) -> EdgeSettings:
    return app.extensions["examkiosk.settings"]


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).parent / "migrations"


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite in WAL mode with foreign keys, for every connection."""
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()


logging.getLogger(__name__).addHandler(logging.NullHandler())
