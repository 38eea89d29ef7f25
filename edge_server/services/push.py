"""Commands pushed from the edge to one station over MQTT (its ``cmd`` topic, QoS 1).

A push is a courtesy that makes the station react within a second: a review's decision,
for instance. Staff actions queue theirs (``work_queue.enqueue_push``, sent by ``jobs/push.py``);
the daemon sends the paper keys itself. Every such decision is also in the database and the station asks the API for
it as well, so a push that cannot be delivered (broker down) is logged and not an error.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from paho.mqtt import client as mqtt_client
from paho.mqtt.client import MQTTv5

from edge_server.config import EdgeSettings
from examkiosk_wire import topics

logger = logging.getLogger(__name__)

# How long one push may take (connect, CONNACK, every PUBACK) before it counts as not pushed.
PUSH_TIMEOUT = 10.0


class PushFailed(Exception):
    """The broker could not be reached, refused the login, or refused a publish."""


def edge_client(settings: EdgeSettings, client_id: str = "") -> mqtt_client.Client:
    """A paho MQTT v5 client logged in as the edge (``[mqtt] username``/``password``), not yet connected."""
    client = mqtt_client.Client(mqtt_client.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTv5)
    if settings.mqtt.username:
        client.username_pw_set(settings.mqtt.username, settings.mqtt.password)
    return client


def publish(settings: EdgeSettings, messages: list[tuple[str, str]], timeout: float = PUSH_TIMEOUT, *,
            retain: bool = False) -> None:
    """Publish ``(topic, payload)`` pairs at QoS 1 (``retain``ed or not) over one connection, as the
    edge, and wait for every PUBACK.

    Under MQTT v5 the broker says why it refuses: a CONNACK reason code (a wrong password, an
    unknown user) or a PUBACK reason code (a topic the ACL denies). Either is a :class:`PushFailed`,
    as is no answer within ``timeout``; paho's ``publish.multiple`` would not report a denied
    publish and retries a dropped connection forever."""
    mqtt = settings.mqtt
    client = edge_client(settings)
    connected = threading.Event()
    lock = threading.Lock()
    outcome: dict[str, Any] = {"connack": None, "acks": {}, "closed": None}
    all_acked = threading.Event()
    expected: set[int] = set()

    def on_connect(_client, _userdata, _flags, reason_code, _properties):
        outcome["connack"] = reason_code
        connected.set()

    def on_disconnect(_client, _userdata, _flags, reason_code, _properties):
        outcome["closed"] = reason_code
        connected.set()
        all_acked.set()

    def on_publish(_client, _userdata, mid, reason_code, _properties):
        with lock:
            outcome["acks"][mid] = reason_code
            if expected and expected <= set(outcome["acks"]):
                all_acked.set()

    client.on_connect, client.on_disconnect, client.on_publish = on_connect, on_disconnect, on_publish
    try:
        client.connect(mqtt.host, mqtt.port, keepalive=10)
    except OSError as exc:
        raise PushFailed(f"cannot reach the broker at {mqtt.host}:{mqtt.port}: {exc}") from exc
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise PushFailed("the broker did not answer the login")
        connack = outcome["connack"]
        if connack is None:
            raise PushFailed(f"the broker closed the connection during the login ({outcome['closed']})")
        if connack.is_failure:
            raise PushFailed(f"the broker refused the login: {connack}")
        # Published without holding ``lock``: paho calls on_publish (which takes it) while holding its
        # own message lock, which publish() takes too; holding ours here deadlocked both threads.
        mids = [client.publish(topic, payload, qos=1, retain=retain).mid for topic, payload in messages]
        with lock:
            expected.update(mids)
            if expected <= set(outcome["acks"]):
                all_acked.set()
        if not all_acked.wait(timeout):
            raise PushFailed("the broker did not acknowledge every command")
        with lock:
            missing = expected - set(outcome["acks"])
            refused = [code for mid, code in outcome["acks"].items() if mid in expected and code.is_failure]
        if missing:
            raise PushFailed(f"the connection closed before {len(missing)} command(s) were acknowledged")
        if refused:
            raise PushFailed(f"the broker refused {len(refused)} command(s): {refused[0]}")
    finally:
        client.disconnect()
        client.loop_stop()


def send(settings: EdgeSettings, station_ids: list[str], command: topics.StationCommand, *,
         timeout: float = PUSH_TIMEOUT) -> bool:
    """Publish ``command`` (built with ``examkiosk_wire.commands.command``) to each station over one
    broker connection; False if the broker could not be reached, refused the login or a publish, or
    did not answer within ``timeout``. Blocking: the daemon and the worker call it, never a request."""
    if not station_ids:
        return True
    try:
        publish(settings, [(topics.cmd_topic(settings.centre, sid), command.to_json()) for sid in station_ids], timeout)
    except PushFailed as exc:
        logger.warning("could not push %s to %s over MQTT (%s); the station(s) will ask the API", command.kind,
                       ", ".join(station_ids), exc)
        return False
    return True


def push_to_station(settings: EdgeSettings, station_id: str, kind: str, payload: dict[str, Any], *,
                    attempt: str | None = None) -> bool:
    """A command given by kind and payload (a probe's ``ping``, say) to one station; see :func:`send`."""
    return send(settings, [station_id], topics.StationCommand(kind=kind, payload=payload, attempt=attempt,
                                                              ts=time.time()))


def push_to_stations(settings: EdgeSettings, station_ids: list[str], kind: str, payload: dict[str, Any], *,
                     attempt: str | None = None, timeout: float = PUSH_TIMEOUT) -> bool:
    """The same command to several stations over one broker connection; see :func:`send`."""
    return send(settings, station_ids, topics.StationCommand(kind=kind, payload=payload, attempt=attempt,
                                                             ts=time.time()), timeout=timeout)
