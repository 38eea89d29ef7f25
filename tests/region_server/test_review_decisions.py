"""Flag decisions over HTTP: a decision on a flag the manifest lacks, or an unknown decision, is
refused with a message and changes nothing; markers may not decide; a lot without files says so."""
from __future__ import annotations

import re

import pytest

from region_server.extensions import db
from region_server.models import Role
from region_server.review.models import FlagDecision
from tests.region_server import review_world as world
from tests.region_server.helpers import make_user, sign_in

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_decisions_are_refused_and_change_nothing(app, central):
    world.write_sitting(central.writer.put, lots=(7,))
    world.index(app)
    make_user(app, "reviewer", Role.REVIEWER)
    make_user(app, "marker", Role.MARKER)
    _, attempts = world.ids(app)
    reviewer = sign_in(app, "reviewer")
    page = reviewer.get(f"/review/attempts/{attempts[7]}/q/1").get_data(as_text=True)
    token = TOKEN.search(page).group(1)
    url = f"/review/attempts/{attempts[7]}/flags"
    for form, message in [({"flag_key": "no_face@1.000", "decision": "no_issue"}, "attempt has no flag"),
                          ({"flag_key": "no_face@1003.000", "decision": "maybe"}, "unknown decision")]:
        resp = reviewer.post(url, data={**form, "question": "1", "csrf_token": token}, follow_redirects=True)
        assert resp.status_code == 200 and message in resp.get_data(as_text=True)
    assert reviewer.post(url, data={"flag_key": "no_face@1003.000", "decision": "no_issue"}).status_code == 400
    marker = sign_in(app, "marker")
    own_token = TOKEN.search(marker.get("/marking/").get_data(as_text=True)).group(1)
    assert marker.post(url, data={"flag_key": "no_face@1003.000", "decision": "no_issue",
                                  "csrf_token": own_token}).status_code == 403
    with app.app_context():
        assert db.session.scalars(db.select(FlagDecision)).all() == []
    resp = reviewer.post(url, data={"flag_key": "no_face@1003.000", "decision": "no_issue", "question": "1",
                                    "csrf_token": token}, follow_redirects=True)
    assert "无问题 no issue · reviewer" in resp.get_data(as_text=True)
    assert reviewer.get(f"/review/attempts/{attempts[7]}/q/9").status_code == 404
