"""Edge server fixtures: a migrated database per test on SQLite and PostgreSQL, the app, a live server.

Every test that uses ``db_url`` (directly or through ``settings``/``app``/``client``/``live_server``)
runs twice, once per backend. The schema comes from the Alembic migrations, never from
``create_all``: they run once per session into a template (a SQLite file, a PostgreSQL
``ek_tpl_<uuid>`` database) that each test copies into a database of its own.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.engine import make_url

from edge_server import create_app
from edge_server.config import EdgeSettings, load_settings
from edge_server.extensions import db
from tests.services import free_port, served_app

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "edge_server" / "migrations"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres:examkiosk@127.0.0.1:5432/test"
SECRET_KEY = "test-secret-key"
MAX_CHUNK_BYTES = 256 * 1024


def postgres_admin_url() -> str:
    """The PostgreSQL database the tests connect to for CREATE/DROP DATABASE."""
    return os.environ.get("EXAMKIOSK_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@contextlib.contextmanager
def clean_environment() -> Iterator[None]:
    """No ``EXAMKIOSK_*``/``DATABASE_URL`` from the developer's shell: environment beats init values."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if (key.startswith("EXAMKIOSK_") and key != "EXAMKIOSK_TEST_POSTGRES_URL") or key == "DATABASE_URL":
                mp.delenv(key)
        yield


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> EdgeSettings:
    values: dict[str, Any] = {
        "secret_key": SECRET_KEY,
        "database_url": database_url,
        "data_dir": data_dir,
        "storage": {"directory": data_dir / "central"},
        # Nothing listens here: jobs that try to reach Redis fail fast (a local redis may be on 6379).
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        # Nor here: pushes and broker-user requests fail at once (a local Mosquitto may be on 1883).
        "mqtt": {"host": "127.0.0.1", "port": free_port(), "password": "no-broker"},
        "discovery": {"enabled": False},
        "testing": True,
        "max_chunk_bytes": MAX_CHUNK_BYTES,
    }
    values.update(overrides)
    with clean_environment():
        return load_settings(Path("/nonexistent/edge.toml"), **values)


@contextlib.contextmanager
def _logging_preserved() -> Iterator[None]:
    """Alembic's env.py calls ``logging.config.fileConfig``, which disables every existing logger
    and replaces the root handlers (pytest's capture among them). Put it all back afterwards."""
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
            else:  # created by alembic's config (alembic, sqlalchemy.engine, flask_migrate)
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
    from flask_migrate import upgrade

    app = create_app(make_settings(database_url, data_dir))
    try:
        with _logging_preserved(), app.app_context():
            upgrade(directory=str(MIGRATIONS_DIR))
    finally:
        dispose_app(app)


# --- templates, once per session ----------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; tests copy it."""
    base = tmp_path_factory.mktemp("sqlite-template")
    path = base / "template.db"
    run_migrations(f"sqlite:///{path}", base / "data")
    # The WAL is checkpointed when the last connection closes; nothing but the main file should be left.
    assert not path.with_name(path.name + "-wal").exists() or path.with_name(path.name + "-wal").stat().st_size == 0
    return path


def _pg_admin():
    import psycopg

    url = make_url(postgres_admin_url()).set(drivername="postgresql")
    try:
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {url.render_as_string()} is not reachable ({exc}); set "
                    "EXAMKIOSK_TEST_POSTGRES_URL or run the Makefile's database setup", pytrace=False)


def _pg_url(name: str) -> str:
    return make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(name: str) -> None:
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Name of a migrated PostgreSQL database used as ``TEMPLATE`` for each test's database."""
    name = f"ek_tpl_{uuid.uuid4().hex}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        run_migrations(_pg_url(name), tmp_path_factory.mktemp("pg-template"))
        yield name
    finally:
        _drop_pg_database(name)


# --- per test -----------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database of the test's own."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "edge.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("postgres_template")
    name = f"ek_{uuid.uuid4().hex}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    try:
        yield _pg_url(name)
    finally:
        _drop_pg_database(name)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> EdgeSettings:
    return make_settings(db_url, tmp_path / "data")


@pytest.fixture
def app(settings: EdgeSettings):
    app = create_app(settings)
    try:
        yield app
    finally:
        dispose_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app on a real socket (threaded werkzeug server); yields its base URL."""
    with served_app(app) as url:
        yield url
