"""The kiosk server refuses what its page never sends (issue 11, findings 5 and 6, "Kiosk server").

Every body is parsed by the one strict parser (examkiosk_wire/bodies.py): too large (413, before a
byte of it is read), too deep, a lone surrogate, a wrong type or an unknown key is a JSON 4xx and
reaches no part of the agent. Only ``Host: 127.0.0.1:<port>`` and ``localhost:<port>`` are
answered (DNS rebinding), and a POST from another page's origin is refused. A 500 is logged with
its traceback and answered as JSON. A real, not started, station agent stands behind the app.
"""
from __future__ import annotations

import io
import json
import logging
import queue
import re
from types import SimpleNamespace

import pytest
import requests

from station.config import StationSettings
from station.flow import Event
from station.kiosk.app import create_kiosk_app, kiosk_hosts, serve_kiosk
from station.kiosk.bodies import MAX_BODY_BYTES
from station.runtime.runner import Runtime
from tests.conftest import CHROMIUM_ARGS
from tests.services import free_port

PORT = 8700  # the kiosk section's default port; the test client is told it, as the server is
BASE = f"http://127.0.0.1:{PORT}"
JSON = "application/json"
BODY_ROUTES = {"/api/event": "bad_event", "/api/focus": "bad_focus", "/api/help": "bad_help",
               "/api/messages/seen": "bad_seen", "/api/messages/1/ack": "bad_ack"}
_SAMPLE = {"int": "1", "path": "kiosk.js", "default": "x"}


def every_route() -> list[tuple[str, str]]:
    """(method, a path it answers) for every rule of the kiosk app, static files included."""
    routes = []
    for rule in create_kiosk_app(SimpleNamespace()).url_map.iter_rules():
        path = re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", lambda m: _SAMPLE.get(m.group(1) or "default", "x"),
                      rule.rule)
        routes += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


POST_ROUTES = sorted(path for method, path in every_route() if method == "POST")


def station_settings(tmp_path, port: int = PORT) -> StationSettings:
    return StationSettings(station_id="st-01", centre="c1", data_dir=tmp_path / "station",
                           edge={"token": "t", "api": "http://127.0.0.1:9"},
                           mqtt={"username": "st-01", "password": "p"}, kiosk={"port": port, "voice": False})


@pytest.fixture
def agent(tmp_path):
    agent = Runtime(station_settings(tmp_path))
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def client(agent):
    return create_kiosk_app(agent.kiosk, port=PORT).test_client()


def post(client, path: str, raw: bytes | str, **kwargs):
    return client.post(path, data=raw, content_type=JSON, base_url=BASE, **kwargs)


def posted(agent: Runtime) -> list[Event]:
    """What the kiosk handed to the agent (events for the flow, focus changes, help requests)."""
    events: list = []
    for source in (agent.events, agent.flags.focus_changes):
        while True:
            try:
                events.append(source.get_nowait())
            except queue.Empty:
                break
    return events + agent.messages.view(None, None)["thread"]


# --- bodies ---------------------------------------------------------------------------------------

def test_every_post_route_says_how_it_refuses_a_body():
    assert POST_ROUTES == sorted(BODY_ROUTES), "a new POST route: parse its body and list its code here"


@pytest.mark.parametrize("path", POST_ROUTES)
def test_a_deeply_nested_body_is_a_400_not_a_500(client, agent, path):
    deep = post(client, path, "[" * 2000 + "]" * 2000)  # under 4 KB; json.loads would recurse 2000 deep
    assert (deep.status_code, deep.get_json()["code"]) == (400, "too_deep")
    nested = {"name": "identify", "payload": {"ticket_no": "1"}}
    for _ in range(20):
        nested = {"a": nested}
    assert post(client, path, json.dumps(nested)).get_json()["code"] == "too_deep"
    huge = post(client, path, "[" * 100_000)
    assert (huge.status_code, huge.get_json()["code"]) == (413, "too_large")
    assert posted(agent) == []


class CountingStream(io.BytesIO):
    """A request body of ``size`` bytes that counts how much of it the server read."""

    def __init__(self, size: int):
        super().__init__(b" " * size)
        self.size, self.read_bytes = size, 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.read_bytes += len(data)
        return data

    def readinto(self, buffer) -> int:
        n = super().readinto(buffer)
        self.read_bytes += n
        return n

    def readline(self, limit: int | None = -1) -> bytes:
        data = super().readline(limit)
        self.read_bytes += len(data)
        return data


