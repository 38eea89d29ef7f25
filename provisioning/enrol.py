"""``examkiosk-provision enrol --code FFFF-XXXX-XXXX``: join this station to its centre's edge server.

1. Finds the edge over zeroconf, accepting only an announcement whose fingerprint (``fp``)
   starts with the code's first group: another edge, or a rogue announcer, is refused and never
   sees the code.
2. Checks the edge answers and that the two clocks agree (``GET /healthz``, its ``Date`` header).
3. Sends the code with this machine's name, the software version and the station's signing key
   to ``POST /api/v1/enrol``; the edge answers with a station id, an API token and MQTT
   credentials, and with its fingerprint, which must be the announced one.
4. Writes the station's settings (``/etc/examkiosk/station.toml``: mode 0600, atomically): station
   id, centre, data directory, the edge's API and pinned fingerprint, token and MQTT credentials,
   and empty ``[camera]``, ``[audio]``, ``[recording]`` and ``[kiosk]`` tables, which take the
   station software's own defaults until someone edits them for this machine. An existing file is
   replaced only with ``--force`` (checked before the code is used, so a refusal wastes no code).
5. Checks the written file the way the station unit's ``ExecStartPre`` does: the station program
   (the ``examkiosk-station`` entry point of the installed software, looked up when enrolling) runs
   with ``--check-config`` in a process of its own. Provisioning itself imports nothing of the
   station, so the station's settings model stays the only one.

Progress goes to stdout; a failure is one line on stderr (exit status 1; 2 for a malformed code).
"""
from __future__ import annotations

import argparse
import email.utils
import json
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
from pydantic import ValidationError

from examkiosk_wire import api
from examkiosk_wire.chain import StationKey
from examkiosk_wire.discovery import EdgeNotFound, discover_edge
from examkiosk_wire.enrolment_code import EXAMPLE, display, parse, prefix_of
from examkiosk_wire.files import chown, write_private
from examkiosk_wire.pinning import UntrustedServer, pinned_session
from examkiosk_wire.version import package_version
from provisioning import programs

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("/etc/examkiosk/station.toml")
DEFAULT_OWNER = "examkiosk"  # the station unit's User=
DEFAULT_DATA_DIR = Path("/var/lib/examkiosk-station")  # the station unit's StateDirectory=
KEY_FILE = "station_key.pem"  # the station's signing key, in its data directory
CHECK_TIMEOUT = 120.0  # seconds for the station program to load and check its settings
MAX_CLOCK_SKEW = 300.0
# Tables the station fills with its own defaults; written empty so the operator sees where to edit.
DEFAULT_TABLES = ("camera", "audio", "recording", "kiosk")


class EnrolFailed(Exception):
    """Enrolment stopped; the message is the one line the operator reads."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


# --- the station's settings file ----------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def render_toml(data: dict[str, Any], header: str = "") -> str:
    """Top-level keys, then one table per dict value (what the station settings need). None is left out."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key, value in data.items():
        if value is not None and not isinstance(value, dict):
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def station_config(*, answer: api.EnrolReply, service: Any, data_dir: Path, interfaces: list[str] | None,
                   discovery_timeout: float) -> dict[str, Any]:
    """The settings of the enrolled station: its identity from the edge; the tables in
    ``DEFAULT_TABLES`` empty, so the station's own defaults apply."""
    mqtt = answer.mqtt
    host = mqtt.host
    if host in ("", "0.0.0.0", "::"):
        host = service.mqtt_host  # the edge listens everywhere: the address it was found at
    edge: dict[str, Any] = {"api": service.api, "fingerprint": answer.fingerprint, "token": answer.token,
                            "discovery_timeout": discovery_timeout}
    if interfaces:
        edge["discovery_interfaces"] = list(interfaces)
    return {
        "station_id": answer.station_id,
        "centre": answer.centre,
        "data_dir": str(data_dir),
        "edge": edge,
        "mqtt": {"host": host, "port": mqtt.port or service.mqtt_port, "tls": mqtt.tls,
                 "username": mqtt.username, "password": mqtt.password},
        **{table: {} for table in DEFAULT_TABLES},
    }


# --- the station's own check of its settings ----------------------------------------------------

def station_check_command() -> list[str]:
    """The station program's ``--check-config``, as its unit's ``ExecStartPre`` runs it."""
    try:
        return programs.command(programs.STATION, "--check-config")
    except programs.ProgramMissing as exc:
        raise EnrolFailed(f"the station software is not installed here: {exc}") from exc


