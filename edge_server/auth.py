"""Who may call which route: one policy per view, declared with a decorator every blueprint imports.

- ``@public``: anyone (the sign-in page, enrolment with a one-time code, health, tus discovery).
- ``@station(attempt=...)``: a station's bearer token. A route with ``<attempt_id>`` names how far
  the station may reach: ``"current"`` (the station the candidate sits at now) or ``"handover"``
  (also a station the seat map moved the candidate away from: it reads the attempt, reports its
  events, uploads and declares its segments). Any other station, of this centre or another, is told
  the attempt does not exist (404 ``attempt_unknown``). ``<upload_id>`` routes serve the station's
  own uploads only, ``<sitting_id>`` routes the station's own centre's sittings (both in services).
- ``@staff(*roles)``: a signed-in staff member with one of ``roles`` (403 for the others); what
  they see is their own centre's (``current_centre``).

The policy is kept on the view (``policy_of``), so a test can enumerate every route of the app, and
the app refuses a view that has none (``refuse_undeclared``): a new route without a policy is a 403
and a logged error, never an open door.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable, Literal

from flask import Flask, abort, current_app, g, request
from flask_login import current_user, login_required

from edge_server.bodies import parse_json_body
from edge_server.config import EdgeSettings
from edge_server.extensions import db, login_manager
from edge_server.models import StaffRole, StaffUser
from edge_server.services import attempts as attempt_service
from edge_server.services import stations
from examkiosk_wire.bodies import Body

logger = logging.getLogger(__name__)

AttemptReach = Literal["current", "handover"]
ALL_STAFF = (StaffRole.PROCTOR, StaffRole.CENTRE_ADMIN, StaffRole.REGIONAL_ADMIN)
CENTRE_STAFF = (StaffRole.PROCTOR, StaffRole.CENTRE_ADMIN)


@dataclass(frozen=True)
class Policy:
    audience: Literal["public", "station", "staff"]
    roles: frozenset[StaffRole] = frozenset()
    attempt: AttemptReach | None = None
    body: type[Body] | None = None  # the JSON body the view takes (it gets it as ``body=``)


def policy_of(view: Callable[..., Any]) -> Policy | None:
    return getattr(view, "policy", None)


def _declare(view: Callable[..., Any], wrapper: Callable[..., Any], policy: Policy) -> Callable[..., Any]:
    if policy_of(view) is not None:
        raise TypeError(f"{view.__name__} already has a policy")
    wrapper.policy = policy  # type: ignore[attr-defined]
    return wrapper


def _with_body(view: Callable[..., Any], body: type[Body] | None) -> Callable[..., Any]:
    if body is None:
        return view

    @wraps(view)
    def parsed(*args: Any, **kwargs: Any) -> Any:
        return view(*args, body=parse_json_body(body), **kwargs)

    return parsed


def public(view: Callable[..., Any] | None = None, *, body: type[Body] | None = None):
    """Anyone may call the view."""
    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        return _declare(view, _with_body(view, body), Policy("public", body=body))

    return decorator(view) if view is not None else decorator


def station(view: Callable[..., Any] | None = None, *, attempt: AttemptReach | None = None,
            body: type[Body] | None = None):
    """A station's bearer token (``g.station``); with ``attempt``, ``g.attempt`` is the route's attempt;
    with ``body``, the view gets the parsed JSON body as ``body=`` (a 4xx before it runs otherwise)."""
    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        inner = _with_body(view, body)

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.station = stations.authenticate(db.session, request.headers.get("Authorization"))
            if attempt is not None:
                g.attempt = attempt_service.get_attempt(db.session, g.station, kwargs["attempt_id"],
                                                        handover=attempt == "handover")
            return inner(*args, **kwargs)

        return _declare(view, wrapper, Policy("station", attempt=attempt, body=body))

    return decorator(view) if view is not None else decorator


def staff(*roles: StaffRole):
    """A signed-in staff member with one of ``roles``; anonymous visitors go to the sign-in page."""
    if not roles:
        raise TypeError("name the roles that may use the view")

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return _declare(view, wrapper, Policy("staff", roles=frozenset(roles)))

    return decorator


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
def load_user(user_id: str) -> StaffUser | None:
    return db.session.get(StaffUser, int(user_id))


SETTINGS_EXTENSION = "examkiosk.settings"


def settings(app: Flask | None = None) -> EdgeSettings:
    """The settings of ``app`` (default: the running app), as ``create_app`` stored them."""
    return (app or current_app).extensions[SETTINGS_EXTENSION]


def current_centre() -> str:
    """The centre a staff member acts for: their own, or the edge's for a regional admin."""
    return current_user.centre_id or settings().centre
