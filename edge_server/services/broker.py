"""The edge's hold on Mosquitto's users: one broker user per station, added at enrolment, removed at
revocation, through the broker's dynamic-security plugin.

The edge's own MQTT login is the plugin's admin (examkiosk_wire/broker.py gives it the role): it sends
commands to ``$CONTROL/dynamic-security/v1`` and reads the answers, which the broker sends to the
asking client only. Deleting a client disconnects it at once and refuses it from then on. The
edge runs as its own unprivileged user: no broker file is written, no process is signalled.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from edge_server.config import EdgeSettings
from edge_server.errors import EdgeError
from edge_server.services.push import PushFailed, edge_client, publish, send
from examkiosk_wire import broker as broker_config
from examkiosk_wire import topics
from examkiosk_wire.commands import Revoked, command

logger = logging.getLogger(__name__)

RESPONSE_TOPIC = f"{broker_config.CONTROL_TOPIC}/response"
CONTROL_TIMEOUT = 5.0  # the plugin answers in milliseconds; a broker without it never does


class BrokerError(EdgeError):
    """The broker's users could not be changed (broker unreachable, login refused, command failed)."""

    status = 503
    code = "broker_unavailable"


def _hint(settings: EdgeSettings) -> str:
    return (f"is {settings.mqtt.username!r} the admin of the broker's dynamic-security plugin "
            f"(flask --app edge_server:create_app broker-config)?")


def control(settings: EdgeSettings, commands: list[dict[str, Any]], *,
            timeout: float = CONTROL_TIMEOUT) -> list[dict[str, Any]]:
    """Send ``commands`` to the dynamic-security plugin in one request; its answers, in order.

    A command the plugin refuses comes back with an ``error`` (the caller decides whether that
    matters, e.g. "Client not found" on a delete). BrokerError when the broker cannot be reached,
    refuses the login or the request, or does not answer within ``timeout``."""
    mqtt = settings.mqtt
    correlation = secrets.token_hex(8)
    commands = [dict(c, correlationData=f"{correlation}:{i}") for i, c in enumerate(commands)]
    client = edge_client(settings)
    done = threading.Event()
    outcome: dict[str, Any] = {"connack": None, "suback": None, "puback": None, "answer": None, "closed": None}

    def on_connect(c, _userdata, _flags, reason_code, _properties):
        outcome["connack"] = reason_code
        if reason_code.is_failure:
            done.set()
        else:
            c.subscribe(RESPONSE_TOPIC, qos=1)

    def on_subscribe(c, _userdata, _mid, reason_codes, _properties):
        outcome["suback"] = reason_codes[0]
        if reason_codes[0].is_failure:
            done.set()
        else:
            c.publish(broker_config.CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)

    def on_publish(_c, _userdata, _mid, reason_code, _properties):
        outcome["puback"] = reason_code
        if reason_code.is_failure:
            done.set()

    def on_message(_c, _userdata, message):
        try:
            responses = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        if responses and all(isinstance(r, dict) for r in responses) and \
                str(responses[0].get("correlationData", "")).startswith(f"{correlation}:"):
            outcome["answer"] = responses
            done.set()

    def on_disconnect(_c, _userdata, _flags, reason_code, _properties):
        outcome["closed"] = reason_code
        done.set()

    client.on_connect, client.on_subscribe, client.on_publish = on_connect, on_subscribe, on_publish
    client.on_message, client.on_disconnect = on_message, on_disconnect
    where = f"the MQTT broker at {mqtt.host}:{mqtt.port}"
    try:
        client.connect(mqtt.host, mqtt.port, keepalive=10)
    except OSError as exc:
        raise BrokerError(f"cannot reach {where}: {exc}") from exc
    client.loop_start()
    try:
        answered = done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    connack, suback, puback = outcome["connack"], outcome["suback"], outcome["puback"]
    if connack is not None and connack.is_failure:
        raise BrokerError(f"{where} refused the edge's login {mqtt.username!r}: {connack}")
    if (suback is not None and suback.is_failure) or (puback is not None and puback.is_failure):
        raise BrokerError(f"{where} refused the edge's user-management request; {_hint(settings)}")
    if outcome["answer"] is None:
        why = f"closed the connection ({outcome['closed']})" if answered else f"did not answer in {timeout:g} s"
        raise BrokerError(f"{where} {why} to the edge's user-management request; {_hint(settings)}")
    answer = outcome["answer"]
    if len(answer) != len(commands):
        raise BrokerError(f"{where} answered {len(answer)} of {len(commands)} user-management commands")
    return answer