def check_station_config(command: list[str], config: Path, timeout: float = CHECK_TIMEOUT) -> None:
    """Run the station's check on ``config``; EnrolFailed with what it says when it refuses the file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_")}
    env["EXAMKIOSK_STATION_CONFIG"] = str(config)  # what the station unit sets (Environment=)
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise EnrolFailed(f"wrote {config}, but the station's check of it did not finish in {timeout:g} s; "
                          f"run `{programs.STATION} --check-config`") from exc
    if result.returncode != 0:
        said = "; ".join(line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip())
        raise EnrolFailed(f"wrote {config}, but the station refuses it (exit {result.returncode}): "
                          f"{said[-600:] or 'no message'}")


# --- talking to the edge ------------------------------------------------------------------------

def clock_skew(date_header: str | None, now: float) -> float | None:
    """Seconds the edge's clock (its HTTP ``Date``) is ahead of ours; None without a usable header."""
    if not date_header:
        return None
    try:
        edge = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    if edge.tzinfo is None:
        edge = edge.replace(tzinfo=timezone.utc)
    return edge.timestamp() - now


def _error_of(resp: Any) -> tuple[str, str]:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get("code") or f"http_{resp.status_code}"), str(body.get("error") or "")
    return f"http_{resp.status_code}", resp.text[:200].strip()


_EXPLAIN = {
    "code_expired": "code expired: ask the centre admin for a new code",
    "code_used": "code already used: ask the centre admin for a new code",
    "code_invalid": "code not valid: check it, or ask the centre admin for a new code",
    "code_wrong_edge": "code made by another edge server: use a code from this centre's Stations page",
    "too_many_tries": "too many wrong codes from this machine",
    "station_id_taken": "station id already taken: choose another --station-id, or none",
}


