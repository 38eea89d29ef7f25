"""Shared fixtures: real Redis and Mosquitto on free ports (helpers in ``tests/services.py``), a real S3
server (Ceph RADOS Gateway, ``tests/s3server.py``) started once when a test asks for it."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.s3server import CephMissing, CephS3, start_ceph_s3
from tests.services import MosquittoProc, RedisProc, start_mosquitto, start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProc]:
    """One private redis-server for the whole session (``.url``)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ceph_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephS3]:
    """One Ceph RADOS Gateway for the whole session (memstore): ``.endpoint``, ``.access_key``,
    ``.secret_key``, ``.region``, ``.client()`` and ``.bucket()`` for a fresh bucket."""
    try:
        server = start_ceph_s3(tmp_path_factory.mktemp("ceph-rgw"))
    except CephMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoProc]]:
    """``mosquitto_factory(centre, users)`` starts a private broker; all are stopped after the test."""
    brokers: list[MosquittoProc] = []

    def start(centre: str, users: dict[str, str], **kwargs) -> MosquittoProc:
        broker = start_mosquitto(tmp_path / f"broker-{len(brokers)}", centre, users, **kwargs)
        brokers.append(broker)
        return broker

    try:
        yield start
    finally:
        for broker in reversed(brokers):
            broker.stop()


CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(autouse=True)
def _pages_closed_after_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """The pages a test opens in the session's Chromium are closed after it: a page left open keeps
    polling (the kiosk every 300 ms, its preview every 400 ms) a server that is gone, and costs CPU
    for the rest of the session."""
    if "chromium" not in request.fixturenames:
        yield
        return
    browser = request.getfixturevalue("chromium")
    before = list(browser.contexts)
    yield
    for context in browser.contexts:
        if not any(context is kept for kept in before):
            context.close()


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
