"""Sign-in rate limits that cost nothing when they refuse: slots taken in Redis before a password is checked.

Each rule (one account, one address) is a fixed window of ``limit`` slots in Redis, kept by the
``limits`` library (what Flask-Limiter is built on): a try takes one slot of every rule with an
atomic ``INCRBY`` (``FixedWindowRateLimiter.hit``) *before* the password is hashed, so N tries at
once get at most ``limit`` slots between them and the others are refused after two Redis round
trips: no argon2 hash, no database row. A try whose password was right hands its slots back
(``refund``), so only failures stay counted; a refused try hands its own hit back at once, so the
counter always says how many failures (and checks in flight) hold a slot. The window starts with
the first slot taken and lasts ``window``; the lockout ends with it.

The first refusal of a lockout claims a marker key (``SET NX``) that expires with the window:
exactly one refusal per lockout is told ``first`` and writes the audit row; the others write nothing.

When Redis cannot be reached the limiter does not fail open and the sign-in page does not fail:
the same rules run on an in-process ``MemoryStorage`` (atomic within one gunicorn worker, not
across workers or restarts), and ``services.staff.sign_in`` also counts the failures in the
database as it did before (shared by every worker, but check-then-insert). Together: at most the
limit per worker while Redis is away, and the accounts stay locked that the database shows locked.
Redis is tried again ``REDIS_RETRY_SECONDS`` after a failure, so an outage costs one connect
timeout per few seconds, not one per try.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import Flask, current_app
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KEY_PREFIX = "examkiosk-login"
REDIS_RETRY_SECONDS = 5.0
_EXTENSION = "examkiosk.login_limiter"
_create_lock = threading.Lock()


@dataclass(frozen=True)
class Rule:
    """``limit`` failures per window for one ``key`` of a ``scope`` (``"user"``, ``"address"``)."""

    scope: str
    key: str
    limit: int


class Refused(Exception):
    """A rule has no slot left until ``until``; ``first`` for the one refusal of this lockout that says so."""

    def __init__(self, rule: Rule, until: datetime, first: bool):
        super().__init__(f"{rule.scope} {rule.key!r}: no sign-in slot left until {until.isoformat()}")
        self.rule, self.until, self.first = rule, until, first


@dataclass(frozen=True)
class Slots:
    """The slots one try holds; ``shared`` when they are in Redis (every worker sees them)."""

    rules: tuple[Rule, ...]
    window: timedelta
    storage: Storage
    shared: bool


class LoginLimiter:
    """One per app (``of(app)``): a Redis connection pool and the in-process fallback."""

    def __init__(self, redis_url: str):
        # Short timeouts: an unreachable Redis must not hold a sign-in for long (see the module doc).
        self._redis = RedisStorage(redis_url, key_prefix=KEY_PREFIX, wrap_exceptions=True,
                                   socket_connect_timeout=0.25, socket_timeout=0.5)
        self._memory = MemoryStorage()
        self._redis_retry_at = 0.0

    def reserve(self, rules: tuple[Rule, ...], window: timedelta) -> Slots:
        """A slot of every rule, or ``Refused`` (holding none) for the first rule that has none left."""
        if time.monotonic() >= self._redis_retry_at:
            try:
                return self._reserve(self._redis, rules, window, shared=True)
            except (StorageError, RedisError, OSError) as exc:
                self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
                logger.warning("sign-in limits: Redis unreachable (%s); counting in this process and the "
                               "database for %.0f s", exc, REDIS_RETRY_SECONDS)
        return self._reserve(self._memory, rules, window, shared=False)

    def refund(self, slots: Slots) -> None:
        """Hand the slots back (the password was right, or another check refused the try)."""
        try:
            for rule in slots.rules:
                _give_back(slots.storage, rule, slots.window)
        except (StorageError, RedisError, OSError) as exc:  # the slot expires with its window
            logger.warning("sign-in limits: could not hand a slot back (%s)", exc)

    def first_refusal(self, rule: Rule, until: datetime) -> bool:
        """For a refusal decided elsewhere (the database count): is it the first of this lockout?
        Marked in this process only (it is used while Redis is away)."""
        return _claim(self._memory, rule, max(0.001, (until - datetime.now(timezone.utc)).total_seconds()))

    def _reserve(self, storage: Storage, rules: tuple[Rule, ...], window: timedelta, *, shared: bool) -> Slots:
        strategy = FixedWindowRateLimiter(storage)
        taken: list[Rule] = []
        for rule in rules:
            if strategy.hit(_item(rule, window), rule.scope, rule.key):
                taken.append(rule)
                continue
            for held in (*taken, rule):  # this try holds nothing: the counters stay exact
                _give_back(storage, held, window)
            left = _seconds_left(storage, rule, window)
            until = datetime.now(timezone.utc) + timedelta(seconds=left)
            raise Refused(rule, until, first=_claim(storage, rule, left))
        return Slots(tuple(taken), window, storage, shared)


def of(redis_url: str, app: Flask | None = None) -> LoginLimiter:
    """The app's (default: the current app's) limiter, made on first use (in the gunicorn worker,
    after the fork) on ``redis_url`` (the app's settings)."""
    app = app or current_app._get_current_object()
    limiter = app.extensions.get(_EXTENSION)
    if limiter is None:
        with _create_lock:
            limiter = app.extensions.get(_EXTENSION)
            if limiter is None:
                limiter = app.extensions[_EXTENSION] = LoginLimiter(redis_url)
    return limiter


def _item(rule: Rule, window: timedelta) -> RateLimitItemPerSecond:
    return RateLimitItemPerSecond(rule.limit, int(window.total_seconds()), namespace="slots")


def _key(rule: Rule, window: timedelta) -> str:
    return _item(rule, window).key_for(rule.scope, rule.key)


def _give_back(storage: Storage, rule: Rule, window: timedelta) -> None:
    key = _key(rule, window)
    if storage.incr(key, int(window.total_seconds()), amount=-1) < 0:
        storage.clear(key)  # the window ended while the slot was held: nothing to hand back to


def _seconds_left(storage: Storage, rule: Rule, window: timedelta) -> float:
    """Until the rule's window ends (milliseconds from Redis, so the lockout marker ends with it)."""
    key = _key(rule, window)
    if isinstance(storage, RedisStorage):
        ms = storage.get_connection().pttl(storage.prefixed_key(key))
        return ms / 1000 if ms > 0 else window.total_seconds()
    return max(0.001, storage.get_expiry(key) - time.time())


def _claim(storage: Storage, rule: Rule, seconds: float) -> bool:
    """True for exactly one caller per lockout: a marker that lives as long as the window."""
    marker = f"locked/{rule.scope}/{rule.key}"
    if isinstance(storage, RedisStorage):
        return bool(storage.get_connection().set(storage.prefixed_key(marker), 1, nx=True,
                                                 px=max(1, math.ceil(seconds * 1000))))
    return storage.incr(marker, seconds) == 1
