"""The station's sealed paper (station/paper.py) against a real edge on a socket: the ciphertext
comes ahead, the key over real MQTT at the start (the edge daemon's scheduler pushes it) or, with
no broker, from the API; the key is never written to disk; a tampered paper is refused clearly."""
from __future__ import annotations

import queue
import shutil
import socket
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from edge_server.daemon.scheduler import Scheduler
from edge_server.extensions import db
from edge_server.models import Event, Paper, Sitting
from edge_server.services import papers
from examkiosk_wire import sealed
from examkiosk_wire.chain import StationKey
from examkiosk_wire.topics import StationCommand, cmd_topic
from station.link import EdgeClient, StatusPublisher
from station.paper import KeyVault, PaperDamaged, PaperKeeper
from station.storage.journal import Journal
from tests.edge_server import conftest as edge_fixtures
from tests.edge_server.helpers import QUESTIONS, make_attempt, make_candidate, make_sitting, make_station, utcnow
from tests.services import MqttProbe, free_port

# The edge's fixtures, used by the tests below (pytest finds them in this module).
app, live_server = edge_fixtures.app, edge_fixtures.live_server
make_settings, sqlite_template = edge_fixtures.make_settings, edge_fixtures.sqlite_template

CENTRE = "c1"
USERS = {"edge": "edge-secret", "st-01": "pw-one"}


@pytest.fixture
def db_url(sqlite_template, tmp_path):  # noqa: F811  (the station side needs one backend only)
    path = tmp_path / "edge.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def broker(mosquitto_factory):
    return mosquitto_factory(CENTRE, USERS)


@pytest.fixture
def settings(db_url, tmp_path, request):
    port = request.getfixturevalue("broker").port if "broker" in request.fixturenames else free_port()
    return make_settings(db_url, tmp_path / "edge-data", centre=CENTRE,
                         mqtt={"host": "127.0.0.1", "port": port, "username": "edge", "password": USERS["edge"]})


def seed(app, starts_in: float) -> str:
    with app.app_context():
        station, token = make_station(db.session, CENTRE, "st-01")
        sitting = make_sitting(db.session, CENTRE, "c1-sit", starts_in=starts_in)
        make_attempt(db.session, make_candidate(db.session, sitting), station)
        db.session.commit()
    return token


def assert_key_not_on_disk(tmp_path, key: bytes) -> None:
    needles = (key, key.hex().encode(), sealed.b64(key).encode())
    for path in (tmp_path / "station").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), f"the paper key is in {path}"


def subscribed(broker, received: queue.Queue) -> None:
    """Ping the station's cmd topic until a ping arrives: its subscription is live."""
    with MqttProbe(broker.port, "edge", USERS["edge"]) as edge:
        assert not edge.connect().is_failure
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            edge.publish(cmd_topic(CENTRE, "st-01"), StationCommand(kind="ping").to_json())
            try:
                if received.get(timeout=0.2).kind == "ping":
                    return
            except queue.Empty:
                continue
    raise AssertionError("the station never received a command")


def test_the_key_comes_over_mqtt_the_lead_before_the_start(app, settings, live_server, broker, tmp_path):
    token = seed(app, starts_in=3600)
    client = EdgeClient(live_server, token)
    keeper = PaperKeeper(tmp_path / "station" / "papers", client=lambda: client)
    blob = keeper.prefetch("c1-sit")  # when the candidate is identified
    assert keeper.cached("c1-sit") == blob
    assert keeper.fetch_key("c1-sit") is False  # sealed: the API says not yet
    with pytest.raises(LookupError):
        keeper.open("c1-sit")

    received: queue.Queue[StationCommand] = queue.Queue()

    def on_command(command: StationCommand) -> None:  # the agent's dispatch of a paper_key command
        if command.kind == "paper_key":
            keeper.key_pushed(command.payload)
        received.put(command)

    publisher = StatusPublisher("127.0.0.1", broker.port, "st-01", USERS["st-01"], CENTRE, "st-01",
                                on_command=on_command)
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        subscribed(broker, received)
        with app.app_context():
            starts_at = db.session.get(Sitting, "c1-sit").starts_at
        scheduler = Scheduler(settings, app, enqueue=lambda *a: None, job_state=lambda attempt: None)
        release = starts_at - timedelta(seconds=settings.papers.key_lead_seconds)
        assert scheduler.run_once(release - timedelta(seconds=1))["papers"] == 0
        assert scheduler.run_once(release)["papers"] == 1  # the daemon's round, the lead before the start
        while (command := received.get(timeout=10)).kind != "paper_key":
            pass
    finally:
        publisher.stop()
    assert keeper.has_key("c1-sit")
    paper = keeper.open("c1-sit")  # opened ahead of the start, in memory only
    assert [q["text"] for q in paper["questions"]] == QUESTIONS
    assert keeper.opened("c1-sit") is paper
    assert_key_not_on_disk(tmp_path, sealed.unb64(command.payload["key"], "key"))
    with app.app_context():
        assert db.session.get(Sitting, "c1-sit").paper.released_at is not None


