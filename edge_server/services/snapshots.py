"""The latest camera snapshot of each station, kept on disk (never in the database).

The MQTT bridge stores what a station sends on its ``snapshot`` topic; the dashboard shows it.
One file per station, replaced atomically, so a reader never sees half a picture.
"""
from __future__ import annotations

import os
from pathlib import Path

from examkiosk_wire.topics import check_level

MAX_BYTES = 200_000
_JPEG_START = b"\xff\xd8\xff"


def snapshot_path(snapshots_dir: Path, station_id: str) -> Path:
    return snapshots_dir / f"{check_level(station_id, 'station id')}.jpg"


def check_jpeg(data: bytes) -> None:
    """ValueError unless ``data`` looks like one small JPEG."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"snapshot of {len(data)} bytes is over the limit of {MAX_BYTES}")
    if not data.startswith(_JPEG_START):
        raise ValueError("snapshot is not a JPEG")


def store(snapshots_dir: Path, station_id: str, data: bytes) -> float:
    """Keep ``data`` as the station's latest snapshot; returns its time (the file's mtime)."""
    check_jpeg(data)
    path = snapshot_path(snapshots_dir, station_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path.stat().st_mtime


def taken_at(snapshots_dir: Path, station_id: str) -> float | None:
    """When the station's latest snapshot arrived, or None if there is none."""
    try:
        return snapshot_path(snapshots_dir, station_id).stat().st_mtime
    except (FileNotFoundError, ValueError):
        return None


def discard(snapshots_dir: Path, station_id: str) -> bool:
    """Delete the station's snapshot (a revoked station's last picture of a candidate); False if none."""
    try:
        snapshot_path(snapshots_dir, station_id).unlink()
    except FileNotFoundError:
        return False
    return True
