"""An edge whose jobs run as under ``examkiosk-edge-worker``: the job context reads the configuration
file ``EXAMKIOSK_EDGE_CONFIG`` names, and the test works the queue itself when it chooses to."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq import SimpleWorker

from edge_server import auth, create_app
from edge_server.config import load_settings
from edge_server.jobs import context
from edge_server.services.login_limit import KEY_PREFIX
from edge_server.work_queue import queues
from provisioning.toml_file import write_toml
from tests.edge_server.conftest import SECRET_KEY


def worker_edge_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, db_url: str, redis_url: str, centre: str,
                    mqtt: dict[str, Any], queue_prefix: str) -> Flask:
    """The edge app of a configuration file the worker's jobs read too, on a queue of the test's own;
    no ``EXAMKIOSK_*`` setting of the environment and no sign-in limiter key of other tests leaks in."""
    for key in list(os.environ):
        if (key.startswith("EXAMKIOSK_") and key != "EXAMKIOSK_TEST_POSTGRES_URL") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    config_path = tmp_path / "edge.toml"
    write_toml(config_path, {
        "secret_key": SECRET_KEY, "database_url": db_url, "data_dir": str(tmp_path / "data"), "centre": centre,
        "redis_url": redis_url, "queue_name": f"{queue_prefix}-{uuid.uuid4().hex[:12]}", "testing": True,
        "discovery": {"enabled": False}, "storage": {"directory": str(tmp_path / "central")}, "mqtt": mqtt,
    })
    monkeypatch.setenv("EXAMKIOSK_EDGE_CONFIG", str(config_path))
    monkeypatch.setattr(context, "_app", None)
    limits = Redis.from_url(redis_url)
    try:
        for key in limits.scan_iter(f"{KEY_PREFIX}:*"):
            limits.delete(key)
    finally:
        limits.close()
    return create_app(load_settings(config_path))


def work_queued_jobs(app: Flask) -> None:
    """The worker: runs every job queued so far (pushes first, as ``examkiosk-edge-worker`` does)."""
    settings = auth.settings(app)
    redis = Redis.from_url(settings.redis_url)
    try:
        SimpleWorker(queues(settings, redis), connection=redis).work(burst=True, with_scheduler=False)
    finally:
        redis.close()