def test_without_a_broker_the_key_comes_from_the_api(app, settings, live_server, tmp_path):
    token = seed(app, starts_in=-5)  # started; no broker runs on the settings' MQTT port
    client = EdgeClient(live_server, token)
    keeper = PaperKeeper(tmp_path / "station" / "papers", client=lambda: client)
    keeper.prefetch("c1-sit")
    assert not keeper.has_key("c1-sit")
    assert keeper.fetch_key("c1-sit") is True
    assert [q["text"] for q in keeper.open("c1-sit")["questions"]] == QUESTIONS
    key = client.paper_key("c1-sit").key
    assert_key_not_on_disk(tmp_path, sealed.unb64(key, "key"))
    # A restarted station has the ciphertext on disk, but no key until it asks again.
    again = PaperKeeper(tmp_path / "station" / "papers", client=lambda: None)
    assert again.cached("c1-sit") is not None and not again.has_key("c1-sit")


def test_a_started_papers_key_is_kept_sealed_in_the_journal_until_the_attempt_ends(app, settings, live_server,
                                                                                     tmp_path):
    token = seed(app, starts_in=-5)  # started: the key may be kept now
    client = EdgeClient(live_server, token)
    station = tmp_path / "station"
    own_key = StationKey.load_or_create(station / "station_key.pem")
    journal = Journal(station / "journal.db")
    keeper = PaperKeeper(station / "papers", client=lambda: client, vault=KeyVault(journal, own_key))
    keeper.keep("c1-sit", "a-1")  # no key yet: nothing to keep
    assert journal.paper_keys() == []
    assert keeper.fetch_key("c1-sit")
    keeper.open("c1-sit")
    keeper.keep("c1-sit", "a-1")
    key = sealed.unb64(client.paper_key("c1-sit").key, "key")
    journal.close()
    assert_key_not_on_disk(tmp_path, key)  # sealed: not the key in any form a reader of the disk sees

    # The station restarts with the edge unreachable: the paper opens from the journal and the cache.
    journal = Journal(station / "journal.db")
    again = PaperKeeper(station / "papers", client=lambda: None, vault=KeyVault(journal, own_key))
    again.restore("a-1")
    assert [q["text"] for q in again.open("c1-sit")["questions"]] == QUESTIONS
    # Another station's key (a journal copied elsewhere) does not open it.
    stranger = PaperKeeper(station / "papers", client=lambda: None,
                           vault=KeyVault(journal, StationKey.load_or_create(tmp_path / "other.pem")))
    stranger.restore("a-1")
    assert not stranger.has_key("c1-sit")
    # A restart into another attempt drops the old attempt's key; the end of an attempt drops all.
    PaperKeeper(station / "papers", client=lambda: None, vault=KeyVault(journal, own_key)).restore("a-2")
    assert journal.paper_keys() == []
    again.keep("c1-sit", "a-1")
    assert [row[:2] for row in journal.paper_keys()] == [("c1-sit", "a-1")]
    again.forget()
    assert journal.paper_keys() == [] and not again.has_key("c1-sit")
    journal.close()


def test_a_tampered_paper_is_refused_with_a_clear_error(app, settings, live_server, tmp_path):
    token = seed(app, starts_in=-5)
    with app.app_context():  # someone with the database alters the ciphertext and its checksum
        paper = db.session.get(Sitting, "c1-sit").paper
        altered = paper.ciphertext[:-1] + bytes([paper.ciphertext[-1] ^ 0x01])
        db.session.execute(update(Paper).where(Paper.id == paper.id).values(
            ciphertext=altered, sha256=sealed.SealedBlob(altered, paper.nonce).sha256))
        db.session.commit()
    client = EdgeClient(live_server, token)
    keeper = PaperKeeper(tmp_path / "station" / "papers", client=lambda: client)
    assert keeper.fetch_key("c1-sit")
    with pytest.raises(PaperDamaged, match="failed its integrity check"):
        keeper.open("c1-sit")
    assert keeper.cached("c1-sit") is None  # dropped: "refresh" downloads it again
    bad = {"sitting": "c1-sit", "key": "not base64!"}
    assert keeper.key_pushed(bad) is False and keeper.key_pushed({"sitting": "c1-sit", "key": "AAAA"}) is False


