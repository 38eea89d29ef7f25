"""examkiosk_wire.topics: topic strings and the status/event payloads."""
from __future__ import annotations

import json

import pytest

from examkiosk_wire import topics
from examkiosk_wire.topics import StationEvent, StationStatus


def full_status(**changes) -> StationStatus:
    values = dict(station="st-01", online=True, state="answering", lot=7, question=2, time_left=41.5,
                  mic_level=0.25, backlog=3, disk_free_mb=12000, clock_offset_ms=-3.5, version="0.1.0",
                  ts=1_790_000_000.25)
    values.update(changes)
    return StationStatus(**values)


def test_topic_strings():
    assert topics.status_topic("c1", "st-01") == "examkiosk/c1/station/st-01/status"
    assert topics.event_topic("c1", "st-01") == "examkiosk/c1/station/st-01/event"
    assert topics.cmd_topic("c1", "st-01") == "examkiosk/c1/station/st-01/cmd"
    assert topics.sitting_control_topic("c1", "s-2026") == "examkiosk/c1/sitting/s-2026/control"
    assert topics.status_wildcard("c1") == "examkiosk/c1/station/+/status"
    assert topics.event_wildcard("c1") == "examkiosk/c1/station/+/event"


def test_parse_station_topic():
    assert topics.parse_station_topic("examkiosk/c1/station/st-01/status") == ("c1", "st-01", "status")
    assert topics.parse_station_topic(topics.event_topic("c1", "st-9")) == ("c1", "st-9", "event")
    assert topics.parse_station_topic(topics.cmd_topic("c1", "st-9")) == ("c1", "st-9", "cmd")
    for other in ["examkiosk/c1/sitting/s1/control", "examkiosk/c1/station/st-01/status/x",
                  "other/c1/station/st-01/status", "examkiosk/c1/station/st-01/video", "examkiosk/c1/station//status"]:
        assert topics.parse_station_topic(other) is None


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "st 01", "x" * 65])
def test_topic_levels_are_checked(bad):
    with pytest.raises(ValueError):
        topics.status_topic("c1", bad)
    with pytest.raises(ValueError):
        topics.status_wildcard(bad)


def test_status_round_trip():
    status = full_status()
    assert StationStatus.from_json(status.to_json()) == status
    assert StationStatus.from_json(status.to_json().encode()) == status
    sparse = StationStatus(station="st-02", online=False)
    assert StationStatus.from_json(sparse.to_json()) == sparse
    assert json.loads(StationStatus.offline("st-02", version="1").to_json())["online"] is False


def test_status_tolerates_unknown_keys_and_int_for_float():
    data = json.loads(full_status().to_json())
    data["camera_fps"] = 25  # a newer station
    data["time_left"] = 40
    status = StationStatus.from_json(json.dumps(data))
    assert status.time_left == 40.0 and isinstance(status.time_left, float)
    assert StationStatus.from_json('{"station": "st-03", "online": true}').backlog == 0


@pytest.mark.parametrize("key,value", [
    ("station", 5), ("station", None), ("online", "yes"), ("online", 1), ("state", 3), ("lot", "7"),
    ("lot", 7.5), ("lot", True), ("question", []), ("time_left", "41"), ("mic_level", False),
    ("backlog", None), ("backlog", 1.5), ("disk_free_mb", "12"), ("clock_offset_ms", {}), ("version", 1),
    ("ts", None), ("ts", "now"),
])
def test_status_rejects_bad_types(key, value):
    data = json.loads(full_status().to_json())
    data[key] = value
    with pytest.raises(ValueError):
        StationStatus.from_json(json.dumps(data))


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", '"text"', b"\xff\xfe", '{"online": true}',
                                 '{"station": "st-01"}', '{"station": "", "online": true}'])
def test_status_rejects_bad_documents(raw):
    with pytest.raises(ValueError):
        StationStatus.from_json(raw)


def test_event_round_trip_and_types():
    event = StationEvent(kind="mic_silent", payload={"seconds": 12}, attempt="a1", ts=1.5)
    assert StationEvent.from_json(event.to_json()) == event
    assert StationEvent.from_json('{"kind": "x", "extra": 1}') == StationEvent(kind="x")
    for bad in ['{"payload": {}}', '{"kind": 3}', '{"kind": "x", "payload": [1]}', '{"kind": "x", "ts": "t"}',
                '{"kind": ""}']:
        with pytest.raises(ValueError):
            StationEvent.from_json(bad)
