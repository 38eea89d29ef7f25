"""Helpers for the regional server's tests: settings, migrations, users and signing in."""
from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask_migrate import upgrade
from sqlalchemy import select
from sqlalchemy.engine import make_url

from region_server import create_app
from region_server.auth import settings
from region_server.config import RegionSettings, load_settings
from region_server.extensions import db
from region_server.indexer import index_once
from region_server.jobs import verify_in_app
from region_server.models import Attempt, Role
from region_server.store import store_for
from region_server.users import create_user
from tests.services import free_port

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "region_server" / "migrations"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres:examkiosk@127.0.0.1:5432/test"
SECRET_KEY = "test-region-secret"
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def postgres_admin_url() -> str:
    return os.environ.get("EXAMKIOSK_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def pg_admin():
    import psycopg

    url = make_url(postgres_admin_url()).set(drivername="postgresql")
    try:
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {url.render_as_string()} is not reachable ({exc})", pytrace=False)


def pg_url(name: str) -> str:
    return make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(name: str) -> None:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def clean_environment() -> Iterator[None]:
    """No ``EXAMKIOSK_REGION_*`` from the developer's shell: environment beats init values."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("EXAMKIOSK_REGION_"):
                mp.delenv(key)
        yield


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> RegionSettings:
    values: dict[str, Any] = {
        "secret_key": SECRET_KEY,
        "database_url": database_url,
        "data_dir": data_dir,
        "storage": {"backend": "directory", "directory": data_dir / "central"},
        # Nothing listens here: a job that tries to reach Redis fails fast.
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "testing": True,
    }
    values.update(overrides)
    with clean_environment():
        return load_settings(Path("/nonexistent/region.toml"), **values)


@contextlib.contextmanager
def logging_preserved() -> Iterator[None]:
    """Alembic's env.py calls ``logging.config.fileConfig``, which disables existing loggers; undo it."""
    root = logging.getLogger()
    root_state = (root.level, list(root.handlers))
    loggers = {name: (lg.disabled, lg.level, list(lg.handlers), lg.propagate)
               for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    try:
        yield
    finally:
        root.setLevel(root_state[0])
        root.handlers[:] = root_state[1]
        for name, lg in logging.root.manager.loggerDict.items():
            if not isinstance(lg, logging.Logger):
                continue
            if name in loggers:
                lg.disabled, lg.level, handlers, lg.propagate = loggers[name]
                lg.handlers[:] = handlers
            else:
                lg.disabled = False
                lg.handlers[:] = []
                lg.setLevel(logging.NOTSET)
                lg.propagate = True


def dispose_app(app) -> None:
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def run_migrations(database_url: str, data_dir: Path) -> None:
    """``flask db upgrade`` in-process, into ``database_url``."""
    app = create_app(make_settings(database_url, data_dir))
    try:
        with logging_preserved(), app.app_context():
            upgrade(directory=str(MIGRATIONS_DIR))
    finally:
        dispose_app(app)


def make_user(app, username: str = "admin", role: Role = Role.REGIONAL_ADMIN, password: str = PASSWORD) -> None:
    """A regional user, committed."""
    with app.app_context():
        create_user(db.session, username, password, role)
        db.session.commit()


def sign_in(app, username: str = "admin", password: str = PASSWORD):
    """A test client signed in as ``username``."""
    client = app.test_client()
    token = _CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    resp = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client


def index_all(app, **kwargs: Any):
    """One index pass in the app's context; returns its report."""
    with app.app_context():
        try:
            return index_once(db.session, store_for(app), settings(app).index, **kwargs)
        finally:
            db.session.remove()


def verify_all(app, rehash: bool = True) -> dict[str, str]:
    """Verify every attempt in-process (HEAD, chain, and the full re-hash); returns {prefix: verification}."""
    with app.app_context():
        try:
            for attempt_id in db.session.scalars(select(Attempt.id).order_by(Attempt.id)).all():
                verify_in_app(app, attempt_id, rehash=rehash)
            return {a.prefix: str(a.verification) for a in db.session.scalars(select(Attempt))}
        finally:
            db.session.remove()


def browser_sign_in(page, base_url: str, username: str = "admin", password: str = PASSWORD) -> None:
    """Sign in through the page in Chromium, as a person does."""
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
