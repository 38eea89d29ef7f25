"""MQTT topics and payloads shared by the station and the edge: the one place that builds them.

Topics (``<centre>`` and ``<id>`` are single topic levels)::

    examkiosk/<centre>/station/<id>/status    retained StationStatus, last will = offline
    examkiosk/<centre>/station/<id>/event     StationEvent, QoS 1
    examkiosk/<centre>/station/<id>/cmd       commands down to one station, QoS 1
    examkiosk/<centre>/station/<id>/snapshot  a small JPEG of the camera every few seconds, QoS 0, not retained
    examkiosk/<centre>/sitting/<id>/control   start / key release for a sitting

Payloads are frozen dataclasses with ``to_json()`` / ``from_json()``. ``from_json`` ignores
keys it does not know (a newer station may send more) but is strict about the types of the
keys it does know: a wrong type raises :class:`ValueError`.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

PREFIX = "examkiosk"
STATION_KINDS = ("status", "event", "cmd", "snapshot")

# One topic level: no separators, no wildcards, nothing MQTT or the ACL's %u would trip on.
_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_level(value: str, what: str = "topic level") -> str:
    """Return ``value`` if it is usable as one topic level (and as a broker user name)."""
    if not isinstance(value, str) or not _LEVEL.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return value


def _station_topic(centre: str, station: str, kind: str) -> str:
    return f"{PREFIX}/{check_level(centre, 'centre')}/station/{check_level(station, 'station id')}/{kind}"


def status_topic(centre: str, station: str) -> str:
    return _station_topic(centre, station, "status")


def event_topic(centre: str, station: str) -> str:
    return _station_topic(centre, station, "event")


def cmd_topic(centre: str, station: str) -> str:
    return _station_topic(centre, station, "cmd")


def snapshot_topic(centre: str, station: str) -> str:
    return _station_topic(centre, station, "snapshot")


def sitting_control_topic(centre: str, sitting: str) -> str:
    return f"{PREFIX}/{check_level(centre, 'centre')}/sitting/{check_level(sitting, 'sitting id')}/control"


def station_wildcard(centre: str, station: str) -> str:
    """Every topic of one station (what its broker role may write)."""
    return _station_topic(centre, station, "#")


def sitting_wildcard(centre: str) -> str:
    """Every sitting's control topic of the centre (what every station may read)."""
    return f"{PREFIX}/{check_level(centre, 'centre')}/sitting/#"


def status_wildcard(centre: str) -> str:
    return f"{PREFIX}/{check_level(centre, 'centre')}/station/+/status"


def event_wildcard(centre: str) -> str:
    return f"{PREFIX}/{check_level(centre, 'centre')}/station/+/event"


def snapshot_wildcard(centre: str) -> str:
    return f"{PREFIX}/{check_level(centre, 'centre')}/station/+/snapshot"


def centre_wildcard(centre: str) -> str:
    return f"{PREFIX}/{check_level(centre, 'centre')}/#"


def parse_station_topic(topic: str) -> tuple[str, str, str] | None:
    """``(centre, station_id, kind)`` of a station topic, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != PREFIX or parts[2] != "station" or parts[4] not in STATION_KINDS:
        return None
    centre, station = parts[1], parts[3]
    if not _LEVEL.match(centre) or not _LEVEL.match(station):
        return None
    return centre, station, parts[4]


# --- payloads -----------------------------------------------------------------------------------

def _loads_object(data: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"payload is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError("payload must be a JSON object")
    return obj


def _take(obj: dict[str, Any], key: str, kind: str, *, optional: bool) -> Any:
    """Read ``key`` checking its JSON type; bools are never numbers, ints are accepted as floats."""
    value = obj[key]
    if value is None:
        if optional:
            return None
        raise ValueError(f"{key} must not be null")
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "dict": isinstance(value, dict),
        "strs": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[kind]
    if not ok:
        raise ValueError(f"{key} must be {kind}{' or null' if optional else ''}, not {type(value).__name__}")
    if kind == "float":
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{key} must be a finite number")
    return value


# field name -> (JSON kind, nullable)
_STATUS_TYPES: dict[str, tuple[str, bool]] = {
    "station": ("str", False),
    "online": ("bool", False),
    "state": ("str", True),
    "lot": ("int", True),
    "question": ("int", True),
    "time_left": ("float", True),
    "mic_level": ("float", True),
    "backlog": ("int", False),
    "disk_free_mb": ("int", True),
    "clock_offset_ms": ("float", True),
    "clock_uncertainty_ms": ("float", True),
    "version": ("str", False),
    "config": ("str", False),
    "ts": ("float", False),
    "flags": ("strs", False),
}
_STATUS_REQUIRED = ("station", "online")


@dataclass(frozen=True)
class StationStatus:
    """What a station tells the edge about itself (retained on its status topic)."""

    station: str
    online: bool
    state: str | None = None
    lot: int | None = None
    question: int | None = None
    time_left: float | None = None
    mic_level: float | None = None
    backlog: int = 0
    disk_free_mb: int | None = None
    clock_offset_ms: float | None = None
    # How far the station's estimate of the edge's clock may be off (half the best round trip plus drift).
    clock_uncertainty_ms: float | None = None
    version: str = ""
    # Digest of the station's configuration (station.config.config_digest), to see which stations differ.
    config: str = ""
    ts: float = 0.0
    # Monitoring flags active now (no_face, several_faces, face_mismatch, …).
    flags: tuple[str, ...] = ()

    @classmethod
    def offline(cls, station: str, *, version: str = "", ts: float = 0.0) -> "StationStatus":
        """The last-will payload."""
        return cls(station=station, online=False, version=version, ts=ts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "StationStatus":
        missing = [k for k in _STATUS_REQUIRED if k not in obj]
        if missing:
            raise ValueError(f"status is missing {', '.join(missing)}")
        values = {}
        for name, (kind, nullable) in _STATUS_TYPES.items():
            if name in obj:
                values[name] = _take(obj, name, kind, optional=nullable)
        if not values["station"]:
            raise ValueError("station must not be empty")
        if "flags" in values:
            values["flags"] = tuple(values["flags"])
        return cls(**values)

    @classmethod
    def from_json(cls, data: str | bytes) -> "StationStatus":
        return cls.from_dict(_loads_object(data))


assert set(_STATUS_TYPES) == {f.name for f in fields(StationStatus)}


@dataclass(frozen=True)
class StationEvent:
    """Something that happened at a station (QoS 1 on its event topic); ``ts`` is server time."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    attempt: str | None = None
    ts: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> "StationEvent":
        obj = _loads_object(data)
        if "kind" not in obj:
            raise ValueError("event is missing kind")
        kind = _take(obj, "kind", "str", optional=False)
        if not kind or len(kind) > 64:
            raise ValueError("kind must be a short non-empty string")
        payload = _take(obj, "payload", "dict", optional=True) if "payload" in obj else None
        attempt = _take(obj, "attempt", "str", optional=True) if "attempt" in obj else None
        ts = _take(obj, "ts", "float", optional=False) if "ts" in obj else 0.0
        return cls(kind=kind, payload=payload or {}, attempt=attempt, ts=ts)


class StationCommand(StationEvent):
    """The edge's word to one station (QoS 1 on its ``cmd`` topic), e.g. a review's decision.

    Same shape as an event; ``attempt`` names the attempt it is about, and a station ignores a
    command about an attempt that is not its current one.
    """
