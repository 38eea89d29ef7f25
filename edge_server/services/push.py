"""Commands pushed from the edge to one station over MQTT (its ``cmd`` topic, QoS 1).

A push is a courtesy that makes the station react within a second: a review's decision,
for instance. Every such decision is also in the database and the station asks the API for
it as well, so a push that cannot be delivered (broker down) is logged and not an error.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import paho.mqtt.publish as mqtt_publish
from paho.mqtt import MQTTException
from paho.mqtt.client import MQTTv5

from edge_server.config import EdgeSettings
from station import topics

logger = logging.getLogger(__name__)


def push_to_station(settings: EdgeSettings, station_id: str, kind: str, payload: dict[str, Any], *,
                    attempt: str | None = None) -> bool:
    """Publish a StationCommand to ``station_id``; False if the broker could not be reached."""
    command = topics.StationCommand(kind=kind, payload=payload, attempt=attempt, ts=time.time())
    mqtt = settings.mqtt
    auth = {"username": mqtt.username, "password": mqtt.password} if mqtt.username else None
    try:
        mqtt_publish.single(topics.cmd_topic(settings.centre, station_id), command.to_json(), qos=1,
                            hostname=mqtt.host, port=mqtt.port, auth=auth, protocol=MQTTv5, keepalive=10)
    except (OSError, MQTTException) as exc:
        logger.warning("could not push %s to station %s over MQTT (%s); it will ask the API", kind, station_id, exc)
        return False
    return True


def push_to_stations(settings: EdgeSettings, station_ids: list[str], kind: str, payload: dict[str, Any], *,
                     attempt: str | None = None) -> bool:
    """The same command to several stations over one broker connection (a broadcast); False if the
    broker could not be reached."""
    if not station_ids:
        return True
    command = topics.StationCommand(kind=kind, payload=payload, attempt=attempt, ts=time.time()).to_json()
    mqtt = settings.mqtt
    auth = {"username": mqtt.username, "password": mqtt.password} if mqtt.username else None
    try:
        mqtt_publish.multiple([{"topic": topics.cmd_topic(settings.centre, sid), "payload": command, "qos": 1}
                               for sid in station_ids],
                              hostname=mqtt.host, port=mqtt.port, auth=auth, protocol=MQTTv5, keepalive=10)
    except (OSError, MQTTException) as exc:
        logger.warning("could not push %s to %d stations over MQTT (%s); they will ask the API", kind,
                       len(station_ids), exc)
        return False
    return True
