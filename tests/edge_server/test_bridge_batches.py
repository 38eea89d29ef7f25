"""The MQTT bridge writes in batches: the latest status per station and every event, once per flush.

Real parts: a private Mosquitto, the session's private Redis (the dashboards' channel), SQLite
and PostgreSQL. Covered: statuses coalesced and still reaching the database and the dashboards;
a burst from many stations right after a broker restart, nothing lost and the audit chain whole;
what waits is written on stop; a database that holds the write shows as a late banner on the
dashboards and loses nothing. The inbox's own rules are checked without any of that.
"""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import pytest
from redis import Redis
from sqlalchemy import create_engine, select, text

from edge_server.daemon.bridge import MqttBridge
from edge_server.daemon.inbox import Inbox, PendingEvent, PendingStatus
from edge_server.extensions import db
from edge_server.models import Event, Station
from edge_server.services import audit, live
from examkiosk_wire.topics import StationEvent, StationStatus, event_topic, status_topic
from tests.edge_server.conftest import make_settings
from tests.edge_server.helpers import make_station
from tests.services import MqttProbe, wait_for

CENTRE = "c1"
BURST = 40  # stations publishing at once after the broker restart
USERS = {"edge": "edge-secret", **{f"st-{n:02d}": f"pw-{n}" for n in range(1, BURST + 1)}}
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


# --- the inbox, pure ----------------------------------------------------------------------------

def _status(station: str, state: str, received: float) -> PendingStatus:
    return PendingStatus(station, {"station": station, "state": state}, T0, received)


def _event(station: str, kind: str, received: float) -> PendingEvent:
    return PendingEvent(station, kind, None, {}, T0, received)


def test_the_inbox_keeps_the_latest_status_of_each_station_and_every_event():
    inbox = Inbox()
    inbox.put_status(_status("st-01", "waiting", 1.0))
    inbox.put_event(_event("st-01", "a", 1.5))
    inbox.put_status(_status("st-02", "idle", 2.0))
    inbox.put_status(_status("st-01", "answering", 3.0))
    inbox.put_event(_event("st-02", "b", 3.5))
    assert inbox.pending() == (4, 1.0)

    batch = inbox.take()
    assert {s: p.status["state"] for s, p in batch.statuses.items()} == {"st-01": "answering", "st-02": "idle"}
    assert batch.statuses["st-01"].received == 1.0, "the lag counts from the first unwritten status"
    assert batch.replaced == 1
    assert [e.kind for e in batch.events] == ["a", "b"]
    assert sorted(batch.received_times()) == [1.0, 1.5, 2.0, 3.5]
    assert inbox.pending() == (0, None) and not inbox.take()


def test_a_batch_put_back_is_written_before_what_came_later_and_newer_statuses_win():
    inbox = Inbox()
    inbox.put_status(_status("st-01", "waiting", 1.0))
    inbox.put_status(_status("st-02", "idle", 1.0))
    inbox.put_event(_event("st-01", "first", 1.0))
    failed = inbox.take()
    inbox.put_status(_status("st-01", "answering", 5.0))  # arrived while the write failed
    inbox.put_event(_event("st-01", "second", 5.0))
    inbox.put_back(failed)

    batch = inbox.take()
    assert batch.statuses["st-01"].status["state"] == "answering" and batch.statuses["st-01"].received == 1.0
    assert batch.statuses["st-02"].status["state"] == "idle"
    assert [e.kind for e in batch.events] == ["first", "second"]


# --- the bridge with a broker, Redis and a database ---------------------------------------------

@pytest.fixture
def broker(mosquitto_factory):
    return mosquitto_factory(CENTRE, USERS)


def bridge_settings(db_url, tmp_path, broker, redis_server, **bridge):
    return make_settings(db_url, tmp_path / "data", centre=CENTRE, redis_url=redis_server.url,
                         mqtt={"host": "127.0.0.1", "port": broker.port, "username": "edge",
                               "password": USERS["edge"]}, bridge=bridge)


