"""Sign-in limits against a real HTTP server and a real Redis (issue 11, finding 3).

The lockout used to be check-then-insert in the database: parallel bad sign-ins each counted the
failures before any was stored, so more than MAX_FAILURES were checked (12 against 5), the
address limit filled up with them, and every refused try wrote an audit row. Now each try takes a
slot in Redis before its password is hashed (``services/login_limit.py``).
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import func, select

from edge_server.extensions import db
from edge_server.models import Event, LoginAttempt, StaffRole
from edge_server.services import staff as staff_service
from edge_server.services.login_limit import KEY_PREFIX
from edge_server.services.staff import MAX_FAILURES, create_user
from tests.edge_server.conftest import make_settings
from tests.edge_server.helpers import make_centre

PASSWORD = "correct horse battery"
WRONG = "wrong password!"
FLOOD = 40  # parallel tries: more than MAX_FAILURES_PER_ADDRESS, so the old overshoot locked the address
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def redis_reachable() -> bool:
    return True  # a test parametrizes it to False


@pytest.fixture
def settings(db_url: str, tmp_path: Path, redis_server, redis_reachable: bool):
    """The edge's settings with the session's real Redis (no limiter keys left from other tests),
    or, for ``redis_reachable=False``, a port where nothing listens."""
    if not redis_reachable:
        return make_settings(db_url, tmp_path / "data")
    client = redis.Redis.from_url(redis_server.url)
    for key in client.scan_iter(f"{KEY_PREFIX}:*"):
        client.delete(key)
    return make_settings(db_url, tmp_path / "data", redis_url=redis_server.url)


@pytest.fixture
def staffed(app, live_server) -> str:
    with app.app_context():
        make_centre(db.session, "c1")
        for name, role in (("admin", StaffRole.CENTRE_ADMIN), ("proctor", StaffRole.PROCTOR),
                           ("second", StaffRole.PROCTOR)):
            create_user(db.session, name, PASSWORD, role, "c1")
        db.session.commit()
    return live_server


def login_form(base: str) -> tuple[requests.Session, str]:
    """A browser's session and the CSRF token of its sign-in page."""
    session = requests.Session()
    return session, _CSRF.search(session.get(f"{base}/staff/login", timeout=30).text).group(1)


def post_login(session: requests.Session, token: str, base: str, username: str, password: str) -> int:
    return session.post(f"{base}/staff/login", data={"username": username, "password": password, "csrf_token": token},
                        allow_redirects=False, timeout=60).status_code


def try_sign_in(base: str, username: str, password: str) -> int:
    return post_login(*login_form(base), base, username, password)


def flood(base: str, username: str, n: int = FLOOD) -> list[int]:
    """``n`` wrong-password sign-ins at once, each from its own session with a real CSRF token."""
    forms = [login_form(base) for _ in range(n)]
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def one(session: requests.Session, token: str) -> None:
        barrier.wait()
        statuses.append(post_login(session, token, base, username, WRONG))

    threads = [threading.Thread(target=one, args=form) for form in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(statuses) == n
    return statuses


def failures(app, username: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(LoginAttempt)
                                 .where(LoginAttempt.username == username, LoginAttempt.ok.is_(False)))


def events(app, kind: str | None = None) -> int:
    with app.app_context():
        query = select(func.count()).select_from(Event)
        return db.session.scalar(query.where(Event.kind == kind) if kind else query)


def rows(app) -> tuple[int, int]:
    with app.app_context():
        return events(app), db.session.scalar(select(func.count()).select_from(LoginAttempt))


def test_parallel_bad_sign_ins_record_exactly_the_limit(app, staffed):
    statuses = flood(staffed, "admin")
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) == MAX_FAILURES  # exactly that many passwords were checked
    assert failures(app, "admin") == MAX_FAILURES
    assert events(app, "staff_login_failed") == MAX_FAILURES
    assert try_sign_in(staffed, "admin", PASSWORD) == 429  # locked: the right password is not checked


def test_a_refused_try_hashes_nothing_and_writes_nothing(app, staffed, monkeypatch):
    for _ in range(MAX_FAILURES):
        assert try_sign_in(staffed, "admin", WRONG) == 401
    assert try_sign_in(staffed, "admin", WRONG) == 429  # the first refusal writes the lockout's audit row
    before = rows(app)
    hashed: list[str] = []
    real = staff_service._hasher

    class CountingHasher:
        def hash(self, password):
            hashed.append("hash")
            return real.hash(password)

        def verify(self, stored, password):
            hashed.append("verify")
            return real.verify(stored, password)

    monkeypatch.setattr(staff_service, "_hasher", CountingHasher())
    for password in (WRONG, PASSWORD, WRONG):
        assert try_sign_in(staffed, "admin", password) == 429
    assert rows(app) == before  # no Event, no LoginAttempt row
    assert hashed == []
    assert try_sign_in(staffed, "proctor", PASSWORD) == 302  # the hasher is in place: another account is checked
    assert hashed == ["verify"]


def test_one_audit_row_per_lockout(app, staffed):
    flood(staffed, "admin")
    for _ in range(3):
        assert try_sign_in(staffed, "admin", PASSWORD) == 429
    assert events(app, "staff_login_locked") == 1
    flood(staffed, "proctor")  # another account's lockout is a lockout of its own
    assert events(app, "staff_login_locked") == 2
    with app.app_context():
        payloads = db.session.scalars(select(Event.payload).where(Event.kind == "staff_login_locked")
                                      .order_by(Event.id)).all()
    assert [(p["user"], p["scope"]) for p in payloads] == [("admin", "user"), ("proctor", "user")]


def test_a_good_password_signs_in_until_its_own_account_is_locked(app, staffed):
    # A flood against one account from this address does not lock a colleague at the same desk:
    # only the MAX_FAILURES checked tries count against the address.
    flood(staffed, "proctor")
    for _ in range(MAX_FAILURES - 1):
        assert try_sign_in(staffed, "admin", WRONG) == 401
    session, token = login_form(staffed)
    assert post_login(session, token, staffed, "admin", PASSWORD) == 302
    assert session.get(f"{staffed}/staff/", allow_redirects=False, timeout=30).status_code == 200
    # The sign-in took no failure slot: one more failure is allowed, then the account is locked.
    assert try_sign_in(staffed, "admin", WRONG) == 401
    assert try_sign_in(staffed, "admin", PASSWORD) == 429
    assert failures(app, "admin") == MAX_FAILURES
    assert try_sign_in(staffed, "second", PASSWORD) == 302


@pytest.mark.parametrize("redis_reachable", [False], ids=["redis-unreachable"])
def test_without_redis_the_limit_still_holds_and_the_page_never_fails(app, staffed):
    """Redis away: in-process slots (atomic in this worker) and the database count, never a 500."""
    statuses = flood(staffed, "admin")
    assert set(statuses) <= {401, 429}
    assert 1 <= statuses.count(401) <= MAX_FAILURES
    while try_sign_in(staffed, "admin", WRONG) == 401:  # fill what the flood left (the count is a floor)
        pass
    assert failures(app, "admin") == MAX_FAILURES
    assert try_sign_in(staffed, "admin", PASSWORD) == 429
    assert events(app, "staff_login_locked") == 1
    assert try_sign_in(staffed, "proctor", PASSWORD) == 302