def enrol(*, code: str, config: Path, force: bool = False, interfaces: list[str] | None = None,
          timeout: float = 20.0, data_dir: Path | None = None, station_id: str | None = None,
          hostname: str | None = None, owner: str | None = DEFAULT_OWNER, max_clock_skew: float = MAX_CLOCK_SKEW,
          out: Any = None) -> dict[str, Any]:
    """Enrol this station; returns the settings written. EnrolFailed says why not, in one line."""
    out = out or sys.stdout

    def say(message: str) -> None:
        print(message, file=out, flush=True)

    normalised = parse(code)
    if normalised is None:
        raise EnrolFailed(f"malformed code {code!r}: it looks like {EXAMPLE} (letters and digits, dashes optional)",
                          status=2)
    prefix = prefix_of(normalised)
    config = Path(config)
    if config.exists() and not force:
        raise EnrolFailed(f"{config} already exists (this station is enrolled); add --force to replace it")
    data_dir = Path(data_dir) if data_dir else DEFAULT_DATA_DIR
    check = station_check_command()  # before the code is used: no station software, no enrolment

    say(f"Looking for the edge server whose fingerprint starts with {prefix} (up to {timeout:g} s)…")
    try:
        service = discover_edge(fp_prefix=prefix, timeout=timeout, interfaces=interfaces or None)
    except EdgeNotFound as exc:
        if exc.ignored:
            seen = "; ".join(f"{name.split('.')[0]} ({why})" for name, why in exc.ignored.items())
            raise EnrolFailed(f"fingerprint mismatch: no edge server whose fingerprint starts with {prefix}, "
                              f"refused {len(exc.ignored)}: {seen}") from exc
        raise EnrolFailed(f"server not found: no examkiosk edge server answered within {timeout:g} s "
                          f"(same network? --interfaces? is the edge daemon running?)") from exc
    say(f"Found {service.name.split('.')[0]} of centre {service.centre} at {service.api} "
        f"(fingerprint {service.fp[:16]}…)")

    # Pinned to the announced fingerprint: over HTTPS the server must hold that very certificate,
    # so a rogue copying the announcement fails in the TLS handshake, before the code is sent.
    session = pinned_session(service.fp)
    session.headers["User-Agent"] = f"examkiosk-provision/{package_version()}"
    try:
        try:
            health = session.get(f"{service.api}/healthz", timeout=10)
        except UntrustedServer as exc:
            raise EnrolFailed(f"fingerprint mismatch: the server at {service.api} announced {service.fp[:16]}… "
                              f"but presented another certificate; not enrolling with it") from exc
        except requests.RequestException as exc:
            raise EnrolFailed(f"server not reachable: {service.api}: {exc.__class__.__name__}") from exc
        skew = clock_skew(health.headers.get("Date"), time.time())
        if skew is not None and abs(skew) > max_clock_skew:
            raise EnrolFailed(f"clock far off: this machine's clock is {abs(skew):.0f} s "
                              f"{'behind' if skew > 0 else 'ahead of'} the edge's; set it (timedatectl) and retry")

        key = StationKey.load_or_create(data_dir / KEY_FILE)
        body: dict[str, Any] = {"code": display(normalised), "hostname": hostname or socket.gethostname(),
                                "version": package_version(), "public_key": key.public_b64}
        if station_id:
            body["station_id"] = station_id
        say(f"Enrolling {body['hostname']} with code {display(normalised)}…")
        try:
            resp = session.post(f"{service.api}/api/v1/enrol", json=body, timeout=30)
        except requests.RequestException as exc:
            raise EnrolFailed(f"server not reachable: {service.api}: {exc.__class__.__name__}") from exc
    finally:
        session.close()
    if resp.status_code != 201:
        error_code, message = _error_of(resp)
        explained = _EXPLAIN.get(error_code)
        if error_code == "too_many_tries" and resp.headers.get("Retry-After"):
            explained = f"{explained}: try again in {resp.headers['Retry-After']} s"
        raise EnrolFailed(explained or f"the edge refused the enrolment ({resp.status_code} {error_code}): {message}")
    try:
        answer = api.EnrolReply.model_validate(resp.json())
    except (ValueError, ValidationError) as exc:
        raise EnrolFailed(f"the edge at {service.api} answered the enrolment with something that is not an enrolment "
                          f"({exc.__class__.__name__})") from exc
    if str(answer.fingerprint or "").lower() != service.fp:
        raise EnrolFailed(f"fingerprint mismatch: the edge at {service.api} answered as "
                          f"{str(answer.fingerprint)[:16]}…, announced {service.fp[:16]}…")

    settings = station_config(answer=answer, service=service, data_dir=data_dir, interfaces=interfaces,
                              discovery_timeout=10.0)
    header = (f"examkiosk station settings, written by `examkiosk-provision enrol` on "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n"
              "Identity, token and MQTT login come from the edge. The empty tables take the station's\n"
              "defaults: set this machine's camera and microphone there, then run\n"
              f"`{programs.STATION} --check-config`.")
    try:
        write_private(config, render_toml(settings, header), replace=force, owner=owner)
    except FileExistsError as exc:
        raise EnrolFailed(f"{config} appeared meanwhile; station {answer.station_id} is enrolled but its "
                          f"settings were not written: ask the admin to revoke it and enrol again") from exc
    chown(data_dir, owner)
    chown(data_dir / KEY_FILE, owner)
    check_station_config(check, config)
    say(f"Enrolled as station {answer.station_id} of centre {answer.centre}; "
        f"wrote {config} (mode 0600)")
    return settings


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("enrol", help="join this station to its centre with a one-time code",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", required=True, help=f"the one-time enrolment code ({EXAMPLE})")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"settings to write ({DEFAULT_CONFIG})")
    parser.add_argument("--interfaces", nargs="*", default=None, metavar="ADDRESS",
                        help="zeroconf on these addresses only (default: every interface)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to look for the edge (20)")
    parser.add_argument("--force", action="store_true", help="replace an existing settings file")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the station's data directory (its signing key is made there)")
    parser.add_argument("--station-id", default=None, help="ask for this station id (default: the next st-NN)")
    parser.add_argument("--hostname", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--owner", default=DEFAULT_OWNER,
                        help=f"as root, give the written files to this user ({DEFAULT_OWNER})")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    interfaces = [i for item in (args.interfaces or []) for i in item.split(",") if i] or None
    try:
        enrol(code=args.code, config=args.config, force=args.force, interfaces=interfaces, timeout=args.timeout,
              data_dir=args.data_dir, station_id=args.station_id, hostname=args.hostname, owner=args.owner)
    except EnrolFailed as exc:
        print(f"examkiosk-provision: {exc}", file=sys.stderr, flush=True)
        return exc.status
    return 0
