"""``POST /api/v1/enrol`` over real HTTP, against a real Mosquitto whose users the edge manages (SQLite and PostgreSQL).

A code from ``services.enrolment_codes.create_code`` (what the Stations page calls) is traded for
a station id, an API token and MQTT credentials that work at once; the code is single use, expires,
is stored only as an HMAC, and refused tries are rate-limited per client address.
"""
from __future__ import annotations

import http.client
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.identity import edge_fingerprint
from edge_server.models import EnrolmentCode, Event, StaffRole, Station
from edge_server.services import enrolment_codes as codes
from edge_server.services.staff import create_user
from examkiosk_wire import topics
from examkiosk_wire.chain import StationKey
from examkiosk_wire.enrolment_code import ALPHABET, parse
from tests.edge_server.conftest import make_settings
from tests.edge_server.helpers import make_station
from tests.services import MqttProbe

CENTRE = "c-enrol"
EDGE_PASSWORD = "edge-secret"


@pytest.fixture
def broker(mosquitto_factory):
    return mosquitto_factory(CENTRE, {"edge": EDGE_PASSWORD})


@pytest.fixture
def settings(db_url, tmp_path, broker):
    return make_settings(db_url, tmp_path / "data", centre=CENTRE, mqtt={
        "host": "127.0.0.1", "port": broker.port, "username": "edge", "password": EDGE_PASSWORD})


@pytest.fixture
def admin(app):
    with app.app_context():
        codes.ensure_centre(db.session, CENTRE, "Enrol centre")
        user = create_user(db.session, "admin", "correct horse battery", StaffRole.CENTRE_ADMIN, CENTRE)
        db.session.commit()
        return user.id


def new_code(app, admin: int, *, now: datetime | None = None) -> str:
    from edge_server.models import StaffUser

    with app.app_context():
        settings = app.extensions["examkiosk.settings"]
        _, plain = codes.create_code(db.session, centre_id=CENTRE, staff=db.session.get(StaffUser, admin),
                                     fingerprint=edge_fingerprint(settings), key=settings.secret_key.encode(),
                                     now=now or datetime.now(timezone.utc))
        db.session.commit()
        return plain


def body(code: str, **extra) -> dict:
    return {"code": code, "hostname": "station-pc-7", "version": "1.2.3", **extra}


def connack(broker, username: str, password: str):
    """The CONNACK reason code a fresh client gets."""
    probe = MqttProbe(broker.port, username, password)
    try:
        return probe.connect()
    finally:
        probe.close()


