"""Regional server fixtures: a migrated database per test on SQLite and PostgreSQL, the app, users.

Every test that uses ``db_url`` (directly or through ``settings``/``app``/``client``) runs twice,
once per backend. The schema comes from the Alembic migrations (``region_server/migrations``),
once per session into a template each test copies.
"""
from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from examkiosk_wire.chain import StationKey
from region_server.config import RegionSettings
from tests.region_server.central_data import DirWriter, S3Writer, Writer
from tests.region_server.helpers import dispose_app, drop_pg_database, make_settings, pg_admin, pg_url, run_migrations


@pytest.fixture(scope="session")
def region_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; tests copy it."""
    base = tmp_path_factory.mktemp("region-sqlite-template")
    path = base / "template.db"
    run_migrations(f"sqlite:///{path}", base / "data")
    return path


@pytest.fixture(scope="session")
def region_postgres_template() -> Iterator[str]:
    """Name of a migrated PostgreSQL database used as ``TEMPLATE`` for each test's database."""
    name = f"ekr_tpl_{uuid.uuid4().hex}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        run_migrations(pg_url(name), Path("/nonexistent/region-data"))
        yield name
    finally:
        drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database of the test's own."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("region_sqlite_template")
        path = tmp_path / "region.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("region_postgres_template")
    name = f"ekr_{uuid.uuid4().hex}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    try:
        yield pg_url(name)
    finally:
        drop_pg_database(name)


@dataclass
class Central:
    """Central storage for a test: the backend's name, a writer playing the edges, the region's settings."""

    backend: str
    writer: Writer
    storage: dict[str, Any]


@pytest.fixture
def central(request: pytest.FixtureRequest, tmp_path: Path) -> Central:
    """A directory by default; ``@pytest.mark.parametrize("central", ["directory", "s3"], indirect=True)``
    runs a test on a fresh bucket of the session's Ceph RADOS Gateway too."""
    backend = getattr(request, "param", "directory")
    if backend == "directory":
        root = tmp_path / "central"
        root.mkdir()
        return Central("directory", DirWriter(root), {"backend": "directory", "directory": root})
    ceph = request.getfixturevalue("ceph_s3")
    bucket = ceph.bucket()
    secret = ceph.write_secret(tmp_path / "s3-secret")
    return Central("s3", S3Writer(ceph.client(), bucket),
                   {"backend": "s3", "s3_endpoint_url": ceph.endpoint, "s3_bucket": bucket, "s3_region": ceph.region,
                    "s3_access_key": ceph.access_key, "s3_secret_key_file": secret})


@pytest.fixture(scope="session")
def station_key(tmp_path_factory: pytest.TempPathFactory) -> StationKey:
    return StationKey.load_or_create(tmp_path_factory.mktemp("station-key") / "station.pem")


@pytest.fixture
def settings(db_url: str, tmp_path: Path, central: Central) -> RegionSettings:
    return make_settings(db_url, tmp_path / "region-data", storage=central.storage,
                         index={"commit_every": 5, "lease_seconds": 60})


@pytest.fixture
def app(settings: RegionSettings):
    from region_server import create_app

    app = create_app(settings)
    try:
        yield app
    finally:
        dispose_app(app)


@pytest.fixture
def client(app):
    return app.test_client()
