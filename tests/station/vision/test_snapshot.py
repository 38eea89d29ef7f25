"""The station's dashboard snapshot and its configuration digest."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from examkiosk_wire.topics import StationStatus, parse_station_topic, snapshot_topic
from station.config import StationSettings, config_digest
from station.vision.snapshot import MAX_BYTES, snapshot_jpeg


def test_snapshot_is_a_small_jpeg_320_wide():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)  # noise: the worst case for JPEG
    data = snapshot_jpeg(frame)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (180, 320, 3) and len(data) < MAX_BYTES
    small = snapshot_jpeg(np.zeros((120, 160, 3), np.uint8))  # never scaled up
    assert cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    with pytest.raises(ValueError):
        snapshot_jpeg(np.zeros((10, 10), np.uint8))


def test_snapshot_topic_is_a_station_topic():
    assert snapshot_topic("c1", "st-01") == "examkiosk/c1/station/st-01/snapshot"
    assert parse_station_topic("examkiosk/c1/station/st-01/snapshot") == ("c1", "st-01", "snapshot")


def test_config_digest_changes_with_settings_but_not_with_secrets():
    base = {"station_id": "st-01", "centre": "c1", "edge": {"token": "a", "api": "http://e"},
            "mqtt": {"username": "st-01", "password": "p1"}}
    one = config_digest(StationSettings(**base))
    same = config_digest(StationSettings(**{**base, "edge": {"token": "b", "api": "http://e"},
                                            "mqtt": {"username": "st-01", "password": "p2"}}))
    other = config_digest(StationSettings(**{**base, "monitor": {"snapshot_seconds": 2}}))
    assert one == same != other and len(one) == 12
    status = StationStatus.from_json(StationStatus(station="st-01", online=True, config=one).to_json())
    assert status.config == one
    with pytest.raises(ValueError, match="config"):
        StationStatus.from_dict({"station": "st-01", "online": True, "config": 5})
