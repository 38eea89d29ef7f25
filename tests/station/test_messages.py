"""The station's MessageBox (help chat and broadcasts beside the flow) and the kiosk's help routes.

The edge is a small in-memory stand-in speaking the API's shapes (tests/edge_server/api/test_messages.py
runs the same box against the real edge)."""
from __future__ import annotations

import threading
import time

import pytest

from examkiosk_wire import api
from station.kiosk.app import create_kiosk_app
from station.link import EdgeRejected, EdgeUnavailable
from station.messages import MAX_TEXT, STATION_WINDOW, MessageBox, MessageError

NOW = 1_800_000_000.0


class FakeEdge:
    """The client's ``messages``, ``ask_for_help`` and ``acknowledge``, answering what the edge answers."""

    def __init__(self) -> None:
        self.stored: list[dict] = []
        self.acks: list[tuple[int, str | None]] = []
        self.helps: list[dict] = []
        self.gets = 0
        self.down = False
        self.refuse_attempts: set[str] = set()
        self.limit = 100

    def add(self, kind: str, *, attempt=None, sitting=None, text="", at=NOW) -> dict:
        message = {"id": len(self.stored) + 1, "kind": kind, "thread": 1 if kind != "broadcast" else None,
                   "attempt": attempt, "sitting": sitting, "reason": "device" if kind == "help" else "",
                   "text": text, "from": "candidate" if kind == "help" else "staff", "at": at, "acknowledged": False}
        self.stored.append(message)
        return message

    def messages(self, after: int) -> api.MessagePage:
        if self.down:
            raise EdgeUnavailable("down")
        self.gets += 1
        found = [m for m in self.stored if m["id"] > after]
        page = found[: self.limit]
        return api.MessagePage.model_validate(
            {"messages": page, "last_id": page[-1]["id"] if page else after, "more": len(found) > self.limit})

    def ask_for_help(self, reason: str, text: str = "", attempt_id: str | None = None) -> api.MessageReply:
        if self.down:
            raise EdgeUnavailable("down")
        if attempt_id in self.refuse_attempts:
            raise EdgeRejected(403, "attempt_elsewhere", "this attempt is at another station")
        self.helps.append({"attempt_id": attempt_id, "reason": reason, "text": text})
        return api.MessageReply.model_validate({"message": self.add("help", attempt=attempt_id, text=text),
                                                "thread": {"id": 1, "status": "open"}})

    def acknowledge(self, message_id: int, attempt_id: str | None = None) -> api.AckReply:
        if self.down:
            raise EdgeUnavailable("down")
        self.acks.append((message_id, attempt_id))
        return api.AckReply(message=message_id, acknowledged_at=NOW, new=True)


@pytest.fixture
def edge() -> FakeEdge:
    return FakeEdge()


@pytest.fixture
def box(edge) -> MessageBox:
    return MessageBox(client=lambda: edge, now=lambda: NOW)


@pytest.mark.parametrize(("reason", "text"), [("bored", ""), (None, ""), ("device", 5), ("device", "x" * (MAX_TEXT + 1))])
def test_bad_help_is_refused_on_the_station(box, reason, text):
    with pytest.raises(MessageError):
        box.ask(reason, text, "a-1")
    assert box.view("a-1", None)["thread"] == []


def test_help_is_pending_until_the_edge_takes_it(box, edge):
    edge.down = True
    box.ask("network", "  上传失败\x07 ", "a-1")
    assert box.poll_once() is False
    (pending,) = box.view("a-1", None)["thread"]
    assert (pending["pending"], pending["text"], pending["id"]) == (True, "上传失败", None)
    edge.down = False
    assert box.poll_once() is True
    (sent,) = box.view("a-1", None)["thread"]
    assert (sent["pending"], sent["id"], sent["reason"]) == (False, 1, "device")
    assert edge.helps == [{"attempt_id": "a-1", "reason": "network", "text": "上传失败"}]
    box.poll_once()
    assert len(edge.helps) == 1, "sent once"


