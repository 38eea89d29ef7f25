"""The edge's hold on Mosquitto's users: one broker user per station, added at enrolment, removed at revocation.

The broker is configured by ``provisioning.mqtt``: a password file and a pattern ACL, so a new
station needs nothing but a password entry under its station id. After every change the edge
sends the running broker SIGHUP, at the pid Mosquitto wrote to ``mqtt.pid_file``; on that reload
Mosquitto re-reads the password file and disconnects every client whose user is gone.

A stale pid file (the broker died, the pid was reused) is detected: the edge signals the pid only
if ``/proc/<pid>/comm`` says it is a Mosquitto.
"""
from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from edge_server.config import EdgeSettings
from edge_server.errors import EdgeError
from provisioning import mqtt as broker_files

logger = logging.getLogger(__name__)


class BrokerError(EdgeError):
    """The broker's users could not be changed (its files or its process)."""

    status = 503
    code = "broker_unavailable"


@dataclass(frozen=True)
class BrokerFiles:
    password_file: Path
    pid_file: Path | None


def broker_files_of(settings: EdgeSettings) -> BrokerFiles | None:
    """The broker files this edge manages, or None when ``mqtt.password_file`` is not set."""
    if settings.mqtt.password_file is None:
        return None
    return BrokerFiles(password_file=settings.mqtt.password_file, pid_file=settings.mqtt.pid_file)


def broker_pid(pid_file: Path) -> int:
    """The running Mosquitto's pid from its pid file; BrokerError if there is none."""
    try:
        pid = int(Path(pid_file).read_text().strip())
    except FileNotFoundError as exc:
        raise BrokerError(f"the MQTT broker's pid file {pid_file} does not exist (is Mosquitto running?)") from exc
    except (OSError, ValueError) as exc:
        raise BrokerError(f"cannot read the MQTT broker's pid from {pid_file}: {exc}") from exc
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError as exc:
        raise BrokerError(f"the MQTT broker (pid {pid} from {pid_file}) is not running") from exc
    if comm != "mosquitto":
        raise BrokerError(f"pid {pid} from {pid_file} is {comm!r}, not mosquitto (stale pid file)")
    return pid


def reload_broker(files: BrokerFiles) -> bool:
    """SIGHUP the broker so it re-reads its password file; False when no pid file is configured."""
    if files.pid_file is None:
        logger.warning("mqtt.pid_file is not set: the broker sees the changed password file %s only when it "
                       "restarts or is reloaded", files.password_file)
        return False
    pid = broker_pid(files.pid_file)
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise BrokerError(f"cannot signal the MQTT broker (pid {pid}): {exc}") from exc
    logger.info("reloaded the MQTT broker (pid %d)", pid)
    return True


def add_user(files: BrokerFiles, user: str, password: str) -> None:
    """Give ``user`` a broker login and reload the broker; BrokerError (503) if that cannot be done."""
    if files.pid_file is not None:
        broker_pid(files.pid_file)  # refuse before writing anything if the broker cannot be reloaded
    try:
        broker_files.add_station_user(files.password_file, user, password)
    except (broker_files.MqttProvisioningError, OSError) as exc:
        raise BrokerError(f"cannot add MQTT user {user!r} to {files.password_file}: {exc}") from exc
    try:
        reload_broker(files)
    except BrokerError:
        remove_user(files, user, reload=False)
        raise


def remove_user(files: BrokerFiles, user: str, *, reload: bool = True) -> bool:
    """Take ``user``'s broker login away and reload (which disconnects it); False if it had none."""
    try:
        removed = broker_files.remove_station_user(files.password_file, user)
    except OSError as exc:
        raise BrokerError(f"cannot remove MQTT user {user!r} from {files.password_file}: {exc}") from exc
    if reload and removed:
        reload_broker(files)
    return removed


@dataclass(frozen=True)
class CutOff:
    """What revoking a station did on the MQTT side."""

    notified: bool  # the ``revoked`` command reached the broker
    removed: bool  # its user was in the password file and is gone
    reloaded: bool  # the broker re-read the file (and dropped the station's connection)
    problem: str = ""


def publish_revoked_status(settings: EdgeSettings, station_id: str) -> bool:
    """A retained ``offline`` status with state ``revoked`` on the station's status topic (as the edge)."""
    import time

    import paho.mqtt.publish as mqtt_publish
    from paho.mqtt import MQTTException
    from paho.mqtt.client import MQTTv5

    from station import topics

    status = topics.StationStatus(station=station_id, online=False, state="revoked", ts=time.time())
    mqtt = settings.mqtt
    auth = {"username": mqtt.username, "password": mqtt.password} if mqtt.username else None
    try:
        mqtt_publish.single(topics.status_topic(settings.centre, station_id), status.to_json(), qos=1, retain=True,
                            hostname=mqtt.host, port=mqtt.port, auth=auth, protocol=MQTTv5, keepalive=10)
    except (OSError, MQTTException) as exc:
        logger.warning("could not mark revoked station %s offline over MQTT: %s", station_id, exc)
        return False
    return True


def cut_off_station(settings: EdgeSettings, station_id: str) -> CutOff:
    """After a revocation: tell the station (``revoked`` on its cmd topic), then remove its broker user
    and reload the broker, which disconnects it and refuses it from then on; its retained status
    becomes ``offline``/``revoked`` (the broker sends no last will for a client it drops on reload).

    The command goes first, while the station may still read it. Failures are logged and
    returned, never raised: the revocation itself (the API token) is already in the database.
    """
    from edge_server.services.push import push_to_station

    notified = push_to_station(settings, station_id, "revoked", {"station": station_id})
    files = broker_files_of(settings)
    if files is None:
        problem = "mqtt.password_file is not set: the station's MQTT login was not removed"
        logger.error("station %s revoked, but %s", station_id, problem)
        return CutOff(notified=notified, removed=False, reloaded=False, problem=problem)
    removed = False
    try:
        removed = remove_user(files, station_id, reload=False)
        reloaded = reload_broker(files) if removed else False
    except BrokerError as exc:
        logger.error("station %s revoked, but its MQTT login: %s", station_id, exc.message)
        return CutOff(notified=notified, removed=removed, reloaded=False, problem=exc.message)
    if removed and not reloaded:
        problem = "mqtt.pid_file is not set: the broker drops the station's connection only when it restarts"
        return CutOff(notified=notified, removed=True, reloaded=False, problem=problem)
    # The broker sends no last will for a client it drops this way: say it for the station.
    publish_revoked_status(settings, station_id)
    logger.info("station %s: MQTT user %s, broker %s", station_id, "removed" if removed else "was absent",
                "reloaded" if reloaded else "not reloaded")
    return CutOff(notified=notified, removed=removed, reloaded=reloaded)