def _check(responses: list[dict[str, Any]], *, allowed: tuple[str, ...] = ()) -> None:
    for response in responses:
        error = response.get("error")
        if error and error not in allowed:
            raise BrokerError(f"the broker refused {response.get('command')}: {error}")


def station_users(settings: EdgeSettings) -> list[str]:
    """Every user the broker knows (stations, the edge, anyone an IT person added)."""
    (answer,) = control(settings, [{"command": "listClients", "verbose": False, "count": -1}])
    _check([answer])
    return list(answer.get("data", {}).get("clients", []))


def add_user(settings: EdgeSettings, user: str, password: str) -> None:
    """Give station ``user`` a broker login with its own role; BrokerError (503) if that cannot be done."""
    broker_config.check_password(user, password)
    role = broker_config.station_role(user)
    answer = control(settings, [
        {"command": "createRole", "rolename": role, "acls": broker_config.station_role_acls(settings.centre, user)},
        {"command": "createClient", "username": user, "password": password,
         "roles": [{"rolename": role}, {"rolename": broker_config.STATIONS_ROLE}]},
    ])
    role_made, client_made = (not response.get("error") for response in answer)
    if role_made and not client_made:  # take back the half-made user; an existing one stays as it was
        control(settings, [{"command": "deleteRole", "rolename": role}])
    _check(answer)
    logger.info("MQTT user %s added", user)


def remove_user(settings: EdgeSettings, user: str) -> bool:
    """Take station ``user``'s broker login away, which disconnects it; False if it had none."""
    answer = control(settings, [{"command": "deleteClient", "username": user},
                                {"command": "deleteRole", "rolename": broker_config.station_role(user)}])
    _check(answer, allowed=("Client not found", "Role not found"))
    return not answer[0].get("error")


@dataclass(frozen=True)
class CutOff:
    """What revoking a station did on the MQTT side."""

    notified: bool  # the ``revoked`` command reached the broker
    removed: bool  # its user existed and is gone (the broker dropped its connection)
    problem: str = ""


def publish_revoked_status(settings: EdgeSettings, station_id: str) -> bool:
    """A retained ``offline`` status with state ``revoked`` on the station's status topic (as the edge);
    False if the broker could not be reached or refused the login or the publish."""
    status = topics.StationStatus(station=station_id, online=False, state="revoked", ts=time.time())
    try:
        publish(settings, [(topics.status_topic(settings.centre, station_id), status.to_json())], retain=True)
    except PushFailed as exc:
        logger.warning("could not mark revoked station %s offline over MQTT: %s", station_id, exc)
        return False
    return True


def cut_off_station(settings: EdgeSettings, station_id: str) -> CutOff:
    """After a revocation: tell the station (``revoked`` on its cmd topic), then delete its broker
    user, which disconnects it and refuses it from then on; its retained status becomes
    ``offline``/``revoked`` (the broker sends no last will for a client it drops this way).

    The command goes first, while the station may still read it. Failures are logged and
    returned, never raised: the revocation itself (the API token) is already in the database.
    """
    notified = send(settings, [station_id], command(Revoked(station=station_id), ts=time.time()))
    try:
        removed = remove_user(settings, station_id)
    except BrokerError as exc:
        logger.error("station %s revoked, but its MQTT login: %s", station_id, exc.message)
        return CutOff(notified=notified, removed=False, problem=exc.message)
    publish_revoked_status(settings, station_id)
    logger.info("station %s: MQTT user %s", station_id, "removed" if removed else "was absent")
    return CutOff(notified=notified, removed=removed)
