"""Help chat and broadcasts: the station API, the staff routes, roles, CSRF, the audit chain,
the broadcast recipients rule, acknowledgements, the manifest's history, and the station's MessageBox
talking to a live edge (push unavailable: the fetch alone brings the replies)."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import (
    Attempt,
    Candidate,
    Event,
    HelpThread,
    Message,
    MessageAck,
    Sitting,
    StaffRole,
    Station,
    utcnow,
)
from edge_server.services import audit
from edge_server.services import messages as message_service
from edge_server.services.staff import create_user
from edge_server.services.stations import revoke
from station.link import EdgeClient
from station.messages import MessageBox
from tests.edge_server.conftest import make_settings
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.services import free_port

PASSWORD = "correct horse battery"


@pytest.fixture
def settings(db_url, tmp_path):
    """No broker listens on the edge's MQTT port: pushes fail and the stations' fetch must do."""
    return make_settings(db_url, tmp_path / "data",
                         mqtt={"host": "127.0.0.1", "port": free_port(), "username": "edge", "password": "x"})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(app):
    """Centre c1: st-01 (seat A01) holds the attempt of 张明 (seat A01); st-02 (seat A02) is the seat of
    李华, who has not arrived; st-03 (seat Z09) belongs to no candidate of the sitting. Centre c2 has
    its own station and sitting. Staff: a proctor, a centre admin and a regional admin."""
    with app.app_context():
        st1, token1 = make_station(db.session, "c1", "st-01", seat="A01")
        st2, token2 = make_station(db.session, "c1", "st-02", seat="A02")
        st3, token3 = make_station(db.session, "c1", "st-03", seat="Z09")
        sitting = make_sitting(db.session, "c1", "c1-morning", starts_in=3600)
        other_sitting = make_sitting(db.session, "c1", "c1-afternoon", starts_in=7200)
        zhang = make_candidate(db.session, sitting, ticket_no="20240001", name="张明", seat="A01")
        make_candidate(db.session, sitting, ticket_no="20240002", name="李华", seat="A02")
        attempt = make_attempt(db.session, zhang, st1)
        _, token_c2 = make_station(db.session, "c2", "st-99")
        c2_sitting = make_sitting(db.session, "c2", "c2-morning")
        c2_attempt = make_attempt(db.session, make_candidate(db.session, c2_sitting, ticket_no="20249999"))
        for name, role in [("proctor", StaffRole.PROCTOR), ("admin", StaffRole.CENTRE_ADMIN),
                           ("regional", StaffRole.REGIONAL_ADMIN)]:
            create_user(db.session, name, PASSWORD, role, "c1")
        db.session.commit()
        return SimpleNamespace(attempt=attempt.id, sitting=sitting.id, other_sitting=other_sitting.id,
                               c2_sitting=c2_sitting.id, c2_attempt=c2_attempt.id,
                               h1=bearer(token1), h2=bearer(token2), h3=bearer(token3), h_c2=bearer(token_c2),
                               tokens={"st-01": token1, "st-02": token2, "st-03": token3})


def ask(client, headers, **body) -> dict:
    resp = client.post("/api/v1/help", json=body, headers=headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def fetch(client, headers, after: int = 0) -> dict:
    resp = client.get(f"/api/v1/messages?after={after}", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def events(app, kind: str) -> list[Event]:
    with app.app_context():
        return db.session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)).all()


def chain_intact(app) -> None:
    with app.app_context():
        assert audit.verify(db.session) == []


# --- staff sign-in with CSRF (the Flask test client keeps the session cookie) -----------------------

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class Staff:
    def __init__(self, app, username: str):
        self.client = app.test_client()
        token = _CSRF.search(self.client.get("/staff/login").get_data(as_text=True)).group(1)
        resp = self.client.post("/staff/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
        assert resp.status_code == 302, resp.get_data(as_text=True)
        self.csrf = _CSRF.search(self.client.get("/staff/").get_data(as_text=True)).group(1)

    def post(self, path: str, data: dict, *, csrf: bool = True, json: bool = True):
        data = dict(data, csrf_token=self.csrf) if csrf else dict(data)
        headers = {"Accept": "application/json"} if json else {}
        return self.client.post(path, data=data, headers=headers)

    def dashboard(self) -> dict:
        resp = self.client.get("/staff/api/messages")
        assert resp.status_code == 200
        return resp.get_json()


@pytest.fixture
def proctor(app, world) -> Staff:
    return Staff(app, "proctor")


# --- help requests ------------------------------------------------------------------------------

def test_help_with_an_attempt_opens_a_thread_logged_in_the_audit(app, client, world):
    data = ask(client, world.h1, attempt_id=world.attempt, reason="device", text="  摄像头没有画面  ")
    message = data["message"]
    assert (message["kind"], message["reason"], message["text"], message["from"]) == ("help", "device", "摄像头没有画面",
                                                                                      "candidate")
    assert message["attempt"] == world.attempt and data["thread"]["status"] == "open"
    (event,) = events(app, "help_requested")
    assert (event.station_id, event.attempt_id, event.source) == ("st-01", world.attempt, "api")
    assert event.payload == {"message": message["id"], "thread": data["thread"]["id"], "reason": "device",
                             "text": "摄像头没有画面", "reopened": False}
    # Asking again goes to the same thread.
    again = ask(client, world.h1, attempt_id=world.attempt, reason="other")
    assert again["thread"]["id"] == data["thread"]["id"] and again["message"]["text"] == ""
    chain_intact(app)


def test_help_before_identification_is_tied_to_the_station_only(app, client, world):
    first = ask(client, world.h2, reason="login")
    second = ask(client, world.h2, attempt_id=None, reason="network", text="上传很慢")
    assert first["thread"]["id"] == second["thread"]["id"]
    with app.app_context():
        thread = db.session.get(HelpThread, first["thread"]["id"])
        assert (thread.station_id, thread.attempt_id) == ("st-02", None)
    assert [m["text"] for m in fetch(client, world.h2)["messages"]] == ["", "上传很慢"]


def test_the_quick_reason_alone_is_enough_and_500_characters_of_text_fit(client, world):
    assert ask(client, world.h1, reason="other")["message"]["text"] == ""
    assert len(ask(client, world.h1, reason="other", text="字" * 500)["message"]["text"]) == 500


@pytest.mark.parametrize(("body", "status", "code"), [
    ({}, 400, "missing_field"),
    ({"reason": "bored"}, 400, "bad_reason"),
    ({"reason": ["device"]}, 400, "bad_reason"),
    ({"reason": "device", "text": 42}, 400, "bad_field"),
    ({"reason": "device", "text": "字" * 501}, 400, "text_too_long"),
    ({"reason": "device", "attempt_id": 7}, 400, "bad_field"),
    ({"reason": "device", "attempt_id": "no-such-attempt"}, 404, "attempt_unknown"),
], ids=["no-reason", "unknown-reason", "reason-not-string", "text-not-string", "text-too-long", "attempt-not-string",
        "attempt-unknown"])
def test_bad_help_requests_are_refused(app, client, world, body, status, code):
    resp = client.post("/api/v1/help", json=body, headers=world.h1)
    assert (resp.status_code, resp.get_json()["code"]) == (status, code)
    assert events(app, "help_requested") == []
    with app.app_context():
        assert db.session.scalars(select(Message)).all() == []


def test_help_about_another_stations_or_centres_attempt_is_refused(client, world):
    # Another station of the centre may not name the attempt: to it, the attempt does not exist.
    resp = client.post("/api/v1/help", json={"reason": "device", "attempt_id": world.attempt}, headers=world.h2)
    assert (resp.status_code, resp.get_json()["code"]) == (404, "attempt_unknown")
    resp = client.post("/api/v1/help", json={"reason": "device", "attempt_id": world.c2_attempt}, headers=world.h1)
    assert (resp.status_code, resp.get_json()["code"]) == (404, "attempt_unknown")
    resp = client.post("/api/v1/help", data="{not json", headers=dict(world.h1, **{"Content-Type": "application/json"}))
    assert (resp.status_code, resp.get_json()["code"]) == (400, "bad_json")
    resp = client.post("/api/v1/help", json={"reason": "device"})
    assert (resp.status_code, resp.get_json()["code"]) == (401, "token_missing")


# --- replies and resolving ----------------------------------------------------------------------

def test_a_proctor_replies_and_the_station_fetches_the_reply(app, client, world, proctor):
    thread = ask(client, world.h1, attempt_id=world.attempt, reason="device")["thread"]["id"]
    resp = proctor.post(f"/staff/help/{thread}/reply", {"text": "请稍等，监考老师马上过来"})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["push"] == "not_delivered"  # no queue nor broker in this test: the station fetches it
    got = fetch(client, world.h1)
    assert [(m["kind"], m["from"]) for m in got["messages"]] == [("help", "candidate"), ("reply", "staff")]
    reply = got["messages"][1]
    assert reply["text"] == "请稍等，监考老师马上过来" and reply["attempt"] == world.attempt
    assert "proctor" not in str(reply), "a station never sees staff names"
    assert got["last_id"] == reply["id"] and got["more"] is False
    assert fetch(client, world.h1, after=got["last_id"])["messages"] == []
    assert fetch(client, world.h2)["messages"] == [], "another station does not see the thread"
    (event,) = events(app, "help_replied")
    assert (event.source, event.attempt_id, event.payload["by"], event.payload["thread"]) == (
        "staff", world.attempt, "proctor", thread)
    chain_intact(app)


def test_the_dashboard_lists_threads_with_history_and_the_waiting_state(app, client, world, proctor):
    thread = ask(client, world.h1, attempt_id=world.attempt, reason="network", text="上传失败")["thread"]["id"]
    board = proctor.dashboard()
    (row,) = board["threads"]
    assert (row["id"], row["station"], row["seat"], row["status"], row["waiting"]) == (thread, "st-01", "A01", "open",
                                                                                        True)
    assert [(m["kind"], m["reason"], m["text"]) for m in row["messages"]] == [("help", "network", "上传失败")]
    assert board["can_chat"] is True and board["last_help_id"] == row["messages"][0]["id"]
    assert "张明" not in str(board), "the wall view never shows candidates' names"
    proctor.post(f"/staff/help/{thread}/reply", {"text": "已收到"})
    (row,) = proctor.dashboard()["threads"]
    assert row["waiting"] is False and [m["author"] for m in row["messages"]] == ["", "proctor"]


def test_resolve_then_a_new_request_reopens_the_thread(app, client, world, proctor):
    thread = ask(client, world.h1, attempt_id=world.attempt, reason="login")["thread"]["id"]
    resp = proctor.post(f"/staff/help/{thread}/resolve", {})
    assert (resp.status_code, resp.get_json()["status"]) == (200, "resolved")
    assert proctor.post(f"/staff/help/{thread}/resolve", {}).status_code == 200  # idempotent
    assert len(events(app, "help_resolved")) == 1
    again = ask(client, world.h1, attempt_id=world.attempt, reason="device")
    assert again["thread"] == {"id": thread, "status": "open"}
    assert events(app, "help_requested")[-1].payload["reopened"] is True
    chain_intact(app)


def test_roles_and_csrf_on_replies_resolve_and_broadcasts(app, client, world, proctor):
    thread = ask(client, world.h1, attempt_id=world.attempt, reason="device")["thread"]["id"]
    regional = Staff(app, "regional")
    assert regional.dashboard()["can_chat"] is False
    assert len(regional.dashboard()["threads"]) == 1, "a regional admin reads"
    for path, data in [(f"/staff/help/{thread}/reply", {"text": "hi"}), (f"/staff/help/{thread}/resolve", {}),
                       ("/staff/broadcasts", {"sitting": world.sitting, "text": "hi"})]:
        assert regional.post(path, data).status_code == 403, path
        assert proctor.post(path, data, csrf=False).status_code == 400, path
    admin = Staff(app, "admin")
    assert admin.post(f"/staff/help/{thread}/reply", {"text": "管理员回复"}).status_code == 201
    anonymous = app.test_client().get("/staff/api/messages")
    assert anonymous.status_code == 302 and "/staff/login" in anonymous.headers["Location"]
    with app.app_context():
        assert [m.author for m in db.session.scalars(select(Message).order_by(Message.id))] == ["", "admin"]


@pytest.mark.parametrize(("text", "code"), [("", "bad_form"), ("   ", "bad_form"), ("字" * 501, "bad_form")],
                         ids=["empty", "blank", "too-long"])
def test_bad_replies_are_refused(app, client, world, proctor, text, code):
    thread = ask(client, world.h1, attempt_id=world.attempt, reason="device")["thread"]["id"]
    resp = proctor.post(f"/staff/help/{thread}/reply", {"text": text})
    assert (resp.status_code, resp.get_json()["code"]) == (400, code)
    assert events(app, "help_replied") == []


def test_a_thread_of_another_centre_is_not_found(app, client, world, proctor):
    thread = ask(client, world.h_c2, reason="device")["thread"]["id"]
    assert proctor.post(f"/staff/help/{thread}/reply", {"text": "hi"}).status_code == 404
    assert proctor.post("/staff/help/99999/resolve", {}).status_code == 404
    assert proctor.dashboard()["threads"] == []


def test_a_form_post_without_json_redirects_with_a_flash(app, client, world, proctor):
    thread = ask(client, world.h1, attempt_id=world.attempt, reason="device")["thread"]["id"]
    resp = proctor.post(f"/staff/help/{thread}/reply", {"text": "好的"}, json=False)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/staff/")
    assert "Reply sent" in proctor.client.get("/staff/").get_data(as_text=True)


# --- broadcasts ---------------------------------------------------------------------------------

def test_broadcast_goes_to_the_sittings_stations_by_attempt_or_seat(app, client, world, proctor):
    resp = proctor.post("/staff/broadcasts", {"sitting": world.sitting, "text": "第二题题干更正：两段，不是三段"})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    # st-01 holds an attempt of the sitting, st-02 has the seat of a candidate who has not arrived.
    assert body["stations"] == ["st-01", "st-02"] and body["push"] == "not_delivered"
    for headers in (world.h1, world.h2):
        (notice,) = fetch(client, headers)["messages"]
        assert (notice["kind"], notice["sitting"], notice["text"], notice["acknowledged"]) == (
            "broadcast", world.sitting, "第二题题干更正：两段，不是三段", False)
    assert fetch(client, world.h3)["messages"] == []
    assert fetch(client, world.h_c2)["messages"] == []
    (event,) = events(app, "broadcast_sent")
    assert event.payload["stations"] == ["st-01", "st-02"] and event.payload["by"] == "proctor"
    chain_intact(app)


def test_the_recipients_rule(app, world):
    with app.app_context():
        sitting = db.session.get(Sitting, world.sitting)
        assert message_service.sitting_stations(db.session, sitting) == ["st-01", "st-02"]
        # A finished attempt no longer holds its station (st-01 keeps its seat A01, so it stays).
        db.session.get(Attempt, world.attempt).finished_at = utcnow()
        db.session.get(Station, "st-01").seat = "B01"
        assert message_service.sitting_stations(db.session, sitting) == ["st-02"]
        revoke(db.session, db.session.get(Station, "st-02"))
        assert message_service.sitting_stations(db.session, sitting) == []
        db.session.rollback()
        assert message_service.station_sittings(db.session, db.session.get(Station, "st-03")) == set()


def test_a_station_that_joins_the_sitting_later_still_fetches_the_broadcast(app, client, world, proctor):
    proctor.post("/staff/broadcasts", {"sitting": world.sitting, "text": "开考时间推迟 5 分钟"})
    assert fetch(client, world.h3)["messages"] == []
    with app.app_context():  # 李华 sits at st-03 instead (a spare station)
        li = db.session.scalar(select(Candidate).where(Candidate.seat == "A02"))
        make_attempt(db.session, li, db.session.get(Station, "st-03"))
        db.session.commit()
    assert [m["text"] for m in fetch(client, world.h3)["messages"]] == ["开考时间推迟 5 分钟"]


def test_acknowledging_a_broadcast_is_recorded_once_and_shown_on_the_dashboard(app, client, world, proctor):
    cast = proctor.post("/staff/broadcasts", {"sitting": world.sitting, "text": "请保持安静"}).get_json()["id"]
    resp = client.post(f"/api/v1/messages/{cast}/ack", json={"attempt_id": world.attempt}, headers=world.h1)
    assert resp.status_code == 200 and resp.get_json()["new"] is True
    assert client.post(f"/api/v1/messages/{cast}/ack", json={}, headers=world.h1).get_json()["new"] is False
    (event,) = events(app, "broadcast_acknowledged")
    assert (event.station_id, event.attempt_id, event.payload) == ("st-01", world.attempt,
                                                                   {"message": cast, "sitting": world.sitting})
    assert fetch(client, world.h1)["messages"][0]["acknowledged"] is True
    assert fetch(client, world.h2)["messages"][0]["acknowledged"] is False
    (row,) = proctor.dashboard()["broadcasts"]
    assert (row["id"], row["stations"], row["acknowledged"]) == (cast, ["st-01", "st-02"], ["st-01"])
    # Not a broadcast for st-03, not a broadcast at all, not there.
    assert client.post(f"/api/v1/messages/{cast}/ack", json={}, headers=world.h3).status_code == 404
    help_id = ask(client, world.h1, reason="other")["message"]["id"]
    assert client.post(f"/api/v1/messages/{help_id}/ack", json={}, headers=world.h1).status_code == 404
    assert client.post("/api/v1/messages/99999/ack", json={}, headers=world.h1).status_code == 404
    chain_intact(app)


@pytest.mark.parametrize(("data", "status"), [
    ({"sitting": "", "text": "x"}, 400), ({"sitting": "nope", "text": "x"}, 404),
    ({"sitting": "c2-morning", "text": "x"}, 404), ({"sitting": "c1-morning", "text": ""}, 400),
    ({"sitting": "c1-morning", "text": "字" * 501}, 400),
], ids=["no-sitting", "unknown-sitting", "other-centre", "empty-text", "too-long"])
def test_bad_broadcasts_are_refused(app, world, proctor, data, status):
    assert proctor.post("/staff/broadcasts", data).status_code == status
    assert events(app, "broadcast_sent") == []


def test_the_sittings_for_the_broadcast_form(world, proctor):
    sittings = {s["id"]: s["stations"] for s in proctor.dashboard()["sittings"]}
    assert sittings == {world.sitting: 2, world.other_sitting: 0}


# --- fetching -----------------------------------------------------------------------------------

@pytest.mark.parametrize("after", ["-1", "abc", "1.5", "9" * 30])
def test_a_bad_cursor_is_refused(client, world, after):
    resp = client.get(f"/api/v1/messages?after={after}", headers=world.h1)
    assert (resp.status_code, resp.get_json()["code"]) == (400, "bad_field")


def test_a_long_history_comes_in_pages(client, world, monkeypatch):
    monkeypatch.setattr(message_service, "FETCH_LIMIT", 2)
    sent = [ask(client, world.h1, reason="other", text=str(i))["message"]["id"] for i in range(5)]
    seen, after = [], 0
    for _ in range(5):
        page = client.get(f"/api/v1/messages?after={after}", headers=world.h1).get_json()
        seen += [m["id"] for m in page["messages"]]
        after = page["last_id"]
        if not page["more"]:
            break
    assert seen == sent


# --- the history stays with the attempt ---------------------------------------------------------

def test_the_attempts_history_for_the_manifest(app, client, world, proctor):
    thread = ask(client, world.h1, attempt_id=world.attempt, reason="device", text="麦克风没声音")["thread"]["id"]
    proctor.post(f"/staff/help/{thread}/reply", {"text": "请检查耳麦"})
    cast = proctor.post("/staff/broadcasts", {"sitting": world.sitting, "text": "请保持安静"}).get_json()["id"]
    client.post(f"/api/v1/messages/{cast}/ack", json={"attempt_id": world.attempt}, headers=world.h1)
    ask(client, world.h1, reason="other", text="与本次考试无关")  # the station's own thread: not the attempt's
    with app.app_context():
        history = message_service.attempt_history(db.session, db.session.get(Attempt, world.attempt))
    assert [(h["kind"], h["from"], h["text"]) for h in history] == [
        ("help", "candidate", "麦克风没声音"), ("reply", "proctor", "请检查耳麦"), ("broadcast", "proctor", "请保持安静")]
    assert history[0]["reason"] == "device" and "acknowledged_at" in history[2]


def test_models_match_the_migration(app):
    """The 0007 tables as migrated are the tables the models describe."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from edge_server.models import Base

    with app.app_context(), db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diffs if re.search(r"help_thread|'message|message_ack", repr(d))]
    assert mine == []


