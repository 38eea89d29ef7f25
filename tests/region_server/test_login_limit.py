"""Sign-in limits of the regional server (region_server/login_limit.py) with a real Redis: an account
with five wrong passwords is refused, even with the right one, before any password is hashed, until
its window ends; other accounts sign in; a right password clears the count; with Redis unreachable
the limit still holds and the page still answers."""
from __future__ import annotations

import re
import uuid

import pytest

from region_server import auth, login_limit
from tests.region_server.helpers import PASSWORD, make_settings, make_user
from tests.services import free_port

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture(params=["redis", "redis-unreachable"])
def limited_app(request, db_url, tmp_path, central):
    from region_server import create_app
    from tests.region_server.conftest import dispose_app

    redis_url = (request.getfixturevalue("redis_server").url if request.param == "redis"
                 else f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(make_settings(db_url, tmp_path / "region-data", storage=central.storage, redis_url=redis_url))
    # Names of the test's own: the session's Redis keeps counts across tests.
    app.config["names"] = names = {who: f"{who}-{uuid.uuid4().hex[:8]}" for who in ("admin", "other")}
    app.config["address"] = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    for name in names.values():
        make_user(app, name)
    try:
        yield app
    finally:
        dispose_app(app)


def browser(app, address: str | None = None):
    """A test client coming from the test's own address (or ``address``)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address or app.config["address"]
    return client


def try_sign_in(client, username: str, password: str):
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def test_five_wrong_passwords_lock_the_account_not_the_others(limited_app, monkeypatch):
    admin, other = limited_app.config["names"]["admin"], limited_app.config["names"]["other"]
    client = browser(limited_app)
    for _ in range(login_limit.ACCOUNT_FAILURES):
        assert try_sign_in(client, admin, "wrong password 1").status_code == 401
    checked: list[str] = []
    real = auth.authenticate
    monkeypatch.setattr(auth, "authenticate", lambda session, name, pw: checked.append(name) or real(session, name, pw))
    refused = try_sign_in(client, admin, PASSWORD)
    assert refused.status_code == 429
    assert "Too many failed sign-ins: try again after" in refused.get_data(as_text=True)
    assert checked == [], "a locked account's password must not even be checked"
    assert try_sign_in(browser(limited_app), f" {admin.upper()}", PASSWORD).status_code == 429, "the same account"
    assert try_sign_in(browser(limited_app), other, PASSWORD).status_code == 302


def test_a_right_password_clears_the_accounts_count(limited_app):
    admin = limited_app.config["names"]["admin"]
    client = browser(limited_app)
    for _ in range(login_limit.ACCOUNT_FAILURES - 1):
        assert try_sign_in(client, admin, "wrong password 1").status_code == 401
    assert try_sign_in(browser(limited_app), admin, PASSWORD).status_code == 302
    for _ in range(login_limit.ACCOUNT_FAILURES - 1):  # a fresh count: these do not lock it yet
        assert try_sign_in(client, admin, "wrong password 1").status_code == 401
    assert try_sign_in(browser(limited_app), admin, PASSWORD).status_code == 302


def test_an_address_that_keeps_failing_is_refused_for_every_account(limited_app):
    other = limited_app.config["names"]["other"]
    flood = browser(limited_app)
    for n in range(login_limit.ADDRESS_FAILURES):
        assert try_sign_in(flood, f"nobody-{n}", "wrong password 1").status_code == 401
    assert try_sign_in(browser(limited_app), other, PASSWORD).status_code == 429
    assert try_sign_in(browser(limited_app, "10.250.250.250"), other, PASSWORD).status_code == 302