def test_help_for_an_attempt_the_edge_refuses_goes_to_the_stations_thread(box, edge):
    edge.refuse_attempts.add("a-old")
    box.ask("login", "", "a-old")
    assert box.poll_once() is True
    assert edge.helps == [{"attempt_id": None, "reason": "login", "text": ""}]


def test_the_view_shows_the_current_attempts_thread_and_the_stations_recent_one(edge):
    clock = {"now": NOW}
    box = MessageBox(client=lambda: edge, now=lambda: clock["now"])
    edge.add("help", attempt=None, text="station, old", at=NOW - STATION_WINDOW - 1)
    edge.add("help", attempt="a-0", text="the previous candidate's")
    edge.add("help", attempt=None, text="before login", at=NOW - 60)
    edge.add("reply", attempt=None, text="answer before login", at=NOW - 30)
    edge.add("help", attempt="a-1", text="mine")
    edge.add("reply", attempt="a-1", text="answer")
    box.poll_once()
    assert [m["text"] for m in box.view(None, None)["thread"]] == ["before login", "answer before login"]
    # Identified: what was said at the station just before stays visible, with the attempt's thread.
    assert [m["text"] for m in box.view("a-1", "s-1")["thread"]] == ["before login", "answer before login", "mine",
                                                                     "answer"]
    # The candidate leaves: the next one starts with an empty thread.
    clock["now"] = NOW + 10
    assert box.view(None, None)["thread"] == []
    assert [m["text"] for m in box.view("a-2", "s-1")["thread"]] == []


def test_unread_replies_and_seen(box, edge):
    edge.add("help", attempt="a-1")
    edge.add("reply", attempt="a-1", text="one")
    box.poll_once()
    view = box.view("a-1", None)
    assert (view["unread"], view["last_reply"]) == (1, 2)
    box.mark_seen(2)
    assert box.view("a-1", None)["unread"] == 0
    edge.add("reply", attempt="a-1", text="two")
    box.poll_once()
    assert box.view("a-1", None)["unread"] == 1


def test_broadcasts_show_for_their_sitting_until_acknowledged(box, edge):
    first = edge.add("broadcast", sitting="s-1", text="更正")
    edge.add("broadcast", sitting="s-2", text="another sitting")
    edge.add("broadcast", sitting="s-9", text="long ago", at=NOW - STATION_WINDOW - 1)
    box.poll_once()
    assert [b["text"] for b in box.view("a-1", "s-1")["broadcasts"]] == ["更正"]
    # Before a candidate is identified (no sitting known): the recent ones.
    assert [b["text"] for b in box.view(None, None)["broadcasts"]] == ["更正", "another sitting"]
    assert box.acknowledge(first["id"], "a-1") is True
    assert box.acknowledge(first["id"], "a-1") is True  # twice: sent once
    assert box.view("a-1", "s-1")["broadcasts"] == []
    box.poll_once()
    assert edge.acks == [(first["id"], "a-1")]
    assert box.acknowledge(999, "a-1") is False
    help_message = edge.add("help", attempt="a-1")
    box.poll_once()
    assert box.acknowledge(help_message["id"], "a-1") is False, "only broadcasts are acknowledged"


def test_a_push_does_not_move_the_fetch_cursor(box, edge):
    """A pushed message with a higher id must not hide an earlier one whose push was lost."""
    lost = edge.add("reply", attempt="a-1", text="lost push")
    pushed = edge.add("reply", attempt="a-1", text="pushed")
    assert box.pushed(pushed) is True
    assert box.pushed(pushed) is False, "known already"
    box.poll_once()
    assert [m["id"] for m in box.view("a-1", None)["thread"]] == [lost["id"], pushed["id"]]