@pytest.mark.parametrize("path", POST_ROUTES)
def test_a_20_mb_body_is_refused_before_it_is_read(client, agent, path):
    stream = CountingStream(20 * 1024 * 1024)
    resp = client.post(path, input_stream=stream, content_type=JSON, base_url=BASE,
                       headers={"Content-Length": str(stream.size)})
    assert (resp.status_code, resp.get_json()["code"]) == (413, "too_large")
    assert stream.read_bytes == 0
    assert posted(agent) == []


def test_the_size_bound_keeps_the_largest_body_the_page_sends(client, agent):
    # 500 characters (the help text's limit), every one as a \\uXXXX escape: the worst a page sends.
    text = json.dumps({"reason": "other", "text": "考" * 500}, ensure_ascii=True)
    assert 3000 < len(text) <= MAX_BODY_BYTES
    assert post(client, "/api/help", text).status_code == 202
    mistake = json.dumps({"name": "report_mistake", "payload": {"text": "名" * 500}}, ensure_ascii=True)
    assert post(client, "/api/event", mistake).status_code == 202
    # A body of exactly the bound is parsed (and its too long text refused); one byte more is not read.
    envelope = '{"name": "report_mistake", "payload": {"text": ""}}'
    at_bound = envelope.replace('""', '"' + "x" * (MAX_BODY_BYTES - len(envelope)) + '"')
    assert len(at_bound) == MAX_BODY_BYTES
    assert post(client, "/api/event", at_bound).get_json()["code"] == "bad_event"
    over = post(client, "/api/event", at_bound.replace('"x', '"xx'))
    assert (over.status_code, over.get_json()["code"]) == (413, "too_large")
    (help_item,) = agent.messages.view(None, None)["thread"]
    assert help_item["text"] == "考" * 500
    assert agent.events.get_nowait() == Event("report_mistake", {"text": "名" * 500})
    assert agent.events.empty()


@pytest.mark.parametrize("path, raw", [
    ("/api/help", r'{"reason": "other", "text": "\ud800"}'),
    ("/api/event", r'{"name": "report_mistake", "payload": {"text": "wrong name \ud800"}}'),
    ("/api/event", r'{"name": "identify", "payload": {"ticket_no": "2024\udfff"}}'),
    ("/api/event", r'{"name": "identify", "payload": {"ticket_no": "2024\u0000"}}'),
])
def test_a_lone_surrogate_or_a_nul_in_a_text_is_refused(client, agent, path, raw):
    resp = post(client, path, raw)
    assert (resp.status_code, resp.get_json()["code"]) == (400, BODY_ROUTES[path])
    assert posted(agent) == []


@pytest.mark.parametrize("path, body", [
    # Already refused before issue 11 (kept here as the issue lists them):
    ("/api/focus", {"visible": "yes"}),
    ("/api/event", {"name": ["x"]}),
    ("/api/help", {"reason": "other", "text": ["x"]}),
    # Accepted (and coerced further on) before issue 11:
    ("/api/focus", {"visible": True, "since": 3}),
    ("/api/event", {"name": "accept", "payload": {"read_to_end": "yes"}}),
    ("/api/event", {"name": "end_exam", "payload": {"confirmed": 1}}),
    ("/api/event", {"name": "identify", "payload": {"ticket_no": 20240001}}),
    ("/api/event", {"name": "identify", "payload": {"ticket_no": "1" * 33}}),
    ("/api/event", {"name": "identify", "payload": None}),
    ("/api/event", {"name": "draw_lot", "payload": {"lot": 3}}),
    ("/api/event", {"name": "next_question", "payload": {}, "extra": 1}),
    ("/api/help", {"reason": "other", "text": None}),
    ("/api/messages/seen", {"upto": 2**63}),
    ("/api/messages/1/ack", {"id": 1}),
])
def test_wrong_types_and_unknown_keys_are_refused(client, agent, path, body):
    resp = post(client, path, json.dumps(body))
    assert (resp.status_code, resp.get_json()["code"]) == (400, BODY_ROUTES[path]), resp.get_json()
    assert resp.get_json()["error"]
    assert posted(agent) == []