def test_a_code_gives_a_working_identity(app, admin, live_server, broker):
    settings = app.extensions["examkiosk.settings"]
    fp = edge_fingerprint(settings)
    plain = new_code(app, admin)
    assert parse(plain) is not None and plain.startswith(fp[:4].upper() + "-")
    assert set(plain.replace("-", "")[4:]) <= set(ALPHABET)
    key = StationKey.load_or_create(app.extensions["examkiosk.settings"].data_dir / "st-key.pem")

    r = requests.post(f"{live_server}/api/v1/enrol", json=body(plain.lower(), public_key=key.public_b64))
    assert r.status_code == 201, r.text
    answer = r.json()
    assert set(answer) == {"station_id", "token", "centre", "mqtt", "fingerprint", "server_time"}
    assert answer["station_id"] == "st-01" and answer["centre"] == CENTRE and answer["fingerprint"] == fp
    # The edge reaches its broker on loopback: the station is told the edge's own address ("") and,
    # with no TLS listener configured here, the plain port.
    assert (answer["mqtt"]["host"], answer["mqtt"]["port"], answer["mqtt"]["tls"]) == ("", broker.port, False)
    assert answer["mqtt"]["username"] == "st-01" and len(answer["mqtt"]["password"]) >= 24

    # The token works on the station API; only its hash is stored, and the signing key is registered.
    auth = {"Authorization": f"Bearer {answer['token']}"}
    assert requests.get(f"{live_server}/api/v1/schedule", headers=auth).json()["station"] == "st-01"
    with app.app_context():
        station = db.session.get(Station, "st-01")
        assert station.token_hash != answer["token"] and answer["token"] not in json.dumps(
            [station.token_hash, station.name])
        assert station.public_key == key.public_b64
        code = db.session.scalars(select(EnrolmentCode)).one()
        assert code.used_at is not None and code.station_id == "st-01"
        assert (code.hostname, code.version, code.used_from) == ("station-pc-7", "1.2.3", "127.0.0.1")
        assert plain.replace("-", "") not in code.code_hash and len(code.code_hash) == 64
        kinds = [e.kind for e in db.session.scalars(select(Event).order_by(Event.id))]
        assert kinds == ["enrolment_code_created", "station_enrolled"]
        enrolled = db.session.scalars(select(Event).where(Event.kind == "station_enrolled")).one()
        assert enrolled.station_id == "st-01" and enrolled.payload["hostname"] == "station-pc-7"
        assert plain not in json.dumps([e.payload for e in db.session.scalars(select(Event))])
        from edge_server.services.audit import verify

        assert verify(db.session) == []

    # The broker knows the new user at once (its plugin saved it): it may write only its own topics.
    assert "st-01" in broker.dynsec_users()
    assert answer["mqtt"]["password"] not in broker.dynsec_file.read_text()  # hashed
    assert not connack(broker, "st-01", answer["mqtt"]["password"]).is_failure
    assert connack(broker, "st-01", "wrong password").is_failure
    station_probe = MqttProbe(broker.port, "st-01", answer["mqtt"]["password"])
    edge_probe = MqttProbe(broker.port, "edge", EDGE_PASSWORD)
    try:
        assert not station_probe.connect().is_failure
        assert not edge_probe.connect().is_failure
        edge_probe.subscribe(f"examkiosk/{CENTRE}/#")
        assert not station_probe.publish(topics.status_topic(CENTRE, "st-01"), b'{"online": true}').is_failure
        seen = edge_probe.expect(lambda m: m.topic == topics.status_topic(CENTRE, "st-01"))
        assert seen.payload == b'{"online": true}'
        assert station_probe.publish(topics.status_topic(CENTRE, "st-02"), b"{}").value >= 0x80
    finally:
        station_probe.close()
        edge_probe.close()


def test_codes_are_single_use_expire_and_belong_to_this_edge(app, admin, live_server):
    url = f"{live_server}/api/v1/enrol"
    plain = new_code(app, admin)
    assert requests.post(url, json=body(plain)).status_code == 201
    again = requests.post(url, json=body(plain))
    assert (again.status_code, again.json()["code"]) == (403, "code_used")

    old = new_code(app, admin, now=datetime.now(timezone.utc) - codes.CODE_TTL - timedelta(seconds=1))
    r = requests.post(url, json=body(old))
    assert (r.status_code, r.json()["code"]) == (403, "code_expired") and "expired" in r.json()["error"]

    prefix = plain[:4]
    r = requests.post(url, json=body(f"{prefix}-AAAA-BBBB"))
    assert (r.status_code, r.json()["code"]) == (403, "code_invalid")
    other = format((int(prefix, 16) + 1) % 0x10000, "04X")
    r = requests.post(url, json=body(f"{other}{plain[4:]}"))
    assert (r.status_code, r.json()["code"]) == (403, "code_wrong_edge")
    with app.app_context():
        assert db.session.scalars(select(Station.id)).all() == ["st-01"]
        refused = [e.payload["reason"] for e in db.session.scalars(
            select(Event).where(Event.kind == "enrolment_refused").order_by(Event.id))]
        assert refused == ["code_used", "code_expired", "code_invalid", "code_wrong_edge"]


@pytest.mark.parametrize("payload, status, code", [
    ("not json", 400, "bad_json"),
    ({"hostname": "h", "version": "1"}, 400, "missing_field"),
    ({"code": "ABCD-EFGH-JKMN", "hostname": 7, "version": "1"}, 400, "bad_field"),
    ({"code": "ABCD-EFGH-JKMN", "hostname": "h", "version": "x" * 65}, 400, "bad_field"),
    ({"code": "ABCD-EFGH-JKM0", "hostname": "h", "version": "1"}, 400, "bad_code_format"),
    ({"code": "ABCD-EFGH-JKMN", "hostname": "h", "version": "1", "station_id": "Bad/Id"}, 400, "bad_field"),
], ids=["not-json", "no-code", "hostname-type", "version-long", "format", "station-id"])
def test_bad_bodies_are_400(live_server, payload, status, code):
    if isinstance(payload, str):
        r = requests.post(f"{live_server}/api/v1/enrol", data=payload, headers={"Content-Type": "application/json"})
    else:
        r = requests.post(f"{live_server}/api/v1/enrol", json=payload)
    assert (r.status_code, r.json()["code"]) == (status, code)


