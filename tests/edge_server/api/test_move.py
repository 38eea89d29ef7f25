"""A candidate moved mid-exam: the attempt answer carries the resume, both stations' chains verify."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import requests

from edge_server.extensions import db
from edge_server.models import Sitting
from edge_server.services import seats
from examkiosk_wire.chain import GENESIS, StationKey
from station.storage.journal import Journal
from tests.edge_server.api.test_chain import add_segment, upload_all
from tests.edge_server.helpers import make_candidate, make_sitting, make_station


def test_move_mid_exam_resumes_at_the_spare_station_and_both_chains_verify(app, live_server, tmp_path: Path):
    with app.app_context():
        old, old_token = make_station(db.session, "c1", "st-01", seat="A01")
        new, new_token = make_station(db.session, "c1", "st-02", seat="B07")
        sitting = make_sitting(db.session, "c1", starts_in=-150)  # question 2 of 2 × 120 s runs
        make_candidate(db.session, sitting, ticket_no="20249001")
        seats.assign(db.session, sitting, "20249001", "st-01", by="t", now=datetime.now(timezone.utc))
        db.session.commit()
        sitting_id = sitting.id
    api = f"{live_server}/api/v1"
    h_old, h_new = ({"Authorization": f"Bearer {t}"} for t in (old_token, new_token))
    keys, journals = {}, {}
    for sid, h in (("st-01", h_old), ("st-02", h_new)):
        keys[sid] = StationKey.load_or_create(tmp_path / f"{sid}.pem")
        journals[sid] = Journal(tmp_path / f"{sid}.db")
        assert requests.post(f"{api}/station-key", json={"public_key": keys[sid].public_b64}, headers=h).ok

    # At st-01: identified, answering question 2, three segments recorded, two uploaded.
    r = requests.post(f"{api}/attempts", json={"ticket_no": "20249001"}, headers=h_old)
    assert r.status_code == 201 and r.json()["resume"]["moved"] is False and r.json()["resume"]["seq_from"] == 0
    attempt = r.json()["id"]
    for q, at in ((1, 1000.0), (2, 1120.0)):
        assert requests.post(f"{api}/events", json={"kind": "question_started", "attempt": attempt,
                                                    "payload": {"question": q, "at": at}}, headers=h_old).ok
    old_names = [add_segment(journals["st-01"], keys["st-01"], attempt, seq, tmp_path) for seq in range(2)]
    upload_all(live_server, old_token, journals["st-01"])
    # The open segment, closed by the move: st-01 uploads it only at the very end.
    old_names.append(add_segment(journals["st-01"], keys["st-01"], attempt, 2, tmp_path))

    # The proctor moves the candidate to the spare station st-02.
    with app.app_context():
        move = seats.assign(db.session, db.session.get(Sitting, sitting_id), "20249001", "st-02", by="t",
                            now=datetime.now(timezone.utc))
        db.session.commit()
        assert move.interruption == 1 and move.attempt == attempt and move.before == "st-01"

    # st-01 learns it from the attempt answer (the push's fallback) and declares its segments.
    assert requests.get(f"{api}/attempts/{attempt}", headers=h_old).json()["moved_to"] == "B07"
    status = requests.post(f"{api}/attempts/{attempt}/finish", json={"segments": old_names, "reason": "moved"},
                           headers=h_old).json()
    assert not status["finished"] and not status["complete"] and status["missing"] == [old_names[2]]

    # st-02: the same attempt, with what a resume needs.
    r = requests.post(f"{api}/attempts", json={"ticket_no": "20249001"}, headers=h_new)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == attempt and body["moved_to"] is None
    res = body["resume"]
    assert res["moved"] and res["entered"] and res["question"] == 2 and res["question_started_at"] == 1120.0
    assert res["answered"] == [1] and res["interruptions"] == 1 and res["seq_from"] == 10_000
    assert res["moved_at"] is not None

    # st-02's chain starts a new link at the move base: no name collides with st-01's.
    new_names = [add_segment(journals["st-02"], keys["st-02"], attempt, 10_000, tmp_path, prev=GENESIS),
                 add_segment(journals["st-02"], keys["st-02"], attempt, 10_001, tmp_path)]
    upload_all(live_server, new_token, journals["st-02"])
    status = requests.post(f"{api}/attempts/{attempt}/finish", json={"segments": new_names, "reason": "time_up"},
                           headers=h_new).json()
    assert status["finished"] and not status["complete"], "st-01's last segment is still on its way"
    assert status["missing"] == [old_names[2]]

    # st-01's held-back segment arrives: every segment of both stations is verified, the chain checks out.
    upload_all(live_server, old_token, journals["st-01"])
    status = requests.get(f"{api}/attempts/{attempt}/uploads", headers=h_new).json()
    assert status["complete"] and status["chain_ok"] and status["verified"] == 5, status


def test_a_new_chain_link_is_accepted_only_at_a_move_base():
    from examkiosk_wire.chain import link_problems

    links = [(0, "", "a"), (1, "a", "b"), (10_000, "", "c"), (10_001, "c", "d")]
    assert link_problems(links, frozenset({10_000})) == []
    assert link_problems(links) != [], "without a move the gap and the new start are problems"
    assert link_problems([(0, "", "a"), (5, "", "x")], frozenset({10_000})) != []
    dropped = [(0, "", "a"), (10_001, "c", "d")]  # the move's first segment is missing
    assert link_problems(dropped, frozenset({10_000})) != []
