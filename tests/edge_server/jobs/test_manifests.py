"""The monitoring flags of an attempt as the manifest lists them, from the station's events (pure)."""
from __future__ import annotations

import math

from edge_server.jobs.manifests import monitoring_flags
from edge_server.models import Event


def event(n: int, kind: str, **payload) -> Event:
    return Event(id=n, kind=kind, payload=payload)


def test_starts_and_ends_pair_by_kind_and_start_time():
    flags = monitoring_flags([
        event(1, "flag_started", flag="no_face", started_at=100.0, detail={"seconds": 3}),
        event(2, "flag_started", flag="focus_lost", started_at=100.0),  # same time, another kind
        event(3, "flag_ended", flag="no_face", started_at=100.0, ended_at=104.5),
        event(4, "flag_started", flag="no_face", started_at=200),  # an int is a time too
        event(5, "media_problem", flag="no_face", started_at=1.0),  # not a flag event
    ])
    assert [(f.kind, f.started_at, f.ended_at, f.detail) for f in flags] == [
        ("focus_lost", 100.0, None, None), ("no_face", 100.0, 104.5, {"seconds": 3}), ("no_face", 200.0, None, None)]


def test_repeats_are_listed_once_and_an_end_without_its_start_is_kept():
    flags = monitoring_flags([
        event(1, "flag_started", flag="several_faces", started_at=50.0, detail="first"),
        event(2, "flag_started", flag="several_faces", started_at=50.0, detail="again"),
        event(3, "flag_ended", flag="face_mismatch", started_at=40.0, ended_at=45.0),
    ])
    assert [(f.kind, f.started_at, f.ended_at, f.detail) for f in flags] == [
        ("face_mismatch", 40.0, 45.0, None), ("several_faces", 50.0, None, "first")]


def test_payloads_without_a_kind_or_a_time_are_left_out():
    flags = monitoring_flags([
        event(1, "flag_started", flag=7, started_at=1.0),
        event(2, "flag_started", flag="no_face", started_at="soon"),
        event(3, "flag_started", flag="no_face", started_at=math.inf),
        event(4, "flag_started", flag="no_face", started_at=True),
        event(5, "flag_started", flag="", started_at=1.0),
        event(6, "flag_ended", flag="no_face", started_at=2.0, ended_at="later"),
    ])
    assert [(f.kind, f.started_at, f.ended_at) for f in flags] == [("no_face", 2.0, None)]