class Dashboards:
    """What the live dashboards are told on the centre's Redis channel, collected in a thread."""

    def __init__(self, url: str):
        self.redis = Redis.from_url(url)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(live.channel(CENTRE))
        self.messages: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message and message.get("type") == "message":
                self.messages.append(json.loads(message["data"]))

    def tiles(self, station: str) -> list[dict]:
        return [m["tile"] for m in list(self.messages) if m.get("type") == "tile" and m["tile"]["id"] == station]

    def bridge(self) -> list[dict]:
        return [m for m in list(self.messages) if m.get("type") == "bridge"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.pubsub.close()
        self.redis.close()


@pytest.fixture
def dashboards(redis_server):
    watcher = Dashboards(redis_server.url)
    try:
        yield watcher
    finally:
        watcher.close()


def running_bridge(app, settings, request) -> MqttBridge:
    bridge = MqttBridge(settings, app)
    bridge.start()
    request.addfinalizer(bridge.stop)
    assert bridge.wait_subscribed(30), "the bridge subscribed to the stations' topics"
    return bridge


def stations_rows(app) -> dict[str, tuple[bool, dict]]:
    with app.app_context():
        try:
            return {s.id: (s.online, s.last_status or {}) for s in db.session.scalars(select(Station))}
        finally:
            db.session.remove()


def mqtt_events(app) -> list[tuple[str, str, int]]:
    with app.app_context():
        try:
            return [(e.station_id, e.kind, e.payload.get("n")) for e in
                    db.session.scalars(select(Event).where(Event.source == "mqtt").order_by(Event.id))]
        finally:
            db.session.remove()


def chain_problems(app) -> list[str]:
    with app.app_context():
        try:
            return audit.verify(db.session)
        finally:
            db.session.remove()


def live_status(station: str, **values) -> str:
    return StationStatus(station=station, online=True, version="2.4.0", ts=time.time(), **values).to_json()


def live_event(kind: str, n: int) -> str:
    return StationEvent(kind=kind, ts=time.time(), payload={"n": n}).to_json()


def test_coalesced_statuses_reach_the_database_and_the_dashboards(app, db_url, tmp_path, broker, redis_server,
                                                                   dashboards, request):
    with app.app_context():
        make_station(db.session, CENTRE, "st-01")
        db.session.commit()
    settings = bridge_settings(db_url, tmp_path, broker, redis_server, flush_seconds=1.0)
    bridge = running_bridge(app, settings, request)
    with MqttProbe(broker.port, "st-01", USERS["st-01"]) as st01:
        assert not st01.connect().is_failure
        for n in range(30):  # 30 statuses in well under a flush
            assert not st01.publish(status_topic(CENTRE, "st-01"), live_status("st-01", state="answering",
                                                                                 time_left=float(100 - n))).is_failure
            if n % 10 == 0:
                assert not st01.publish(event_topic(CENTRE, "st-01"), live_event("mic_silent", n)).is_failure

    wait_for(lambda: stations_rows(app)["st-01"][1].get("time_left") == 71.0, timeout=30,
             what="the last of 30 statuses stored")
    assert mqtt_events(app) == [("st-01", "mic_silent", 0), ("st-01", "mic_silent", 10), ("st-01", "mic_silent", 20)]
    tiles = wait_for(lambda: (t := dashboards.tiles("st-01")) and t[-1]["time_left"] == 71.0 and t, timeout=30,
                     what="the dashboards told the last status")
    assert tiles[-1]["online"] is True and tiles[-1]["state"] == "answering"
    assert len(tiles) < 30, f"one tile per flush, not per message ({len(tiles)} tiles for 30 statuses)"
    assert bridge.counts["status"] == 30 and bridge.counts["coalesced"] == 30 - len(tiles)
    assert len(bridge.lag) == len(tiles) + 3 and bridge.lag.percentile(99) is not None
    assert chain_problems(app) == []


def test_a_burst_from_every_station_after_a_broker_restart_loses_nothing(app, db_url, tmp_path, broker, redis_server,
                                                                         request):
    ids = [f"st-{n:02d}" for n in range(1, BURST + 1)]
    with app.app_context():
        for station_id in ids:
            make_station(db.session, CENTRE, station_id)
        db.session.commit()
    settings = bridge_settings(db_url, tmp_path, broker, redis_server, flush_seconds=0.5)
    bridge = running_bridge(app, settings, request)

    broker.restart()  # every client is cut off; the bridge reconnects and subscribes again
    wait_for(lambda: not bridge.wait_subscribed(0), timeout=30, what="the bridge noticing the broker went away")
    assert bridge.wait_subscribed(60), f"the bridge subscribed again after the restart\n{broker.log()}"

    probes = [MqttProbe(broker.port, sid, USERS[sid]) for sid in ids]
    try:
        for probe in probes:
            assert not probe.connect().is_failure
        # All at once: each station's retained status and two events, without waiting for acks.
        pending = []
        for sid, probe in zip(ids, probes, strict=True):
            pending.append(probe.client.publish(status_topic(CENTRE, sid), live_status(sid, state="waiting", lot=1),
                                                qos=1, retain=True))
            for n in (1, 2):
                pending.append(probe.client.publish(event_topic(CENTRE, sid), live_event("reconnected", n), qos=1))
        for info in pending:
            info.wait_for_publish(30)
    finally:
        for probe in probes:
            probe.close()

    wait_for(lambda: len(mqtt_events(app)) >= 2 * BURST and all(
        online and status.get("state") == "waiting" for online, status in stations_rows(app).values()),
        timeout=60, what=f"{BURST} statuses and {2 * BURST} events stored")
    events = mqtt_events(app)
    assert sorted(events) == sorted((sid, "reconnected", n) for sid in ids for n in (1, 2)), "each event once"
    for sid in ids:  # a station's events keep their order
        assert [n for s, _, n in events if s == sid] == [1, 2]
    assert chain_problems(app) == []
    assert bridge.counts["failed"] == 0 and bridge.counts["skipped"] == 0


def test_what_waits_is_written_when_the_bridge_stops(app, db_url, tmp_path, broker, redis_server):
    with app.app_context():
        make_station(db.session, CENTRE, "st-01")
        db.session.commit()
    settings = bridge_settings(db_url, tmp_path, broker, redis_server, flush_seconds=10.0)
    bridge = MqttBridge(settings, app)
    bridge.start()
    try:
        assert bridge.handle(status_topic(CENTRE, "st-01"), live_status("st-01", state="uploading"))
        assert bridge.handle(event_topic(CENTRE, "st-01"), live_event("upload_started", 1))
        assert bridge.backlog()[0] == 2
        assert stations_rows(app)["st-01"][1] == {} and mqtt_events(app) == [], "nothing written before the flush"
    finally:
        bridge.stop()
    assert stations_rows(app)["st-01"][1]["state"] == "uploading"
    assert mqtt_events(app) == [("st-01", "upload_started", 1)]
    assert bridge.backlog() == (0, 0.0)


def _hold_station_table(db_url: str):
    """A second connection that keeps the bridge's writes waiting: SQLite's write lock, or a lock on
    PostgreSQL's station table. Returns the function that lets go."""
    engine = create_engine(db_url)
    conn = engine.connect()
    if db_url.startswith("sqlite"):
        conn.exec_driver_sql("BEGIN EXCLUSIVE")
    else:
        conn.execute(text("BEGIN"))
        conn.execute(text("LOCK TABLE station IN ACCESS EXCLUSIVE MODE"))

    def release() -> None:
        conn.rollback()
        conn.close()
        engine.dispose()
    return release


def test_a_database_holding_the_writes_shows_late_on_the_dashboards_and_loses_nothing(
        app, db_url, tmp_path, broker, redis_server, dashboards, request):
    with app.app_context():
        make_station(db.session, CENTRE, "st-01")
        db.session.commit()
    settings = bridge_settings(db_url, tmp_path, broker, redis_server, flush_seconds=0.2, late_seconds=1.0)
    bridge = running_bridge(app, settings, request)
    with MqttProbe(broker.port, "st-01", USERS["st-01"]) as st01:
        assert not st01.connect().is_failure
        st01.publish(status_topic(CENTRE, "st-01"), live_status("st-01", state="waiting"))
        wait_for(lambda: stations_rows(app)["st-01"][1].get("state") == "waiting", timeout=30,
                 what="a first status stored (the bridge knows the station)")
        release = _hold_station_table(db_url)
        try:
            n = 0

            def told_late():
                nonlocal n
                n += 1  # the station goes on publishing once a second, as stations do
                st01.publish(status_topic(CENTRE, "st-01"), live_status("st-01", state="answering", time_left=float(n)))
                return [m for m in dashboards.bridge() if m["late"]]

            late = wait_for(told_late, timeout=30, interval=0.5, what="a late banner while the database holds the write")
            assert late[0]["pending"] >= 1 and late[0]["waited_s"] >= 1.0
        finally:
            release()
    wait_for(lambda: stations_rows(app)["st-01"][1].get("time_left") == float(n), timeout=60,
             what="the newest status stored once the database let go")
    wait_for(lambda: (b := dashboards.bridge()) and not b[-1]["late"], timeout=30, what="the banner cleared")
    assert bridge.counts["failed"] == 0


def test_events_sent_while_the_bridge_is_away_wait_in_its_session(app, db_url, tmp_path, broker, redis_server,
                                                                  request):
    """The daemon restarts (a new bridge, the same client id): the broker kept its session and hands
    over the events sent meanwhile; the stations' statuses come again as retained ones."""
    with app.app_context():
        make_station(db.session, CENTRE, "st-01")
        db.session.commit()
    settings = bridge_settings(db_url, tmp_path, broker, redis_server, flush_seconds=0.5)
    first = MqttBridge(settings, app)
    first.start()
    assert first.wait_subscribed(30)
    first.stop()
    with MqttProbe(broker.port, "st-01", USERS["st-01"]) as st01:
        assert not st01.connect().is_failure
        for n in (1, 2, 3):
            assert not st01.publish(event_topic(CENTRE, "st-01"), live_event("mic_silent", n)).is_failure
        assert not st01.publish(status_topic(CENTRE, "st-01"), live_status("st-01", state="answering"),
                                retain=True).is_failure
    assert mqtt_events(app) == []
    running_bridge(app, settings, request)
    wait_for(lambda: len(mqtt_events(app)) == 3 and stations_rows(app)["st-01"][1].get("state") == "answering",
             timeout=30, what="the three events sent while the bridge was away, and the retained status")
    assert mqtt_events(app) == [("st-01", "mic_silent", n) for n in (1, 2, 3)]
