"""Scores, scales and assignments as services: a score lies on the sitting's scale and names a
question the lot has, or nothing changes; every change is one audit row, an unchanged save none."""
from __future__ import annotations

import pytest

from region_server import audit
from region_server.extensions import db
from region_server.marking import access, scoring
from region_server.models import Attempt, Role, Sitting, User
from tests.region_server import review_world as world
from tests.region_server.helpers import make_user


@pytest.fixture
def lot(app, central):
    world.write_sitting(central.writer.put, lots=(7,))
    world.index(app)
    make_user(app, "marker", Role.MARKER)
    sitting_id, attempts = world.ids(app)
    with app.app_context():
        yield (db.session.get(Sitting, sitting_id), db.session.get(Attempt, attempts[7]),
               db.session.scalars(db.select(User).where(User.username == "marker")).one())


def test_a_score_must_lie_on_the_scale_and_name_a_question(app, lot):
    sitting, attempt, marker = lot
    session = db.session
    scoring.set_scale(session, sitting, 0, 10, 0.5, by="admin")
    for value, message in [(10.5, "between 0 and 10"), (-1, "between 0 and 10"), (7.25, "steps of 0.5"),
                           (float("nan"), "between 0 and 10")]:
        with pytest.raises(scoring.ScoringError, match=message):
            scoring.save_score(session, attempt, 1, marker, value, "")
    with pytest.raises(scoring.ScoringError, match="no question 3"):
        scoring.save_score(session, attempt, 3, marker, 5, "")
    with pytest.raises(scoring.ScoringError, match="longer than"):
        scoring.save_score(session, attempt, 1, marker, 5, "x" * (scoring.NOTE_LIMIT + 1))
    with pytest.raises(scoring.ScoringError, match="not a number"):
        scoring.parse_score("seven")
    for bad in [(5, 5, 1), (0, 10, 0), (0, 10, -1), (0, 1e9, 0.001)]:
        with pytest.raises(scoring.ScoringError):
            scoring.set_scale(session, sitting, *bad, by="admin")
    assert session.scalars(db.select(scoring.Score)).all() == []


def test_each_change_is_one_audit_row_and_an_unchanged_save_none(app, lot):
    sitting, attempt, marker = lot
    session = db.session
    scoring.save_score(session, attempt, 1, marker, 7, "")
    scoring.save_score(session, attempt, 1, marker, 7, "")  # the same again: nothing to record
    scoring.save_score(session, attempt, 1, marker, 8, "更好 better")
    session.commit()
    rows = [r for r in reversed(audit.rows(session)) if r.action == "score.saved"]
    assert [(r.actor, r.payload["value"], r.payload["before"]) for r in rows] == \
        [("marker", 7.0, None), ("marker", 8.0, {"value": 7.0, "note": ""})]
    assert session.scalars(db.select(scoring.Score)).one().value == 8.0
    assert audit.verify_chain(session) is None


def test_only_markers_are_assigned_and_they_see_only_their_sittings(app, lot):
    sitting, _attempt, marker = lot
    session = db.session
    reviewer = User(username="reviewer", password_hash="-", role=Role.REVIEWER)
    session.add(reviewer)
    session.flush()
    with pytest.raises(scoring.ScoringError, match="not a marker"):
        scoring.assign(session, sitting, reviewer, by="admin")
    assert access.sittings_for(session, marker) == [] and not access.may_mark(session, marker, sitting)
    scoring.assign(session, sitting, marker, by="admin")
    scoring.assign(session, sitting, marker, by="admin")  # twice: one assignment
    assert access.sittings_for(session, marker) == [sitting] and access.may_mark(session, marker, sitting)
    assert scoring.unassign(session, sitting, marker, by="admin") and not access.may_mark(session, marker, sitting)
    session.commit()
    assert [r.action for r in reversed(audit.rows(session))] == ["assignment.added", "assignment.removed"]