# --- the station's side against a live edge -----------------------------------------------------

def test_the_stations_message_box_sends_help_and_fetches_replies_and_broadcasts(app, world, live_server, proctor):
    client = EdgeClient(live_server, world.tokens["st-01"])
    box = MessageBox(client=lambda: client)
    box.ask("device", "摄像头黑屏", world.attempt)
    assert box.view(world.attempt, world.sitting)["sending"] is True
    assert box.poll_once() is True
    view = box.view(world.attempt, world.sitting)
    assert view["sending"] is False
    (mine,) = view["thread"]
    assert (mine["kind"], mine["reason"], mine["text"], mine["pending"]) == ("help", "device", "摄像头黑屏", False)
    with app.app_context():
        thread = db.session.scalar(select(HelpThread).where(HelpThread.station_id == "st-01"))
        assert thread.attempt_id == world.attempt
    proctor.post(f"/staff/help/{thread.id}/reply", {"text": "马上到"})
    cast = proctor.post("/staff/broadcasts", {"sitting": world.sitting, "text": "请关闭手机"}).get_json()["id"]
    assert box.poll_once() is True
    view = box.view(world.attempt, world.sitting)
    assert [m["text"] for m in view["thread"]] == ["摄像头黑屏", "马上到"]
    assert view["unread"] == 1 and view["last_reply"] == view["thread"][1]["id"]
    assert [b["id"] for b in view["broadcasts"]] == [cast]
    assert box.view(world.attempt, world.other_sitting)["broadcasts"] == [], "another sitting's notice is not shown"
    box.mark_seen(view["last_reply"])
    assert box.acknowledge(cast, world.attempt) is True
    assert box.view(world.attempt, world.sitting)["broadcasts"] == [] and box.view(world.attempt, world.sitting)["unread"] == 0
    assert box.poll_once() is True
    with app.app_context():
        ack = db.session.scalar(select(MessageAck))
        assert (ack.message_id, ack.station_id, ack.attempt_id) == (cast, "st-01", world.attempt)
    # A station that restarts fetches everything again: the acknowledged notice stays acknowledged.
    fresh = MessageBox(client=lambda: client)
    assert fresh.poll_once() is True
    assert fresh.view(world.attempt, world.sitting)["broadcasts"] == []
    assert [m["text"] for m in fresh.view(world.attempt, world.sitting)["thread"]] == ["摄像头黑屏", "马上到"]
    client.close()


def test_a_help_request_waits_while_the_edge_is_unreachable(world):
    client = EdgeClient(f"http://127.0.0.1:{free_port()}", world.tokens["st-01"], timeout=0.5)
    box = MessageBox(client=lambda: client)
    box.ask("network", "", world.attempt)
    assert box.poll_once() is False
    (pending,) = box.view(world.attempt, None)["thread"]
    assert pending["pending"] is True and box.view(world.attempt, None)["sending"] is True
    client.close()
