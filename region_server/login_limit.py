"""Sign-in limits of the regional server: wrong passwords counted per account and per address.

The counts live in Redis as fixed windows of the ``limits`` library (what Flask-Limiter is built
on), shared by every gunicorn worker. A sign-in is refused *before* its password is hashed once the
account (``ACCOUNT_FAILURES``) or the address (``ADDRESS_FAILURES``) has used up its failures of the
window (``WINDOW_MINUTES``): a flood costs Redis round trips, not argon2 hashes, and ends with the window.
A right password clears its account's count. When Redis cannot be reached the same rules count in
this process (``MemoryStorage``), tried again every ``REDIS_RETRY_SECONDS``: the limit then holds
per worker, and the sign-in page never fails for it.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from flask import Flask
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

WINDOW_MINUTES = 15
ACCOUNT_FAILURES = 5
ADDRESS_FAILURES = 30
REDIS_RETRY_SECONDS = 5.0
KEY_PREFIX = "examkiosk-region-login"
_EXTENSION = "examkiosk.region.login_limits"
_create_lock = threading.Lock()
_UNREACHABLE = (StorageError, RedisError, OSError)


class SignInLimits:
    def __init__(self, redis_url: str):
        self._redis = RedisStorage(redis_url, key_prefix=KEY_PREFIX, wrap_exceptions=True,
                                   socket_connect_timeout=0.25, socket_timeout=0.5)
        self._memory = MemoryStorage()
        self._redis_retry_at = 0.0

    def _rules(self, username: str, address: str) -> tuple[tuple[RateLimitItemPerMinute, str, str], ...]:
        return ((RateLimitItemPerMinute(ACCOUNT_FAILURES, WINDOW_MINUTES), "account", username.strip().lower()),
                (RateLimitItemPerMinute(ADDRESS_FAILURES, WINDOW_MINUTES), "address", address))

    def locked_until(self, username: str, address: str) -> datetime | None:
        """When the first exhausted rule of this try's account or address opens again; None: go on."""
        def check(strategy: FixedWindowRateLimiter) -> datetime | None:
            for item, scope, key in self._rules(username, address):
                if not strategy.test(item, scope, key):
                    reset = strategy.get_window_stats(item, scope, key).reset_time
                    return datetime.fromtimestamp(reset, timezone.utc)
            return None

        return self._with_storage(check)

    def failed(self, username: str, address: str) -> None:
        def hit(strategy: FixedWindowRateLimiter) -> None:
            for item, scope, key in self._rules(username, address):
                strategy.hit(item, scope, key)

        self._with_storage(hit)

    def succeeded(self, username: str, address: str) -> None:
        """A right password: its account starts afresh (the address keeps its count)."""
        item, scope, key = self._rules(username, address)[0]
        self._with_storage(lambda strategy: strategy.clear(item, scope, key))

    def _with_storage(self, work):
        if time.monotonic() >= self._redis_retry_at:
            try:
                return work(FixedWindowRateLimiter(self._redis))
            except _UNREACHABLE as exc:
                self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
                logger.warning("sign-in limits: Redis unreachable (%s); counting in this process for %.0f s",
                               exc, REDIS_RETRY_SECONDS)
        return work(FixedWindowRateLimiter(self._memory))


def of(app: Flask, redis_url: str) -> SignInLimits:
    """The app's limits, made on first use (in the gunicorn worker, after the fork)."""
    limits = app.extensions.get(_EXTENSION)
    if limits is None:
        with _create_lock:
            limits = app.extensions.get(_EXTENSION)
            if limits is None:
                limits = app.extensions[_EXTENSION] = SignInLimits(redis_url)
    return limits
