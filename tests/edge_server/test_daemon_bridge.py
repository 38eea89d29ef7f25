"""The edge daemon's MQTT bridge with a private Mosquitto and a migrated SQLite database."""
from __future__ import annotations

import shutil
import uuid

import pytest
from sqlalchemy import select

from edge_server import create_app
from edge_server.daemon.bridge import MqttBridge
from edge_server.extensions import db
from edge_server.models import Centre, Event, Station
from edge_server.services.stations import create_station
from examkiosk_wire import topics
from tests.services import Cleanup, MqttProbe, edge_settings, migrate_database, start_mosquitto, start_station, wait_for

USERS = {"edge": "edge-secret", "st-01": "pw-one", "st-77": "pw-77"}


@pytest.fixture
def cleanup():
    stack = Cleanup()
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory):
    """One ``flask db upgrade`` per module; each test gets a copy of the file."""
    tmp = tmp_path_factory.mktemp("db-template")
    settings = edge_settings(tmp)
    migrate_database(settings)
    return settings.database_url, tmp / "edge.db"


@pytest.fixture
def edge(tmp_path, cleanup, migrated_sqlite):
    """A migrated database with a centre and station st-01, a broker, and a running bridge."""
    centre = f"c-{uuid.uuid4().hex[:8]}"
    broker = start_mosquitto(tmp_path / "broker", centre, USERS)
    cleanup.add(broker.stop)
    settings = edge_settings(tmp_path, centre=centre,
                             mqtt={"host": broker.host, "port": broker.port, "username": "edge",
                                   "password": USERS["edge"]})
    template_url, template_file = migrated_sqlite
    if template_url.startswith("sqlite:") and settings.database_url == f"sqlite:///{tmp_path / 'edge.db'}":
        shutil.copyfile(template_file, tmp_path / "edge.db")
    else:  # DATABASE_URL from the environment (PostgreSQL): migrate it in place
        migrate_database(settings)
    app = create_app(settings)
    cleanup.add(lambda: _dispose(app))
    with app.app_context():
        db.session.add(Centre(id=centre, name="Bridge test centre"))
        create_station(db.session, "st-01", centre)
        db.session.commit()
    bridge = MqttBridge(settings, app)
    bridge.start()
    cleanup.add(bridge.stop)
    assert bridge.wait_subscribed(10), broker.log()
    return {"centre": centre, "broker": broker, "app": app, "bridge": bridge}


def _dispose(app):
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def station_row(app, station_id="st-01"):
    with app.app_context():
        try:
            row = db.session.get(Station, station_id)
            return None if row is None else (row.online, row.last_status, row.last_seen_at)
        finally:
            db.session.remove()


def test_status_and_last_will_reach_the_database(edge, cleanup):
    app, broker, bridge, centre = edge["app"], edge["broker"], edge["bridge"], edge["centre"]
    assert station_row(app)[0] is False

    station = start_station(broker.port, "st-01", USERS["st-01"], centre, "st-01",
                            status={"state": "answering", "lot": 4, "question": 2, "time_left": 30.5, "backlog": 1},
                            events=[{"kind": "mic_silent", "payload": {"seconds": 8}, "attempt": "no-such-attempt"}])
    cleanup.add(station.kill)

    online, status, seen = wait_for(lambda: (r := station_row(app)) and r[0] and r, message="station online")
    assert status["state"] == "answering" and status["lot"] == 4 and status["time_left"] == 30.5
    assert status["station"] == "st-01" and status["version"] == "test"
    assert seen is not None

    def mqtt_events():
        with app.app_context():
            try:
                return db.session.scalars(select(Event).where(Event.source == "mqtt")).all()
            finally:
                db.session.remove()

    events = wait_for(mqtt_events, message="event stored")
    assert [(e.kind, e.station_id, e.attempt_id) for e in events] == [("mic_silent", "st-01", None)]
    assert events[0].payload == {"seconds": 8, "attempt": "no-such-attempt"}
    assert [e.kind for e in bridge.events] == ["mic_silent"]

    station.kill()  # the station dies without DISCONNECT: the broker publishes its last will
    online, status, _ = wait_for(lambda: (r := station_row(app)) and not r[0] and r, message="station offline")
    assert status["online"] is False and status["station"] == "st-01"


def test_clean_stop_publishes_offline(edge, cleanup):
    app, broker, centre = edge["app"], edge["broker"], edge["centre"]
    station = start_station(broker.port, "st-01", USERS["st-01"], centre, "st-01", status={"state": "idle"})
    cleanup.add(station.kill)
    wait_for(lambda: (r := station_row(app)) and r[0], message="station online")
    station.stop()
    assert station.proc.returncode == 0
    _, status, _ = wait_for(lambda: (r := station_row(app)) and not r[0] and r, message="station offline")
    assert status["state"] == "idle"  # the goodbye keeps the last state


def test_bad_messages_are_skipped(edge):
    app, broker, bridge, centre = edge["app"], edge["broker"], edge["bridge"], edge["centre"]
    with MqttProbe(broker.port, "st-01", USERS["st-01"]) as st01, MqttProbe(broker.port, "st-77", USERS["st-77"]) as st77:
        assert not st01.connect().is_failure and not st77.connect().is_failure
        status = topics.status_topic(centre, "st-01")
        assert not st01.publish(status, b"{not json").is_failure
        assert not st01.publish(status, b'{"station": "st-01", "online": "yes"}').is_failure
        assert not st01.publish(status, b'{"station": "st-02", "online": true}').is_failure
        assert not st01.publish(topics.event_topic(centre, "st-01"), b'{"payload": {}}').is_failure
        # A station the edge does not know (the broker does).
        assert not st77.publish(topics.status_topic(centre, "st-77"), b'{"station": "st-77", "online": true}').is_failure
        # The bridge is still alive: a good status after the bad ones lands.
        assert not st01.publish(status, b'{"station": "st-01", "online": true, "state": "waiting"}').is_failure
    _, last, _ = wait_for(lambda: (r := station_row(app)) and r[0] and r, message="good status stored")
    assert last["state"] == "waiting"
    assert bridge.counts["skipped"] == 5 and bridge.counts["failed"] == 0
    assert station_row(app, "st-77") is None