@pytest.mark.parametrize("bad", [None, "x", {"id": "1", "kind": "reply", "at": NOW}, {"id": 1, "kind": "spam", "at": NOW},
                                 {"id": 1, "kind": "reply", "at": "now"}, {"id": True, "kind": "reply", "at": NOW},
                                 {"id": 1, "kind": "reply", "at": NOW, "text": 5},
                                 {"id": 1, "kind": "reply", "at": NOW, "attempt": 3}])
def test_malformed_messages_are_ignored(box, bad):
    assert box.pushed(bad) is False
    assert box.view(None, None)["thread"] == []


def test_a_long_history_is_fetched_page_by_page(box, edge):
    edge.limit = 2
    for i in range(5):
        edge.add("reply", attempt="a-1", text=str(i))
    box.poll_once()
    assert [m["text"] for m in box.view("a-1", None)["thread"]] == ["0", "1", "2", "3", "4"]


def test_the_loop_polls_on_its_period_when_woken_and_when_mqtt_reconnects(edge):
    up = {"value": False}
    box = MessageBox(client=lambda: edge, mqtt_up=lambda: up["value"], now=lambda: NOW, poll_seconds=3600)
    stop = threading.Event()
    thread = threading.Thread(target=box.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: edge.gets == 1)  # the first round at once
        box.ask("device", "", "a-1")
        wait_for(lambda: edge.gets == 2 and edge.helps)  # a help request wakes it
        up["value"] = True
        wait_for(lambda: edge.gets == 3)  # reconnected: fetch what a lost push may have carried
        time.sleep(1.2)
        assert edge.gets == 3
    finally:
        stop.set()
        box.wake()
        thread.join(5)
    assert not thread.is_alive()


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- the kiosk's routes -------------------------------------------------------------------------

class MessagesOnly:
    """The kiosk's port (station.kiosk.port.KioskPort) of a station at attempt ``a-1``: only its messages."""

    def __init__(self, box: MessageBox, attempt: str):
        self.box, self.attempt = box, attempt

    def ask_help(self, reason, text) -> int:
        return self.box.ask(reason, text, self.attempt).local_id

    def acknowledge(self, message_id: int) -> bool:
        return self.box.acknowledge(message_id, self.attempt)

    def mark_seen(self, upto: int) -> None:
        self.box.mark_seen(upto)


@pytest.fixture
def kiosk(box, edge):
    return create_kiosk_app(MessagesOnly(box, "a-1")).test_client()


def test_the_kiosk_queues_help_with_the_current_attempt(kiosk, box):
    resp = kiosk.post("/api/help", json={"reason": "device", "text": "没有声音"})
    assert resp.status_code == 202
    (pending,) = box.view("a-1", None)["thread"]
    assert (pending["reason"], pending["text"], pending["attempt"]) == ("device", "没有声音", "a-1")


@pytest.mark.parametrize("body", [None, [], {"text": "x"}, {"reason": "nope"}, {"reason": "other", "text": "x" * 501}])
def test_the_kiosk_refuses_bad_help(kiosk, box, body):
    resp = kiosk.post("/api/help", json=body)
    assert (resp.status_code, resp.get_json()["code"]) == (400, "bad_help")
    assert box.view("a-1", None)["thread"] == []


def test_the_kiosk_acknowledges_a_broadcast_and_marks_replies_seen(kiosk, box, edge):
    cast = edge.add("broadcast", sitting="s-1", text="请安静")
    edge.add("reply", attempt="a-1", text="好")
    box.poll_once()
    assert kiosk.post(f"/api/messages/{cast['id']}/ack").status_code == 202
    assert kiosk.post("/api/messages/999/ack").status_code == 404
    assert box.view("a-1", "s-1")["broadcasts"] == []
    assert kiosk.post("/api/messages/seen", json={"upto": 2}).status_code == 202
    assert box.view("a-1", "s-1")["unread"] == 0
    assert kiosk.post("/api/messages/seen", json={"upto": "2"}).status_code == 400
    box.poll_once()
    assert edge.acks == [(cast["id"], "a-1")]
