"""The live feed's pure parts: tiles going stale, folding pub/sub messages, the stream's loop, snapshots."""
from __future__ import annotations

import json

import pytest

from edge_server.services import live, snapshots


def tile(station: str, *, online: bool = True, seen: float | None = 100.0, **extra) -> dict:
    return {"id": station, "online": online, "seen_ts": seen, "flags": [], **extra}


def test_went_stale_marks_only_online_tiles_past_the_limit():
    tiles = {"a": tile("a", seen=95.0), "b": tile("b", seen=91.0), "c": tile("c", online=False, seen=50.0),
             "d": tile("d", seen=None)}
    changed = live.went_stale(tiles, now_ts=101.0, stale_seconds=10)
    assert [t["id"] for t in changed] == ["b"] and changed[0]["online"] is False
    assert tiles["b"]["online"] is False and tiles["a"]["online"] is True
    assert live.went_stale(tiles, now_ts=101.0, stale_seconds=10) == []  # sent once


def test_apply_folds_tiles_and_snapshots_and_drops_the_rest():
    tiles = {"a": tile("a")}
    assert live.apply(tiles, {"type": "tile", "tile": tile("b", state="waiting")}) == ("tile", tiles["b"])
    assert live.apply(tiles, {"type": "snapshot", "station": "a", "at": 5.0}) == ("snapshot", {"station": "a", "at": 5.0})
    assert tiles["a"]["snapshot_at"] == 5.0
    assert live.apply(tiles, {"type": "snapshot", "station": "zz", "at": 1.0}) is None  # not one of ours
    assert live.apply(tiles, {"type": "tile", "tile": {"no": "id"}}) is None
    assert live.apply(tiles, {"type": "other"}) is None


def parse(chunks: list[str]) -> list[tuple[str, dict]]:
    out = []
    for chunk in chunks:
        lines = dict(line.split(": ", 1) for line in chunk.strip().splitlines() if not line.startswith("retry"))
        if lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_stream_sends_the_set_changes_stale_heartbeats_and_ends():
    now = {"t": 0.0}
    inbox = [None, {"type": "tile", "tile": tile("b", seen=1000.0)}, None, None, None]

    def get_message(timeout):
        now["t"] += timeout
        return inbox.pop(0) if inbox else None

    tiles = {"a": tile("a", seen=1000.0)}
    chunks = list(live.stream_events(get_message, tiles, stream_seconds=8, heartbeat_seconds=2, stale_seconds=10,
                                     clock=lambda: now["t"], wall=lambda: 1000.0 + now["t"] * 3))
    assert chunks[0] == f"retry: {live.RETRY_MS}\n\n"
    events = parse(chunks)
    assert events[0] == ("stations", {"stations": [tiles["a"] | {"online": True}], "server_time": 1000.0})
    kinds = [k for k, _ in events]
    assert kinds[1] == "tile" and events[1][1]["id"] == "b"
    # wall time runs 3x: after ~4 s both tiles are 12 s old and are sent offline, once each
    stale = [d["id"] for k, d in events if k == "tile" and d["online"] is False]
    assert sorted(stale) == ["a", "b"]
    assert "heartbeat" in kinds and kinds[-1] == "bye"
    assert kinds.count("heartbeat") == 2 and now["t"] == pytest.approx(8.0)  # at 6 and 8 s: 2 s after the last


def test_snapshot_store_keeps_the_latest_and_refuses_what_is_not_a_small_jpeg(tmp_path):
    assert snapshots.taken_at(tmp_path, "st-01") is None
    at = snapshots.store(tmp_path, "st-01", b"\xff\xd8\xff\xe0first")
    snapshots.store(tmp_path, "st-01", b"\xff\xd8\xff\xe0second")
    assert snapshots.snapshot_path(tmp_path, "st-01").read_bytes().endswith(b"second")
    assert snapshots.taken_at(tmp_path, "st-01") >= at
    with pytest.raises(ValueError, match="not a JPEG"):
        snapshots.store(tmp_path, "st-01", b"GIF89a")
    with pytest.raises(ValueError, match="over the limit"):
        snapshots.store(tmp_path, "st-01", b"\xff\xd8\xff" + bytes(snapshots.MAX_BYTES))
    with pytest.raises(ValueError):
        snapshots.snapshot_path(tmp_path, "../etc/passwd")
    assert [p.name for p in tmp_path.iterdir()] == ["st-01.jpg"]
