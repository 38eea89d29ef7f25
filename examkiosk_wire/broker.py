"""Mosquitto configuration of a centre: listeners and the dynamic-security plugin.

Stations reach the broker on its TLS listener, which presents the edge's own certificate (the
one they pin for the API, see examkiosk_wire/pinning.py); the edge's own clients use a plain listener,
on loopback in a real centre.

The broker's users and their rights live in the plugin's JSON file, which the broker owns and
rewrites itself; the edge changes them while the broker runs by sending commands on
``$CONTROL/dynamic-security/v1`` as its own MQTT user (edge_server/services/broker.py). So the
edge needs neither root, nor the broker's files, nor a signal to the broker's process.

Roles (the plugin in Mosquitto 2.0 has no ``%u`` patterns, so each station gets its own role)::

    examkiosk-edge      the whole centre (examkiosk/<centre>/#) and the plugin's control topic
    examkiosk-stations  read examkiosk/<centre>/sitting/#            (every station)
    station:<id>        write examkiosk/<centre>/station/<id>/#,
                        read  examkiosk/<centre>/station/<id>/cmd     (one station)

Everything else is denied (``defaultACLAccess`` all false but unsubscribe). Passwords are stored
as the plugin stores them: PBKDF2-HMAC-SHA512 with a 12-byte salt.

Two ways to run such a broker: ``write_broker_files`` makes a private one's whole configuration
(the demo, the tests); ``install_broker_config`` adds the centre to the system's Mosquitto
(``/etc/mosquitto/conf.d``), which is how an edge server is set up (README, "Installing an edge server").
"""
from __future__ import annotations

import base64
import glob
import hashlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from examkiosk_wire import topics
from examkiosk_wire.files import chown, write_private
from examkiosk_wire.topics import check_level

logger = logging.getLogger(__name__)

BROKER_USER = "mosquitto"
CONF_NAME = "mosquitto.conf"
DYNSEC_NAME = "dynamic-security.json"
TLS_NAME = "edge_tls.pem"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
EDGE_ROLE = "examkiosk-edge"
STATIONS_ROLE = "examkiosk-stations"
PBKDF2_ITERATIONS = 101  # what mosquitto_ctrl writes; the plugin reads the count from the file
PLUGIN_GLOBS = ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so",
                "/usr/lib/mosquitto/mosquitto_dynamic_security.so", "/usr/local/lib/mosquitto_dynamic_security.so")


class MqttProvisioningError(Exception):
    """The broker's configuration could not be written."""


MAX_QUEUED_MESSAGES = 200_000


def plugin_path() -> Path:
    """Where Debian's mosquitto package put the dynamic-security plugin."""
    for pattern in PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    raise MqttProvisioningError("mosquitto_dynamic_security.so not found (apt-get install mosquitto, 2.0 or later)")


def station_role(station_id: str) -> str:
    return f"station:{check_level(station_id, 'station id')}"


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def _read(topic: str) -> list[dict[str, Any]]:
    return [_acl("subscribePattern", topic), _acl("publishClientReceive", topic)]


# The rights below are built from the topic builders (examkiosk_wire.topics), so a topic and the
# right to use it cannot drift apart.

def edge_role_acls(centre: str) -> list[dict[str, Any]]:
    everything = topics.centre_wildcard(centre)
    return [_acl("publishClientSend", everything), *_read(everything),
            _acl("publishClientSend", f"{CONTROL_TOPIC}/#"), *_read(f"{CONTROL_TOPIC}/#")]


def stations_role_acls(centre: str) -> list[dict[str, Any]]:
    return _read(topics.sitting_wildcard(centre))


def station_role_acls(centre: str, station_id: str) -> list[dict[str, Any]]:
    return [_acl("publishClientSend", topics.station_wildcard(centre, station_id)),
            *_read(topics.cmd_topic(centre, station_id))]


def check_password(user: str, password: str) -> None:
    check_level(user, "MQTT user")
    if not isinstance(password, str) or not password or "\n" in password or "\r" in password:
        raise ValueError(f"MQTT user {user!r} needs a one-line, non-empty password")


def dynsec_client(user: str, password: str, roles: list[str]) -> dict[str, Any]:
    """A client entry of the plugin's file, its password hashed the way the plugin checks it."""
    check_password(user, password)
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return {"username": user, "roles": [{"rolename": r} for r in roles],
            "password": base64.b64encode(digest).decode(), "salt": base64.b64encode(salt).decode(),
            "iterations": PBKDF2_ITERATIONS}


def dynsec_config(centre: str, users: dict[str, str], edge_user: str = "edge") -> dict[str, Any]:
    """The plugin's whole file: the edge as its admin and ``users`` (other than the edge) as stations."""
    if edge_user not in users:
        raise ValueError(f"the edge's MQTT user {edge_user!r} needs a password")
    roles = [{"rolename": EDGE_ROLE, "acls": edge_role_acls(centre)},
             {"rolename": STATIONS_ROLE, "acls": stations_role_acls(centre)}]
    clients = [dynsec_client(edge_user, users[edge_user], [EDGE_ROLE])]
    for user, password in users.items():
        if user == edge_user:
            continue
        roles.append({"rolename": station_role(user), "acls": station_role_acls(centre, user)})
        clients.append(dynsec_client(user, password, [station_role(user), STATIONS_ROLE]))
    return {"defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                                 "subscribe": False, "unsubscribe": True},
            "clients": clients, "groups": [], "roles": roles}