def test_a_bad_public_key_keeps_the_code(app, admin, live_server):
    plain = new_code(app, admin)
    r = requests.post(f"{live_server}/api/v1/enrol", json=body(plain, public_key="bm90IGEga2V5"))
    assert (r.status_code, r.json()["code"]) == (400, "bad_public_key")
    assert requests.post(f"{live_server}/api/v1/enrol", json=body(plain)).status_code == 201


def _post_from(address: str, port: int, payload: dict) -> tuple[int, dict, dict]:
    """POST from a chosen loopback source address (127.0.0.x), over a real socket."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(address, 0))
    try:
        conn.request("POST", "/api/v1/enrol", body=json.dumps(payload), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), dict(resp.getheaders())
    finally:
        conn.close()


def test_refused_tries_are_rate_limited_per_address(app, admin, live_server):
    port = int(live_server.rsplit(":", 1)[1])
    plain = new_code(app, admin)
    wrong = plain[:5] + ("AAAA" if plain[5:9] != "AAAA" else "BBBB") + plain[9:]
    for _ in range(codes.MAX_FAILED_TRIES):
        status, answer, _ = _post_from("127.0.0.1", port, body(wrong))
        assert (status, answer["code"]) == (403, "code_invalid")
    status, answer, headers = _post_from("127.0.0.1", port, body(plain))  # the right code, but too late
    assert (status, answer["code"]) == (429, "too_many_tries")
    assert 0 < int(headers["Retry-After"]) <= codes.TRY_WINDOW.total_seconds() + 1
    status, answer, _ = _post_from("127.0.0.2", port, body(plain))  # another address is not held back
    assert status == 201 and answer["station_id"] == "st-01"


def test_station_ids_next_free_or_requested(app, admin, live_server, broker):
    url = f"{live_server}/api/v1/enrol"
    with app.app_context():
        make_station(db.session, CENTRE, "st-01")
        make_station(db.session, CENTRE, "st-07", revoked=True)  # a revoked station keeps its id
        db.session.commit()
    assert requests.post(url, json=body(new_code(app, admin))).json()["station_id"] == "st-08"
    plain = new_code(app, admin)
    for taken in ("st-01", "edge"):  # a station's id, the edge's own broker user
        r = requests.post(url, json=body(plain, station_id=taken))
        assert (r.status_code, r.json()["code"]) == (409, "station_id_taken"), taken
    r = requests.post(url, json=body(plain, station_id="front-desk"))  # the code was not used up by the 409s
    assert r.status_code == 201 and r.json()["station_id"] == "front-desk" == r.json()["mqtt"]["username"]
    assert {"edge", "st-08", "front-desk"} == set(broker.dynsec_users())


def test_a_broker_that_refuses_the_edge_keeps_the_code_unused(app, admin, live_server, broker):
    before = broker.dynsec_file.read_text()
    plain = new_code(app, admin)
    settings = app.extensions["examkiosk.settings"]
    broken = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"password": "not-the-password"})})
    app.extensions["examkiosk.settings"] = broken
    try:
        r = requests.post(f"{live_server}/api/v1/enrol", json=body(plain))
    finally:
        app.extensions["examkiosk.settings"] = settings
    assert (r.status_code, r.json()["code"]) == (503, "broker_unavailable")
    assert "refused the edge's login" in r.json()["error"]
    assert broker.dynsec_file.read_text() == before
    with app.app_context():
        assert db.session.scalars(select(Station)).all() == []
        assert db.session.scalars(select(EnrolmentCode)).one().used_at is None
    assert requests.post(f"{live_server}/api/v1/enrol", json=body(plain)).status_code == 201


def test_models_match_the_migration(app):
    """The 0006 tables as migrated are the tables the models describe."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from edge_server.models import Base

    with app.app_context(), db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diffs if "enrolment_" in repr(d)]
    assert mine == []