def test_a_body_that_is_not_sent_as_json_is_refused(client, agent):
    # A page elsewhere can send text/plain without asking first (no CORS preflight).
    resp = client.post("/api/event", data='{"name": "end_exam", "payload": {"confirmed": true}}',
                       content_type="text/plain", base_url=BASE)
    assert (resp.status_code, resp.get_json()["code"]) == (415, "not_json")
    assert posted(agent) == []


def test_what_the_page_sends_still_reaches_the_agent(client, agent):
    """Every action as station/kiosk/static/kiosk.js sends it (payload ``{}`` when it has none)."""
    sent = [("identify", {"ticket_no": "20240001"}), ("face_capture", {}), ("fallback_code", {"code": "AB12CD"}),
            ("accept", {"read_to_end": True}), ("draw_lot", {}), ("refresh_devices", {}),
            ("report_mistake", {"text": "座位号不对"}), ("next_question", {}), ("end_exam", {"confirmed": True}),
            ("refresh_question", {}), ("resume", {}), ("next_candidate", {})]
    for name, payload in sent:
        assert post(client, "/api/event", json.dumps({"name": name, "payload": payload})).status_code == 202, name
    assert post(client, "/api/event", '{"name": "tick", "payload": {}}').get_json()["code"] == "unknown_action"
    assert post(client, "/api/focus", '{"visible": false}').status_code == 202
    assert post(client, "/api/messages/seen", '{"upto": 3}').status_code == 202
    got = [agent.events.get_nowait() for _ in sent]
    assert got == [Event(name, payload) for name, payload in sent]
    assert agent.flags.focus_changes.get_nowait()[1] is False


# --- the Host and the Origin ------------------------------------------------------------------------

@pytest.mark.parametrize("host", [f"evil.example:{PORT}", f"127.0.0.1.nip.io:{PORT}", "localhost", "127.0.0.1",
                                  f"localhost:{PORT + 1}", f"[::1]:{PORT}", f"127.0.0.2:{PORT}", ""])
@pytest.mark.parametrize("method, path", [*every_route(), ("GET", "/nowhere")])
def test_a_request_for_another_host_is_refused(client, agent, host, method, path):
    resp = client.open(path, method=method, headers={"Host": host}, content_type=JSON,
                       data='{"name": "end_exam", "payload": {"confirmed": true}}' if method == "POST" else None)
    assert (resp.status_code, resp.get_json()["code"]) == (421, "wrong_host")
    assert posted(agent) == []


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"LocalHost:{PORT}"])
def test_the_kiosk_answers_its_own_address(client, host):
    assert client.get("/", headers={"Host": host}).status_code == 200
    assert client.get("/static/kiosk.js", headers={"Host": host}).status_code == 200


def test_the_hosts_are_the_loopback_names_with_the_port():
    assert kiosk_hosts(8700) == {"127.0.0.1:8700", "localhost:8700"}
    assert kiosk_hosts(8700, "::1") == {"127.0.0.1:8700", "localhost:8700", "[::1]:8700"}
    # An app not told its port is addressed as HTTP's default, port 80, as Flask's test client does.
    assert kiosk_hosts(80) == {"127.0.0.1:80", "localhost:80", "127.0.0.1", "localhost"}


@pytest.mark.parametrize("origin", ["http://evil.example", f"http://127.0.0.1.nip.io:{PORT}", "null",
                                    f"http://127.0.0.1:{PORT + 1}", f"https://127.0.0.1:{PORT}"])
def test_a_post_from_another_origin_is_refused(client, agent, origin):
    resp = post(client, "/api/event", '{"name": "end_exam", "payload": {"confirmed": true}}',
                headers={"Origin": origin})
    assert (resp.status_code, resp.get_json()["code"]) == (403, "wrong_origin")
    assert posted(agent) == []
    same = post(client, "/api/focus", '{"visible": true}', headers={"Origin": BASE})
    assert same.status_code == 202


# --- errors ---------------------------------------------------------------------------------------

def test_a_500_is_logged_with_its_traceback_and_answered_as_json(client, agent, caplog, monkeypatch):
    def broken() -> bool:
        raise RuntimeError("the camera adapter broke")

    monkeypatch.setattr(agent.devices, "camera_ok", broken)
    with caplog.at_level(logging.ERROR, logger="station.kiosk"):
        resp = client.get("/api/state", base_url=BASE)
    assert resp.status_code == 500 and resp.is_json
    assert resp.get_json() == {"error": "internal error", "code": "internal_error"}
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.name == "station.kiosk" and "the camera adapter broke" in caplog.text


