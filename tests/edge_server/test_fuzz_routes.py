"""Every route of the app, fed bodies and headers of wrong types, sizes, encodings and nesting.

Hypothesis draws a route (with real ids, ``route_world``) and a request: JSON objects built from the
API's field names with values of any JSON type, raw bytes, invalid UTF-8, lone surrogates, NUL
characters, ``NaN``, nesting far past any limit, and random ``Content-Type`` and tus headers. The
station routes are called as the candidate's station, the staff routes as a signed-in centre
admin with a valid CSRF token (so the view itself sees the form), over a real socket.

No answer may be a 5xx, and a refused request (4xx) must leave the database as it was, but for
the refusals the product counts on purpose (a wrong fallback or enrolment code is counted, a
failed sign-in is recorded). The examples are derandomized, so a run is repeatable, and bounded.
"""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from edge_server.auth import policy_of
from edge_server.extensions import db
from edge_server.models import Base
from tests.edge_server.conftest import make_settings
from tests.edge_server.route_world import CENTRE, build_world, routes
from tests.edge_server.staff.test_staff_pages import csrf_session

FIELDS = ["ticket_no", "matched", "distance", "liveness", "frame_jpeg", "best_distance", "code", "kind",
          "payload", "attempt", "public_key", "segments", "reason", "text", "attempt_id", "hostname", "version",
          "station_id", "name", "seat", "face_threshold", "sitting", "station", "approve", "voice_prompts"]
# Routes left out: the stream holds its connection (and is 503 by design without Redis); signing out
# or revoking would end what the other examples use.
SKIPPED = {"staff.live_stream", "staff.logout", "staff.revoke_station"}
# Refusals that write on purpose: a wrong code is counted (and audited) towards its lockout.
COUNTED_REFUSALS = {("api.fallback_code", 403), ("api.fallback_code", 429), ("api.enrol", 403),
                    ("api.enrol", 404), ("api.enrol", 410), ("api.enrol", 429), ("staff.login", 401),
                    ("staff.login", 429)}

json_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
nasty_text = st.sampled_from(["\\ud800", "\\udfff", "\\u0000", "a\\u0000b", "é", "１２３", "1_000", "NaN",
                              "", " ", "0" * 300, "../../etc/passwd"])


@st.composite
def json_bodies(draw, fields: list[str]) -> bytes:
    """A body for a route whose model has ``fields`` (the route's own, drawn more often than others)."""
    names = st.sampled_from(fields) | st.sampled_from(FIELDS) if fields else st.sampled_from(FIELDS)
    kind = draw(st.sampled_from(["fields", "fields", "fields", "escaped", "nested", "raw", "constant"]))
    if kind == "fields":
        body = draw(st.dictionaries(names, json_value | nasty_text, max_size=5))
        return json.dumps(body).encode()
    if kind == "escaped":  # a JSON string escape Python's json.dumps would never write
        field, text = draw(names), draw(nasty_text)
        return f'{{"{field}": "{text}", "kind": "x{text}"}}'.encode()
    if kind == "nested":
        depth = draw(st.sampled_from([17, 100, 5000, 200_000]))
        opener = draw(st.sampled_from(["[", '{"a":']))
        return (opener * depth).encode()
    if kind == "constant":
        return draw(st.sampled_from([b'{"distance": NaN, "matched": true}', b'{"distance": Infinity}',
                                     b'{"seq": 99999999999999999999999}', b"[]", b'"text"', b"null", b"1e400"]))
    return draw(st.binary(max_size=200))


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40)


@st.composite
def headers(draw) -> dict[str, str]:
    found = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "", "application/json; x=y",
                                                   "application/offset+octet-stream",
                                                   "application/x-www-form-urlencoded"]))}
    for name in ("Tus-Resumable", "Upload-Length", "Upload-Offset", "Upload-Metadata", "Upload-Checksum"):
        if draw(st.booleans()):
            found[name] = draw(st.sampled_from(["1.0.0", "12", "1_000", "-1", "9" * 30, "sha1 é", "sha256 !!",
                                                "attempt ", "name ,", "x"]) | header_text)
    return found


@st.composite
def forms(draw) -> dict[str, str]:
    # Form fields travel as UTF-8: a lone surrogate cannot be sent (it arrives as U+FFFD at most).
    decoded = nasty_text.map(lambda t: t.encode().decode("unicode_escape")).filter(
        lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))
    values = st.text(max_size=30) | decoded
    return draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=5))


def fingerprint(app) -> str:
    """A digest of every row of every table."""
    digest = hashlib.sha256()
    with app.app_context():
        for table in Base.metadata.sorted_tables:
            rows = db.session.execute(select(table)).all()
            digest.update(table.name.encode())
            for row in sorted(repr(tuple(row)) for row in rows):
                digest.update(row.encode())
        db.session.remove()
    return digest.hexdigest()


@pytest.fixture
def settings(db_url, tmp_path):
    return make_settings(db_url, tmp_path / "data", centre=CENTRE)


