"""Who may see which page: one policy per view, declared with a decorator every blueprint imports.

- ``@public``: anyone (sign-in, health).
- ``@roles_required(Role.REGIONAL_ADMIN, Role.REVIEWER)``: a signed-in, active user with one of the
  roles (403 for the others; anonymous visitors go to the sign-in page).

The policy is kept on the view (``policy_of``), so a test can enumerate every route, and the app
refuses a view that has none (``refuse_undeclared``). The sign-in and sign-out pages are here too,
with the one settings accessor (``settings()``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable, Literal

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from region_server import login_limit
from region_server.config import SETTINGS_EXTENSION, RegionSettings
from region_server.extensions import db, login_manager
from region_server.forms import LoginForm, LogoutForm
from region_server.models import Role, User
from region_server.users import authenticate

logger = logging.getLogger(__name__)

ALL_ROLES = (Role.REGIONAL_ADMIN, Role.REVIEWER, Role.MARKER)
REGION_STAFF = (Role.REGIONAL_ADMIN, Role.REVIEWER)  # who sees the regional pages (markers do not)
# Where each role lands after signing in (an endpoint; "/" if the app has none of that name).
HOME_ENDPOINTS = {Role.REGIONAL_ADMIN: "region.overview", Role.REVIEWER: "region.overview",
                  Role.MARKER: "marking.index"}

bp = Blueprint("auth", __name__, template_folder="templates")


@dataclass(frozen=True)
class Policy:
    audience: Literal["public", "users"]
    roles: frozenset[Role] = frozenset()


def policy_of(view: Callable[..., Any]) -> Policy | None:
    return getattr(view, "policy", None)


def _declare(view: Callable[..., Any], wrapper: Callable[..., Any], policy: Policy) -> Callable[..., Any]:
    if policy_of(view) is not None:
        raise TypeError(f"{view.__name__} already has a policy")
    wrapper.policy = policy  # type: ignore[attr-defined]
    return wrapper


def public(view: Callable[..., Any]) -> Callable[..., Any]:
    """Anyone may call the view."""
    return _declare(view, view, Policy("public"))


def roles_required(*roles: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A signed-in active user with one of ``roles``; anonymous visitors go to the sign-in page."""
    if not roles:
        raise TypeError("name the roles that may use the view")
    allowed = frozenset(Role(r) for r in roles)

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_role() not in allowed:
                abort(403)
            return view(*args, **kwargs)

        return _declare(view, wrapper, Policy("users", roles=allowed))

    return decorator


def current_role() -> Role | None:
    """The signed-in user's role, or None for an anonymous visitor."""
    if not current_user.is_authenticated:
        return None
    return Role(current_user.role)


def refuse_undeclared(app: Flask) -> None:
    """Every request to a view without a policy is refused (static files are public)."""
    @app.before_request
    def _declared():
        endpoint = request.endpoint
        if endpoint is None or endpoint == "static" or endpoint.endswith(".static"):
            return None
        if policy_of(app.view_functions[endpoint]) is None:
            logger.error("route %s (%s) declares no policy: refused", endpoint, request.path)
            abort(403)
        return None


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


def settings(app: Flask | None = None) -> RegionSettings:
    """The settings of ``app`` (default: the running app), as ``create_app`` stored them."""
    return (app or current_app).extensions[SETTINGS_EXTENSION]


def home_url(role: Role | None) -> str:
    endpoint = HOME_ENDPOINTS.get(role) if role else "auth.login"
    if endpoint is None or endpoint not in current_app.view_functions:
        return "/"
    return url_for(endpoint)


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        limits = login_limit.of(current_app, settings().redis_url)
        username, address = form.username.data, request.remote_addr or "unknown"
        until = limits.locked_until(username, address)
        if until is not None:  # refused before the password is hashed
            flash(f"尝试次数过多，请在 {until:%H:%M} UTC 之后再试 · Too many failed sign-ins: try again after "
                  f"{until:%H:%M} UTC", "error")
            return render_template("login.html", form=form), 429
        user = authenticate(db.session, username, form.password.data)
        if user is not None:
            limits.succeeded(username, address)
            login_user(user)
            return redirect(home_url(Role(user.role)))
        limits.failed(username, address)
        flash("用户名或密码错误 · Wrong username or password", "error")
        status = 401
    elif form.is_submitted():
        status = 400  # e.g. the CSRF token is missing or stale
    return render_template("login.html", form=form), status


@bp.post("/logout")
@roles_required(*ALL_ROLES)
def logout():
    if LogoutForm().validate_on_submit():
        logout_user()
    return redirect(url_for("auth.login"))
