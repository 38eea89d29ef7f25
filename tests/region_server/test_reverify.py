"""The daemon checks attempts again (region_server.daemon.stale_attempts): those whose last check is
``[verification] reverify_hours`` old, oldest first, one batch per pass; never the pending ones."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from region_server.daemon import stale_attempts
from region_server.extensions import db
from region_server.models import Attempt, Verification
from tests.region_server.central_data import write_attempt
from tests.region_server.helpers import index_all, verify_all

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def checked(app, ages_hours: dict[str, float | None]) -> dict[str, int]:
    """Set each attempt's last check to ``NOW - age`` (None: still pending); returns {attempt: id}."""
    with app.app_context():
        ids = {a.attempt: a.id for a in db.session.scalars(select(Attempt))}
        for attempt, age in ages_hours.items():
            values = ({"verification": Verification.PENDING, "checked_at": None} if age is None
                      else {"checked_at": NOW - timedelta(hours=age)})
            db.session.execute(update(Attempt).where(Attempt.id == ids[attempt]).values(**values))
        db.session.commit()
        db.session.remove()
    return ids


def test_old_checks_are_queued_again_oldest_first_in_batches(app, central, station_key):
    for lot, attempt in enumerate(("fresh", "day-old", "two-days", "pending"), start=1):
        write_attempt(central.writer, "c1", "s1", lot, attempt, station_key, per_camera=1)
    index_all(app)
    verify_all(app, rehash=False)
    ids = checked(app, {"fresh": 1, "day-old": 30, "two-days": 48, "pending": None})
    assert stale_attempts(app, NOW) == [ids["two-days"], ids["day-old"]]

    section = app.extensions["examkiosk.region.settings"].verification
    app.extensions["examkiosk.region.settings"] = app.extensions["examkiosk.region.settings"].model_copy(
        update={"verification": section.model_copy(update={"reverify_batch": 1})})
    assert stale_attempts(app, NOW) == [ids["two-days"]]
    app.extensions["examkiosk.region.settings"] = app.extensions["examkiosk.region.settings"].model_copy(
        update={"verification": section.model_copy(update={"reverify_hours": 0})})
    assert stale_attempts(app, NOW) == []