@pytest.fixture
def fuzz_world(app, settings, live_server, tmp_path):
    params, tokens = build_world(app, settings, tmp_path)
    station = requests.Session()
    station.headers["Authorization"] = f"Bearer {tokens['own']}"
    admin, csrf = csrf_session(live_server, "centre_admin")
    calls = [call for call in routes(app, params) if call[0] not in SKIPPED]
    fields = {endpoint: sorted(policy.body.model_fields) if (policy := policy_of(view)) and policy.body else []
              for endpoint, view in app.view_functions.items()}
    return {"base": live_server, "station": station, "admin": admin, "csrf": csrf, "calls": calls,
            "fields": fields}


@hypothesis_settings(max_examples=120, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.data_too_large])
@given(data=st.data())
def test_no_route_answers_5xx_or_changes_anything_when_it_refuses(app, fuzz_world, data):
    # The station API takes bodies: two examples in three go to it.
    api = [call for call in fuzz_world["calls"] if call[0].startswith("api.")]
    others = [call for call in fuzz_world["calls"] if not call[0].startswith("api.")]
    endpoint, method, path = data.draw(st.sampled_from(api) | st.sampled_from(api) | st.sampled_from(others),
                                       label="route")
    url = fuzz_world["base"] + path
    query = data.draw(st.dictionaries(st.sampled_from(["after", "centre", "next", "x"]),
                                      st.text(max_size=12) | nasty_text, max_size=2), label="query")
    before = fuzz_world.get("state") or fingerprint(app)  # as the previous example left it
    if endpoint.startswith("api."):
        body = data.draw(json_bodies(fuzz_world["fields"][endpoint]), label="body")
        session, send = fuzz_world["station"], {"data": body,
                                                "headers": data.draw(headers(), label="headers")}
    elif method == "POST":
        session = fuzz_world["admin"]
        send = {"data": {**data.draw(forms(), label="form"), "csrf_token": fuzz_world["csrf"]}}
    else:
        session, send = fuzz_world["admin"], {}
    resp = session.request(method, url, params=query, timeout=60, allow_redirects=False, **send)
    shown = {k: (v[:80] if isinstance(v, (bytes, str)) else v) for k, v in send.items()}
    assert resp.status_code < 500, f"{method} {path} {query} {shown} -> {resp.status_code}: {resp.text[:400]}"
    fuzz_world["state"] = after = fingerprint(app)
    if 400 <= resp.status_code < 500 and (endpoint, resp.status_code) not in COUNTED_REFUSALS:
        assert after == before, f"{method} {path} was refused ({resp.status_code}) but changed the " \
                                f"database: {shown} -> {resp.text[:200]}"
    if endpoint.startswith("api.") and resp.status_code >= 400 and method != "HEAD":
        problem = resp.json()
        assert set(problem) >= {"error", "code"}, problem


# Wrong values for any field, as JSON text: wrong types, out of range, bad text, bad base64.
BAD_VALUES = ['["x"]', '{}', "[]", "true", "null", "1", "-1", "1.5", str(2**64), "1e308", '"abc"', '"é"', '"１２"',
              '"\\ud800"', '"a\\u0000b"', '""', '"' + "x" * 5000 + '"', '"1_000"', "[" * 20 + "1" + "]" * 20]


def test_every_field_of_every_body_refuses_bad_values_cleanly(app, fuzz_world):
    """Schema-driven: each field of each route's body model, one bad value at a time."""
    station, base = fuzz_world["station"], fuzz_world["base"]
    problems = []
    before = fingerprint(app)
    for endpoint, method, path in fuzz_world["calls"]:
        for field in fuzz_world["fields"][endpoint]:
            for value in BAD_VALUES:
                resp = station.request(method, base + path, data=f'{{"{field}": {value}}}'.encode(),
                                       headers={"Content-Type": "application/json"}, timeout=60)
                after = fingerprint(app)  # the next request's "before"
                if resp.status_code >= 500:
                    problems.append(f"{endpoint} {field}={value[:40]} -> {resp.status_code}: {resp.text[:200]}")
                elif resp.status_code >= 400 and (endpoint, resp.status_code) not in COUNTED_REFUSALS:
                    if after != before:
                        problems.append(f"{endpoint} {field}={value[:40]} refused ({resp.status_code}) "
                                        f"but changed the database")
                    elif not {"error", "code"} <= set(resp.json()):
                        problems.append(f"{endpoint} {field}={value[:40]}: {resp.text[:200]}")
                before = after
    assert problems == []


def test_the_fuzzer_finds_what_it_is_for(app, fuzz_world):
    """The strategies reach what they must: a refused body with a NUL, a depth bomb, a surrogate."""
    station, base = fuzz_world["station"], fuzz_world["base"]
    attempt = next(path for endpoint, _, path in fuzz_world["calls"] if endpoint == "api.face_try")
    for body in (b"[" * 200_000, b'{"matched": "\\ud800"}', b'{"matched": true, "liveness": "a\\u0000"}',
                 base64.b64encode(b"x")):
        resp = station.post(base + attempt, data=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and resp.json()["code"] in {"too_deep", "bad_field", "bad_json"}, resp.text
