"""The audit log is a hash chain: tampering with, deleting or inserting a row is detected."""
from __future__ import annotations

import subprocess
import sys
import threading

from sqlalchemy import text

from edge_server.extensions import db
from edge_server.services.attempts import log_event
from edge_server.services.audit import verify
from provisioning.toml_file import write_toml
from tests.edge_server.helpers import make_station


def fill(app, n: int = 5) -> None:
    with app.app_context():
        make_station(db.session, "c1", "st-01")
        for i in range(n):
            log_event(db.session, kind="face_try", station_id="st-01", payload={"try": i, "名": "张明"})
        log_event(db.session, kind="review_decided", station_id=None, source="staff", payload={"by": "admin"})
        db.session.commit()


def test_intact_chain_verifies(app):
    fill(app)
    with app.app_context():
        assert verify(db.session) == []
        rows = db.session.execute(text("SELECT prev_hash, hash FROM event ORDER BY id")).fetchall()
        assert rows[0][0] == "" and all(rows[i][0] == rows[i - 1][1] for i in range(1, len(rows)))


def test_changed_row_is_detected(app):
    fill(app)
    with app.app_context():
        third = db.session.execute(text("SELECT id FROM event ORDER BY id LIMIT 1 OFFSET 2")).scalar()
        db.session.execute(text("UPDATE event SET kind = 'nothing_happened' WHERE id = :i"), {"i": third})
        db.session.commit()
        assert verify(db.session) == [f"event {third}: content changed after it was written"]


def test_deleted_row_is_detected(app):
    fill(app)
    with app.app_context():
        ids = db.session.execute(text("SELECT id FROM event ORDER BY id")).scalars().all()
        db.session.execute(text("DELETE FROM event WHERE id = :i"), {"i": ids[2]})
        db.session.commit()
        assert verify(db.session) == [
            f"event {ids[3]}: does not follow the previous row (a row was deleted or inserted)"]


def test_concurrent_writers_keep_one_linear_chain(app):
    fill(app, n=1)

    def writer(k: int) -> None:
        with app.app_context():
            for i in range(10):
                log_event(db.session, kind="status", station_id="st-01", payload={"writer": k, "i": i})
                db.session.commit()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with app.app_context():
        assert db.session.execute(text("SELECT COUNT(*) FROM event")).scalar() == 2 + 40
        assert verify(db.session) == []


def test_verify_command_exits_non_zero_on_tampering(app, settings, tmp_path):
    fill(app)
    config = tmp_path / "edge.toml"
    write_toml(config, {"secret_key": settings.secret_key, "database_url": settings.database_url,
                        "data_dir": str(settings.data_dir)})
    env = {"EXAMKIOSK_EDGE_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "flask", "--app", "edge_server:create_app", "audit-verify"]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "intact" in ok.stdout
    with app.app_context():
        db.session.execute(text("UPDATE event SET payload = :p WHERE id = (SELECT MIN(id) FROM event)"),
                           {"p": '{"try": 99}'})
        db.session.commit()
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "content changed" in bad.stderr
