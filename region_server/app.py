"""The regional server's Flask application factory."""
from __future__ import annotations

import logging
import sqlite3
import sys
from pathlib import Path

from flask import Flask, jsonify, redirect
from flask_login import current_user
from sqlalchemy import event
from sqlalchemy.engine import Engine

from region_server import auth
from region_server.config import SETTINGS_EXTENSION, RegionSettings, load_settings
from region_server.errors import RegionError
from region_server.extensions import csrf, db, login_manager, migrate
from region_server.marking import bp as marking_bp
from region_server.models import Role
from region_server.pages import bp as pages_bp
from region_server.review import bp as review_bp

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The header's links: (endpoint, label, roles that see it); an endpoint the app lacks is left out.
NAV_LINKS = (
    ("region.overview", "总览 Overview", (Role.REGIONAL_ADMIN, Role.REVIEWER)),
    ("region.problems", "问题 Problems", (Role.REGIONAL_ADMIN, Role.REVIEWER)),
    ("review.index", "复核 Review", (Role.REGIONAL_ADMIN, Role.REVIEWER)),
    ("marking.index", "评分 Marking", (Role.REGIONAL_ADMIN, Role.MARKER)),
)


def create_app(settings: RegionSettings | None = None) -> Flask:
    """Wire the app: extensions, blueprints, error handlers. No I/O beyond that."""
    settings = settings or load_settings()
    _log_to_stdout()
    app = Flask("region_server")  # templates and static under region_server/
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        TESTING=settings.testing,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
    )
    app.extensions[SETTINGS_EXTENSION] = settings

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"

    app.register_blueprint(auth.bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(review_bp)
    app.register_blueprint(marking_bp)

    _error_handlers(app)
    auth.refuse_undeclared(app)

    @app.context_processor
    def _nav():
        def nav_links() -> list[tuple[str, str]]:
            role = auth.current_role()
            return [(endpoint, label) for endpoint, label, roles in NAV_LINKS
                    if role in roles and endpoint in app.view_functions]
        return {"nav_links": nav_links}

    @app.get("/")
    @auth.public
    def index():
        return redirect(auth.home_url(auth.current_role()) if current_user.is_authenticated else "/login")

    @app.get("/healthz")
    @auth.public
    def healthz():
        return jsonify(ok=True)

    return app


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(RegionError)
    def _region_error(exc: RegionError):
        return jsonify(error=exc.message, code=exc.code), exc.status


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite in WAL mode with foreign keys, for every connection. ``synchronous=NORMAL``: a commit does
    not wait for the disk (WAL keeps the file consistent; a power cut may lose the last commits, which the
    next index pass finds again: every row here is derived from central storage)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()


def _log_to_stdout() -> None:
    """The app's records go to stdout for journald, unless logging is configured already."""
    app_logger = logging.getLogger("region_server")
    if app_logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)