def test_other_http_errors_are_json(client):
    resp = client.get("/nowhere", base_url=BASE)
    assert (resp.status_code, resp.get_json()["code"]) == (404, "not_found")
    resp = client.get("/api/event", base_url=BASE)
    assert (resp.status_code, resp.get_json()["code"]) == (405, "method_not_allowed")


# --- the real server on a socket --------------------------------------------------------------------

@pytest.fixture
def served(tmp_path):
    port = free_port()
    agent = Runtime(station_settings(tmp_path, port))
    server = serve_kiosk(agent.kiosk, "127.0.0.1", port)
    try:
        yield agent, port
    finally:
        server.shutdown()
        agent.stop()


def test_the_served_kiosk_knows_its_port(served):
    agent, port = served
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/", timeout=5).status_code == 200
    assert requests.get(f"http://localhost:{port}/api/state", timeout=5).status_code == 200
    for host in (f"evil.example:{port}", f"127.0.0.1.nip.io:{port}", "localhost", f"localhost:{PORT}"):
        resp = requests.get(f"{base}/", headers={"Host": host}, timeout=5)
        assert (resp.status_code, resp.json()["code"]) == (421, "wrong_host"), host
    big = requests.post(f"{base}/api/event", data=b'{"name": "identify", "payload": {"ticket_no": "'
                        + b"1" * (20 * 1024 * 1024) + b'"}}', headers={"Content-Type": JSON}, timeout=30)
    assert (big.status_code, big.json()["code"]) == (413, "too_large")
    # Without a Content-Length (chunked), the read stops at the bound.
    chunks = (b"[" if i == 0 else b" " * 1024 for i in range(20 * 1024))
    chunked = requests.post(f"{base}/api/event", data=chunks, headers={"Content-Type": JSON}, timeout=30)
    assert (chunked.status_code, chunked.json()["code"]) == (413, "too_large")
    ok = requests.post(f"{base}/api/event", json={"name": "face_capture", "payload": {}}, timeout=5)
    assert ok.status_code == 202
    assert agent.events.get_nowait() == Event("face_capture", {})
    assert agent.events.empty()


def test_a_page_on_a_rebinding_hostname_cannot_drive_the_kiosk(served, chromium):
    """Chromium resolves ``rebind.example`` to 127.0.0.1, as after a DNS rebinding: the page there is
    same-origin with what answers, but the kiosk does not answer that name, so its scripts get nothing."""
    agent, port = served
    browser = chromium.browser_type.launch(executable_path="/usr/bin/chromium",
                                           args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP rebind.example 127.0.0.1"])
    try:
        page = browser.new_page()
        answer = page.goto(f"http://rebind.example:{port}/")
        assert answer.status == 421 and answer.json()["code"] == "wrong_host"
        assert page.query_selector("[data-action]") is None
        status = page.evaluate("""async () => {
            const r = await fetch("/api/event", {method: "POST", headers: {"Content-Type": "application/json"},
                                                 body: JSON.stringify({name: "end_exam", payload: {confirmed: true}})});
            const state = await fetch("/api/state");
            return [r.status, state.status]; }""")
        assert status == [421, 421]
        assert posted(agent) == []
    finally:
        browser.close()


def test_the_real_page_works_at_both_loopback_names(served, chromium):
    agent, port = served
    for base in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        page = chromium.new_page()
        try:
            page.goto(base)
            page.wait_for_selector("html[data-screen=identify] [data-action=identify]")
            for key in "20240001":
                page.click(f"[data-key='{key}']")
            page.click("[data-action=identify]")
            assert agent.events.get(timeout=5) == Event("identify", {"ticket_no": "20240001"})
            # The page's own POSTs carry its origin (Chromium sends Origin on a same-origin POST): they pass.
            status = page.evaluate("""async () => (await fetch("/api/focus", {method: "POST",
                headers: {"Content-Type": "application/json"}, body: JSON.stringify({visible: false})})).status""")
            assert status == 202
            assert agent.flags.focus_changes.get(timeout=5)[1] is False
        finally:
            page.close()
