"""Mosquitto configuration of a centre: listener, password file and ACL.

The ACL gives the edge user the whole centre (``examkiosk/<centre>/#``) and every other user,
a station whose broker user name is its station id, only its own subtree to write and its
own command topic plus the sitting controls to read::

    pattern write examkiosk/<centre>/station/%u/#
    pattern read  examkiosk/<centre>/station/%u/cmd
    pattern read  examkiosk/<centre>/sitting/#

Mosquitto started as root reads these files after dropping to the ``mosquitto`` user, so
they are chowned to it when we run as root. A running broker picks up added users on SIGHUP,
and on SIGHUP it also disconnects every client whose user is no longer in the password file
(with ``per_listener_settings false``, as here; tests/provisioning/test_broker_users.py checks
this on the real broker). With ``pid_file`` the broker writes its pid where the edge finds it
to send that SIGHUP (edge_server/services/broker.py); its directory is the broker's to write.
Mosquitto warns at start that the ``sitting/#`` pattern has no ``%u``: expected, it applies to
every user on purpose.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from provisioning.files import write_private
from station.topics import check_level

logger = logging.getLogger(__name__)

BROKER_USER = "mosquitto"
CONF_NAME = "mosquitto.conf"
PASSWORD_NAME = "passwd"
ACL_NAME = "acl"


class MqttProvisioningError(Exception):
    """The broker files could not be written."""


def acl_text(centre: str, edge_user: str = "edge") -> str:
    check_level(centre, "centre")
    check_level(edge_user, "edge user")
    root = f"examkiosk/{centre}"
    return (
        "# examkiosk: written by provisioning.mqtt; a station writes only under its own id.\n"
        f"pattern write {root}/station/%u/#\n"
        f"pattern read {root}/station/%u/cmd\n"
        f"pattern read {root}/sitting/#\n"
        "\n"
        f"user {edge_user}\n"
        f"topic readwrite {root}/#\n"
    )


def conf_text(*, port: int, bind: str, password_file: Path, acl_file: Path, pid_file: Path | None = None) -> str:
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return (
        "# examkiosk broker: written by provisioning.mqtt\n"
        "per_listener_settings false\n"
        f"listener {port} {bind}\n"
        "allow_anonymous false\n"
        f"password_file {password_file}\n"
        f"acl_file {acl_file}\n"
        "persistence false\n"
        "log_dest stdout\n"
        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        "connection_messages true\n"
        "log_timestamp true\n"
        + (f"pid_file {pid_file}\n" if pid_file is not None else "")
    )


def _check_user(user: str, password: str) -> None:
    check_level(user, "MQTT user")
    if not password or "\n" in password or "\r" in password:
        raise ValueError(f"MQTT user {user!r} needs a one-line, non-empty password")


def _run_passwd(*args: str) -> None:
    try:
        subprocess.run(["mosquitto_passwd", *args], check=True, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise MqttProvisioningError("mosquitto_passwd not found (apt-get install mosquitto)") from exc
    except subprocess.CalledProcessError as exc:
        raise MqttProvisioningError(f"mosquitto_passwd failed: {exc.stderr.strip() or exc.returncode}") from exc


def chown_to_broker(*paths: Path) -> None:
    """Give the files to the ``mosquitto`` user when we are root (it reads them after dropping)."""
    if os.geteuid() != 0:
        return
    for path in paths:
        try:
            shutil.chown(path, BROKER_USER, BROKER_USER)
        except LookupError:
            logger.warning("no %s user: %s stays owned by root", BROKER_USER, path)
            return


def write_password_file(path: Path, users: dict[str, str]) -> Path:
    """A hashed password file: the plain file (mode 0600) is hashed in place with ``mosquitto_passwd -U``."""
    for user, password in users.items():
        _check_user(user, password)
    write_private(path, "".join(f"{u}:{p}\n" for u, p in users.items()), replace=True)
    try:
        _run_passwd("-U", str(path))
    except BaseException:
        path.unlink(missing_ok=True)  # never leave plain passwords behind
        raise
    chown_to_broker(path)
    return path


@contextlib.contextmanager
def _locked(password_file: Path) -> Iterator[None]:
    """One writer of the password file at a time (gunicorn workers, the CLI)."""
    lock = password_file.with_name(password_file.name + ".lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def add_station_user(password_file: Path, user: str, password: str) -> None:
    """Add or change one user in an existing password file (then SIGHUP the broker)."""
    _check_user(user, password)
    password_file = Path(password_file)
    with _locked(password_file):
        mode = password_file.stat().st_mode & 0o777
        _run_passwd("-b", str(password_file), user, password)
        os.chmod(password_file, mode)
        chown_to_broker(password_file)


def password_file_users(password_file: Path) -> list[str]:
    """The user names in a password file (not their hashes)."""
    return [line.split(":", 1)[0] for line in Path(password_file).read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def remove_station_user(password_file: Path, user: str) -> bool:
    """Remove one user from the password file (then SIGHUP the broker); False if it was not there."""
    check_level(user, "MQTT user")
    password_file = Path(password_file)
    with _locked(password_file):
        lines = password_file.read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.split(":", 1)[0] != user]
        if len(kept) == len(lines):
            return False
        write_private(password_file, "".join(kept), replace=True, mode=password_file.stat().st_mode & 0o777)
        chown_to_broker(password_file)
    return True


def write_broker_files(dir: Path, *, port: int, centre: str, users: dict[str, str], edge_user: str = "edge",
                       bind: str = "127.0.0.1", pid_file: Path | None = None) -> Path:
    """Write ``mosquitto.conf``, the password file and the ACL into ``dir``; returns the conf path.

    With ``pid_file`` the broker writes its pid there; its directory is created and given to the
    broker's user (Mosquitto writes the file after dropping privileges).
    """
    dir = Path(dir).resolve()
    dir.mkdir(parents=True, exist_ok=True)
    password_file, acl_file, conf = dir / PASSWORD_NAME, dir / ACL_NAME, dir / CONF_NAME
    acl = acl_text(centre, edge_user)
    write_password_file(password_file, users)
    write_private(acl_file, acl, replace=True)
    if pid_file is not None:
        pid_file = Path(pid_file).resolve()
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        chown_to_broker(pid_file.parent)
    write_private(conf, conf_text(port=port, bind=bind, password_file=password_file, acl_file=acl_file,
                                   pid_file=pid_file), replace=True, mode=0o644)
    chown_to_broker(acl_file, conf)
    logger.info("broker files for centre %s in %s (%d users, listener %s:%d)", centre, dir, len(users), bind, port)
    return conf