def test_a_refused_key_push_is_retried_until_it_gets_through(app, settings, broker):
    """The broker refuses the edge's login (a wrong password): the release is audited once as not
    pushed, the next rounds try again without auditing, and once the broker takes the push the
    station gets the key and the audit says so once. After the entry cutoff nothing is retried."""
    seed(app, starts_in=-5)
    received: queue.Queue[StationCommand] = queue.Queue()
    publisher = StatusPublisher("127.0.0.1", broker.port, "st-01", USERS["st-01"], CENTRE, "st-01",
                                on_command=received.put)
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        subscribed(broker, received)
        refused = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"password": "wrong"})})
        scheduler = Scheduler(refused, app, enqueue=lambda *a: None, job_state=lambda attempt: None)

        def push_audit() -> list[dict]:
            with app.app_context():
                return [e.payload for e in db.session.scalars(
                    select(Event).where(Event.kind.in_(papers.PUSH_AUDIT_KINDS)).order_by(Event.id))]

        assert scheduler.run_once(utcnow())["papers"] == 1
        assert [p["pushed"] for p in push_audit()] == [False]
        assert scheduler.run_once(utcnow())["papers"] == 0
        assert [p["pushed"] for p in push_audit()] == [False], "a failed retry is not audited again"
        assert received.empty(), "the refused push delivered nothing"

        scheduler.settings = settings  # the edge's broker credentials are right again
        scheduler.run_once(utcnow())
        while (command := received.get(timeout=10)).kind != "paper_key":
            pass
        assert command.payload["sitting"] == "c1-sit"
        audit = push_audit()
        assert [(p["pushed"], p.get("retried", False)) for p in audit] == [(False, False), (True, True)]
        assert audit[1]["stations"] == ["st-01"]
        scheduler.run_once(utcnow())
        assert len(push_audit()) == 2, "a push that got through is not repeated"
    finally:
        publisher.stop()


def test_no_key_push_is_retried_after_the_entry_cutoff(app, settings):
    seed(app, starts_in=-5)  # no broker on the settings' port: the push fails
    scheduler = Scheduler(settings, app, enqueue=lambda *a: None, job_state=lambda attempt: None)
    assert scheduler.run_once(utcnow())["papers"] == 1
    with app.app_context():
        sitting = db.session.get(Sitting, "c1-sit")
        assert len(papers.unpushed_releases(db.session, settings.data_dir, CENTRE, utcnow())) == 1
        assert papers.unpushed_releases(db.session, settings.data_dir, CENTRE, sitting.entry_closes_at) == []


def test_a_broker_that_never_answers_costs_one_push_per_round(app, settings):
    """A broker that takes the connection and never answers (no CONNACK): the round's first key push
    waits out its timeout and the round's other pushes are not tried, so the daemon's other chores
    are not held up once per sitting. Every sitting is still released (audited as not pushed)."""
    seed(app, starts_in=-5)
    with app.app_context():
        station, _ = make_station(db.session, CENTRE, "st-02")
        other = make_sitting(db.session, CENTRE, "c1-sit2", starts_in=-5)
        make_attempt(db.session, make_candidate(db.session, other), station)
        db.session.commit()
    accepted: list[socket.socket] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def take_and_ignore() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=take_and_ignore, daemon=True)
    thread.start()
    silent = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"port": server.getsockname()[1]})})
    scheduler = Scheduler(silent, app, enqueue=lambda *a: None, job_state=lambda attempt: None, key_push_timeout=1.0)
    try:
        assert scheduler.run_once(utcnow())["papers"] == 2
        assert len(accepted) == 1, "after one push got no answer, the round tried no other"
        with app.app_context():
            audit = [e.payload for e in db.session.scalars(
                select(Event).where(Event.kind.in_(papers.PUSH_AUDIT_KINDS)).order_by(Event.id))]
            assert sorted((p["sitting"], p["pushed"]) for p in audit) == [("c1-sit", False), ("c1-sit2", False)]
            assert len(papers.unpushed_releases(db.session, settings.data_dir, CENTRE, utcnow())) == 2
        assert scheduler.run_once(utcnow())["papers"] == 0
        assert len(accepted) == 2, "the retry round, too, stops at its first failure"
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for conn in accepted:
            conn.close()
