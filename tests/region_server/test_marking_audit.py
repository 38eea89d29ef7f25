"""The region's hash-chained audit log: intact when written, a changed or deleted row is named, two
writers at once still make one chain, and the audit page shows the verdict."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from sqlalchemy import text

from region_server import audit
from region_server.extensions import db
from region_server.models import Role
from tests.region_server.helpers import make_user, sign_in


def _three(app) -> list[int]:
    with app.app_context():
        ids = [audit.record(db.session, actor="admin", action="export.results", subject=f"sitting {n}",
                            payload={"sitting": n, "rows": 10 * n, "note": "成绩 results"}).id for n in (1, 2, 3)]
        db.session.commit()
        return ids


def test_an_intact_chain_verifies_and_each_row_links_to_the_one_before(app):
    ids = _three(app)
    with app.app_context():
        assert audit.verify_chain(db.session) is None
        rows = sorted(audit.rows(db.session), key=lambda r: r.id)
        assert [r.id for r in rows] == ids
        assert rows[0].prev_hash == audit.GENESIS
        assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
        assert rows[1].hash == audit.row_hash(rows[1])


def test_a_changed_row_is_named(app):
    first, second, _third = _three(app)
    with app.app_context():
        db.session.execute(text("UPDATE region_audit SET payload = :p WHERE id = :id"),
                           {"p": '{"sitting": 2, "rows": 999, "note": "成绩 results"}', "id": second})
        db.session.commit()
        broken = audit.verify_chain(db.session)
        assert broken is not None and broken.row_id == second and "content changed" in broken.reason
    make_user(app, "admin", Role.REGIONAL_ADMIN)
    page = sign_in(app, "admin").get("/marking/audit").get_data(as_text=True)
    assert f"The hash chain is broken at row {second}" in page


def test_a_changed_time_or_actor_is_named_too(app):
    _first, second, third = _three(app)
    with app.app_context():
        db.session.execute(text("UPDATE region_audit SET actor = 'someone' WHERE id = :id"), {"id": third})
        db.session.commit()
        assert audit.verify_chain(db.session).row_id == third
        row = db.session.get(audit.AuditRow, second)
        row.at = datetime(2020, 1, 1, tzinfo=timezone.utc)
        db.session.commit()
        assert audit.verify_chain(db.session).row_id == second


def test_a_deleted_row_is_named_by_the_row_after_it(app):
    _first, second, third = _three(app)
    with app.app_context():
        db.session.execute(text("DELETE FROM region_audit WHERE id = :id"), {"id": second})
        db.session.commit()
        broken = audit.verify_chain(db.session)
        assert broken is not None and broken.row_id == third and "deleted or inserted" in broken.reason


def test_two_writers_at_once_make_one_chain(app):
    def write(name: str) -> None:
        with app.app_context():
            for n in range(8):
                audit.record(db.session, actor=name, action="score.saved", payload={"n": n})
                db.session.commit()

    threads = [threading.Thread(target=write, args=(name,)) for name in ("m1", "m2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with app.app_context():
        assert len(audit.rows(db.session)) == 16
        assert audit.verify_chain(db.session) is None
    make_user(app, "admin", Role.REGIONAL_ADMIN)
    page = sign_in(app, "admin").get("/marking/audit")
    assert "The hash chain is intact" in page.get_data(as_text=True)
