"""Shared fixtures: real Redis and Mosquitto on free ports (helpers in ``tests/services.py``)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.services import MosquittoProc, RedisProc, start_mosquitto, start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProc]:
    """One private redis-server for the whole session (``.url``)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
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
