"""The regional app: sign-in by role, every route declares a policy, markers never see the regional pages."""
from __future__ import annotations

from region_server.auth import policy_of
from region_server.models import Role
from tests.region_server.helpers import make_user, sign_in


def test_every_route_declares_a_policy(app):
    undeclared = [rule.endpoint for rule in app.url_map.iter_rules()
                  if rule.endpoint != "static" and not rule.endpoint.endswith(".static")
                  and policy_of(app.view_functions[rule.endpoint]) is None]
    assert undeclared == []


def test_sign_in_by_role_and_markers_kept_out_of_the_regional_pages(app):
    make_user(app, "admin", Role.REGIONAL_ADMIN)
    make_user(app, "marker", Role.MARKER)
    anonymous = app.test_client()
    assert anonymous.get("/region/").status_code == 302  # to the sign-in page
    admin = sign_in(app, "admin")
    assert admin.get("/region/").status_code == 200
    marker = sign_in(app, "marker")
    assert marker.get("/region/").status_code == 403


def test_a_wrong_password_is_refused_and_a_deactivated_user_cannot_sign_in(app):
    from region_server.extensions import db
    from region_server.users import deactivate

    make_user(app, "admin", Role.REGIONAL_ADMIN)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    import re

    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"username": "admin", "password": "wrong password!", "csrf_token": token})
    assert resp.status_code == 401 and "Wrong username or password" in resp.get_data(as_text=True)
    signed = sign_in(app, "admin")
    with app.app_context():
        deactivate(db.session, "admin")
        db.session.commit()
    assert signed.get("/region/").status_code == 302  # the session no longer loads the user
