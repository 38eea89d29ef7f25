"""services.fallback: one-time staff codes, on a controllable clock (the ``now`` every call takes)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from edge_server.errors import Conflict, Forbidden
from edge_server.extensions import db
from edge_server.models import Attempt, Event, FallbackCode, ReviewStatus, StaffRole, StaffUser, Station
from edge_server.services import attempts as attempt_service
from edge_server.services import fallback
from edge_server.services.audit import verify
from edge_server.services.staff import create_user
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station

KEY = b"test-secret-key"
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"


@pytest.fixture
def world(app):
    """Centre c1: stations st-01 and st-02, two candidates with attempts at st-01, a proctor."""
    with app.app_context():
        station, _ = make_station(db.session, "c1", "st-01")
        make_station(db.session, "c1", "st-02")
        sitting = make_sitting(db.session, "c1", now=T0)
        first = make_attempt(db.session, make_candidate(db.session, sitting), station)
        second = make_attempt(db.session, make_candidate(db.session, sitting), station)
        for _ in range(3):
            attempt_service.record_face_try(db.session, first, distance=0.71, matched=False)
        proctor = create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, "c1")
        db.session.commit()
        return SimpleNamespace(first=first.id, second=second.id, proctor=proctor.id)


def get(model, key):
    return db.session.get(model, key)


def issue(attempt_id: str, staff_id: int, now: datetime = T0) -> tuple[FallbackCode, str]:
    code, plain = fallback.issue(db.session, get(Attempt, attempt_id), staff=get(StaffUser, staff_id), key=KEY, now=now)
    db.session.commit()
    return code, plain


def redeem(station_id: str, attempt_id: str, entered: str, now: datetime):
    try:
        return fallback.redeem(db.session, get(Station, station_id), get(Attempt, attempt_id), entered, key=KEY,
                               now=now)
    finally:
        db.session.commit()  # as the route does: refusals are audited and wrong tries counted


def refused(station_id: str, attempt_id: str, entered: str, now: datetime) -> str:
    with pytest.raises((fallback.CodeRefused, fallback.TooManyTries)) as info:
        redeem(station_id, attempt_id, entered, now)
    return info.value.code


def test_a_code_works_once_and_approves_the_face_review(app, world):
    with app.app_context():
        attempt_service.request_review(db.session, get(Attempt, world.first), 0.71)
        db.session.commit()
        code, plain = issue(world.first, world.proctor)
        assert len(plain) == 8 and plain.isdigit()
        assert code.expires_at == T0 + timedelta(minutes=10) and code.station_id == "st-01"
        # Only a keyed hash is kept: the plain code is in no column.
        row = db.session.execute(select(FallbackCode.__table__)).one()._mapping
        assert plain not in {str(v) for v in row.values()} and row["code_hash"] != plain

        review = redeem("st-01", world.first, fallback.display(plain), T0 + timedelta(minutes=3))
        assert review.status == ReviewStatus.APPROVED and review.reason == "fallback code"
        assert review.decided_by == world.proctor
        assert get(Attempt, world.first).face_verified == "review"
        assert get(FallbackCode, code.id).used_at == T0 + timedelta(minutes=3)
        assert refused("st-01", world.first, plain, T0 + timedelta(minutes=4)) == "code_used"


def test_without_a_pending_review_the_code_opens_and_approves_one(app, world):
    with app.app_context():
        _, plain = issue(world.first, world.proctor)
        assert attempt_service.latest_review(db.session, get(Attempt, world.first)) is None
        review = redeem("st-01", world.first, plain, T0 + timedelta(seconds=30))
        assert review.status == ReviewStatus.APPROVED and review.reason == "fallback code"


def test_another_station_or_another_attempt_is_refused(app, world):
    with app.app_context():
        _, plain = issue(world.first, world.proctor)
        _, other_plain = issue(world.second, world.proctor)
        assert refused("st-02", world.first, plain, T0) == "code_invalid"  # the right code, the wrong station
        assert refused("st-01", world.second, plain, T0) == "code_invalid"  # another candidate's attempt
        assert refused("st-01", world.first, other_plain, T0) == "code_invalid"
        assert get(Attempt, world.second).face_verified is None
        assert redeem("st-01", world.first, plain, T0).status == ReviewStatus.APPROVED


def test_a_code_expires_after_ten_minutes(app, world):
    with app.app_context():
        _, plain = issue(world.first, world.proctor)
        assert refused("st-01", world.first, plain, T0 + timedelta(minutes=10)) == "code_expired"
        assert get(Attempt, world.first).face_verified is None
        _, plain = issue(world.first, world.proctor, now=T0 + timedelta(minutes=20))
        assert redeem("st-01", world.first, plain, T0 + timedelta(minutes=29, seconds=59)).status == "approved"


def test_a_new_code_supersedes_the_previous_one(app, world):
    with app.app_context():
        old, old_plain = issue(world.first, world.proctor)
        new, new_plain = issue(world.first, world.proctor, now=T0 + timedelta(minutes=1))
        assert get(FallbackCode, old.id).superseded_at == T0 + timedelta(minutes=1)
        if old_plain != new_plain:  # one chance in 10**8 that they are the same
            assert refused("st-01", world.first, old_plain, T0 + timedelta(minutes=2)) == "code_invalid"
        assert redeem("st-01", world.first, new_plain, T0 + timedelta(minutes=2)).status == "approved"
        states = {c.id: fallback.code_state(c, T0) for c in fallback.list_codes(db.session, get(Attempt, world.first))}
        assert states == {old.id: "superseded", new.id: "used"}


def test_wrong_codes_are_rate_limited_per_attempt(app, world):
    with app.app_context():
        code, plain = issue(world.first, world.proctor)
        wrong = f"{(int(plain) + 1) % 10 ** 8:08d}"
        for n in range(1, fallback.MAX_WRONG_TRIES + 1):
            assert refused("st-01", world.first, wrong, T0) == "code_invalid"
            assert get(FallbackCode, code.id).failed_tries == n
        # Locked now, even for the right code; the other attempt is not affected.
        assert refused("st-01", world.first, plain, T0) == "too_many_tries"
        assert fallback.code_state(get(FallbackCode, code.id), T0) == "locked"
        _, other = issue(world.second, world.proctor)
        assert redeem("st-01", world.second, other, T0).status == "approved"
        # Staff issue a new code: it works.
        _, plain = issue(world.first, world.proctor, now=T0 + timedelta(minutes=1))
        assert redeem("st-01", world.first, plain, T0 + timedelta(minutes=2)).status == "approved"


def test_no_code_is_issued_when_none_is_needed_or_by_the_wrong_role(app, world):
    with app.app_context():
        regional = create_user(db.session, "regional", PASSWORD, StaffRole.REGIONAL_ADMIN, "c1")
        with pytest.raises(Forbidden):
            fallback.issue(db.session, get(Attempt, world.first), staff=regional, key=KEY, now=T0)
        attempt = get(Attempt, world.second)
        attempt.face_verified = "face"
        with pytest.raises(Conflict) as info:
            fallback.issue(db.session, attempt, staff=get(StaffUser, world.proctor), key=KEY, now=T0)
        assert info.value.code == "fallback_not_needed"


def test_every_issue_use_and_refusal_is_audited_and_the_chain_verifies(app, world):
    with app.app_context():
        code, plain = issue(world.first, world.proctor)
        refused("st-02", world.first, plain, T0)
        refused("st-01", world.first, "00000000" if plain != "00000000" else "11111111", T0)
        redeem("st-01", world.first, plain, T0 + timedelta(minutes=1))
        refused("st-01", world.first, plain, T0 + timedelta(minutes=2))
        events = db.session.scalars(select(Event).where(Event.kind.like("fallback_code_%")).order_by(Event.id)).all()
        assert [(e.kind, e.station_id, e.payload.get("reason"), e.payload.get("detail")) for e in events] == [
            ("fallback_code_issued", "st-01", None, None),
            ("fallback_code_refused", "st-02", "code_invalid", "other_station"),
            ("fallback_code_refused", "st-01", "code_invalid", "wrong_code"),
            ("fallback_code_used", "st-01", None, None),
            ("fallback_code_refused", "st-01", "code_used", None),
        ]
        assert events[0].source == "staff" and events[0].payload["by"] == "proctor"
        assert all(e.attempt_id == world.first and e.payload["code"] == code.id for e in events)
        assert not any(plain in str(e.payload) for e in events)  # the code itself is never logged
        assert verify(db.session) == []