def conf_text(*, port: int, bind: str, dynsec_file: Path, plugin: Path | None = None, tls_port: int = 0,
              tls_bind: str = "0.0.0.0", tls_file: Path | None = None, standalone: bool = True) -> str:
    """The listeners and the plugin. With ``tls_port`` a second listener serves TLS with ``tls_file``
    (the edge's key and certificate in one PEM). ``standalone`` adds what a private broker's own
    file needs (the system's mosquitto.conf already says where to log and whether to persist)."""
    for number in (port, *([tls_port] if tls_port else [])):
        if not 1 <= number <= 65535:
            raise ValueError(f"port {number} out of range")
    if tls_port and tls_file is None:
        raise ValueError("a TLS listener needs the edge's certificate file")
    text = (
        "# examkiosk broker: written by examkiosk_wire.broker\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        # The edge bridge's session holds the stations' events while the edge daemon restarts
        # (1,000 stations send about 50 a second); the default of 1000 would drop them after seconds.
        f"max_queued_messages {MAX_QUEUED_MESSAGES}\n"
        f"plugin {plugin or plugin_path()}\n"
        f"plugin_opt_config_file {dynsec_file}\n"
        f"listener {port} {bind}\n"
    )
    if tls_port:
        text += (f"listener {tls_port} {tls_bind}\n"
                 f"certfile {tls_file}\n"
                 f"keyfile {tls_file}\n")
    if standalone:
        text += ("persistence false\n"
                 "log_dest stdout\n"
                 "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
                 "connection_messages true\n"
                 "log_timestamp true\n")
    return text


def _broker_state_dir(path: Path) -> None:
    """The plugin rewrites its file (a new file, then a rename) as the broker's user: the folder is its."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    chown(path, BROKER_USER)


def write_dynsec_file(path: Path, centre: str, users: dict[str, str], edge_user: str = "edge", *,
                      replace: bool = True) -> Path:
    _broker_state_dir(path.parent)
    config = dynsec_config(centre, users, edge_user)
    write_private(path, json.dumps(config, indent=1) + "\n", replace=replace, owner=BROKER_USER)
    return path


def copy_certificate(tls_pem: Path, dir: Path) -> Path:
    """The edge's key and certificate, copied for the broker: it reads them as its own user."""
    copy = Path(dir) / TLS_NAME
    write_private(copy, Path(tls_pem).read_bytes(), replace=True, owner=BROKER_USER)
    return copy


def write_broker_files(dir: Path, *, port: int, centre: str, users: dict[str, str], edge_user: str = "edge",
                       bind: str = "127.0.0.1", tls_port: int = 0, tls_pem: Path | None = None) -> Path:
    """A private broker's ``mosquitto.conf`` and plugin file in ``dir`` (replacing both); returns the conf.

    ``users`` must hold ``edge_user``; every other user is a station of ``centre``. With ``tls_port``
    the broker also serves TLS on ``bind`` with the edge's certificate ``tls_pem``."""
    dir = Path(dir).resolve()
    dynsec_file = dir / DYNSEC_NAME
    write_dynsec_file(dynsec_file, centre, users, edge_user)
    tls_file = copy_certificate(tls_pem, dir) if tls_port and tls_pem is not None else None
    conf = dir / CONF_NAME
    write_private(conf, conf_text(port=port, bind=bind, dynsec_file=dynsec_file, tls_port=tls_port, tls_bind=bind,
                                  tls_file=tls_file), replace=True, mode=0o644)
    logger.info("broker files for centre %s in %s (%d users, listener %s:%d%s)", centre, dir, len(users), bind, port,
                f", TLS {tls_port}" if tls_port else "")
    return conf


def install_broker_config(*, conf_file: Path, dynsec_file: Path, port: int, bind: str, centre: str,
                          edge_user: str, edge_password: str, tls_port: int = 0, tls_pem: Path | None = None) -> bool:
    """Add the centre's listeners and plugin to a system Mosquitto (``conf_file`` in its conf.d).

    With ``tls_port`` the stations' listener is TLS on ``bind`` and the plain one, for the edge
    alone, listens on loopback; without, the plain one listens on ``bind``. The plugin's file is
    made only if it does not exist: it holds the enrolled stations, which the broker keeps up to
    date. Returns whether it was made. Restart Mosquitto afterwards."""
    dynsec_file, conf_file = Path(dynsec_file).resolve(), Path(conf_file)
    if tls_port and (tls_pem is None or not Path(tls_pem).exists()):  # checked before anything is written
        raise MqttProvisioningError(f"the edge's certificate {tls_pem} does not exist yet: start "
                                    "examkiosk-edge-web once (it makes it), then run this again")
    made = False
    if not dynsec_file.exists():
        write_dynsec_file(dynsec_file, centre, {edge_user: edge_password}, edge_user, replace=False)
        made = True
    else:
        logger.info("%s exists: its users are kept", dynsec_file)
    tls_file = copy_certificate(tls_pem, dynsec_file.parent) if tls_port else None
    text = conf_text(port=port, bind="127.0.0.1" if tls_port else bind, dynsec_file=dynsec_file, tls_port=tls_port,
                     tls_bind=bind, tls_file=tls_file, standalone=False)
    write_private(conf_file, text, replace=True, mode=0o644)
    return made


def included_by(main_conf: Path, conf_file: Path) -> str:
    """Why the system broker would not read ``conf_file``, or "" when its main file includes its folder
    (Debian's mosquitto.conf has ``include_dir /etc/mosquitto/conf.d``; a hand-edited one may not)."""
    try:
        lines = Path(main_conf).read_text().splitlines()
    except OSError as exc:
        return f"cannot read {main_conf}: {exc}"
    folder = Path(conf_file).resolve().parent
    included = {Path(line.split(None, 1)[1].strip()).resolve() for line in lines
                if line.startswith("include_dir ") and len(line.split(None, 1)) == 2}
    if folder in included:
        return ""
    return f"{main_conf} has no 'include_dir {folder}': add it, or Mosquitto never reads {Path(conf_file).name}"
