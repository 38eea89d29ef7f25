"""The station runtime, not started: a sealed segment that cannot be journaled is loud (an event for
staff, a notice on the kiosk) and is journaled later, in order, from the file if need be; the paper's
key does not outlive the attempt."""
from __future__ import annotations

import hashlib
import sqlite3

import pytest

from examkiosk_wire.chain import link_problems
from station.config import StationSettings
from station.flow import Event, FinishAttempt, FlowState, Screen
from station.kiosk.app import view
from station.recording.base import Recorder, SegmentInfo, info_path, segment_name
from station.runtime.runner import Runtime

ATTEMPT = "a-1"


def settings(tmp_path) -> StationSettings:
    return StationSettings(station_id="st-01", centre="c1", data_dir=tmp_path / "station",
                           edge={"token": "t", "api": "http://127.0.0.1:9"},
                           mqtt={"username": "st-01", "password": "p"}, kiosk={"port": 8700, "voice": False})


class SealingRecorder(Recorder):
    """A recorder that only seals: each ``seal(seq)`` writes a segment file and reports it."""

    def start(self, question=None): ...
    def push_video(self, frame): ...
    def push_audio(self, chunk): ...
    def cut(self, question): ...
    def stop(self): ...

    def seal(self, seq: int) -> SegmentInfo:
        path = self.out_dir / segment_name(self.attempt_id, self.camera, seq)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = f"segment {seq}".encode()
        path.write_bytes(data)
        info = SegmentInfo(name=path.name, path=path, attempt_id=self.attempt_id, camera=self.camera, seq=seq,
                           question=1, started_at=100.0 + seq, ended_at=101.0 + seq, frames=25, audio_samples=0,
                           size=len(data), sha256=hashlib.sha256(data).hexdigest())
        self._closed(info)
        return info


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime(settings(tmp_path))
    rt.state = FlowState(screen=Screen.ANSWERING, attempt_id=ATTEMPT, question=1, recording=True)
    try:
        yield rt
    finally:
        rt.stop()


def recorder_of(rt: Runtime) -> SealingRecorder:
    recording = rt.ctx.recording
    recorder = SealingRecorder(rt.settings.segments_dir / ATTEMPT, ATTEMPT, "main", fps=25, segment_seconds=3,
                               first_seq=0, clock=rt.clock.now, on_closed=recording.segment_closed)
    recorder.on_failed = recording.segment_failed
    return recorder


def fail_once(monkeypatch, rt: Runtime) -> None:
    journal = rt.ctx.journal
    real = journal.add_segment
    calls = []

    def add_segment(**kwargs):
        calls.append(kwargs["name"])
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return real(**kwargs)

    monkeypatch.setattr(journal, "add_segment", add_segment)


def chain_problems(rt: Runtime) -> list[str]:
    segments = rt.ctx.journal.segments_of(ATTEMPT)
    return link_problems([(s.seq, s.prev_hash, s.entry_hash) for s in segments])


def test_a_segment_that_cannot_be_journaled_is_reported_shown_and_journaled_next_in_order(runtime, monkeypatch):
    fail_once(monkeypatch, runtime)
    recorder = recorder_of(runtime)
    first = recorder.seal(0)
    # Loud: kept beside its file, waiting, an event for staff, a notice on the kiosk.
    assert info_path(first.path).exists() and recorder.unjournaled == [first]
    assert runtime.ctx.recording.waiting(ATTEMPT) == [first.name]
    events = [(kind, payload) for _, kind, payload, _ in runtime.ctx.journal.pending_events()]
    assert [(k, p["segment"], p["camera"]) for k, p in events] == [("recorder_failed", first.name, "main")]
    shown = view(runtime.kiosk.kiosk_view())
    assert shown["recording_problem"] == [first.name]
    assert runtime.ctx.journal.segments_of(ATTEMPT) == []

    second = recorder.seal(1)  # the next segment journals the waiting one first, then itself
    assert [s.name for s in runtime.ctx.journal.segments_of(ATTEMPT)] == [first.name, second.name]
    assert chain_problems(runtime) == []
    assert runtime.ctx.recording.waiting() == [] and not info_path(first.path).exists()
    assert view(runtime.kiosk.kiosk_view())["recording_problem"] is None


def test_a_segment_left_unjournaled_is_journaled_from_its_file_at_the_next_start(tmp_path, monkeypatch):
    rt = Runtime(settings(tmp_path))
    rt.state = FlowState(screen=Screen.ANSWERING, attempt_id=ATTEMPT, question=1, recording=True)
    rt.ctx.journal.save_state(rt.state, rt.clock.now())
    fail_once(monkeypatch, rt)
    recorder = recorder_of(rt)
    info = recorder.seal(0)
    assert rt.ctx.recording.waiting() == [info.name]
    rt.ctx.journal.close()  # a power cut: nothing else happens

    again = Runtime(settings(tmp_path))
    try:
        state, _ = again.ctx.journal.load_state()
        again.ctx.recording.recover(state.attempt_id)
        (segment,) = again.ctx.journal.segments_of(ATTEMPT)
        assert (segment.name, segment.sha256, segment.size) == (info.name, info.sha256, info.size)
        assert segment.signature and chain_problems(again) == []
        assert not info_path(info.path).exists()
    finally:
        again.stop()


def test_the_paper_key_does_not_outlive_the_attempt(runtime):
    papers = runtime.ctx.papers
    key = {"sitting": "s-1", "key": "A" * 43 + "="}
    assert papers.key_pushed(key)
    runtime.ctx.shown.paper = {"title": "paper"}
    runtime.stop_event.set()  # the finish's wait for the edge ends at once
    runtime.execute(FinishAttempt("time_up"))  # the answering is over: key and paper leave memory
    assert not papers.has_key("s-1") and runtime.ctx.shown.paper is None

    assert papers.key_pushed(key)
    runtime.state = FlowState(screen=Screen.DONE, attempt_id=ATTEMPT)
    runtime.apply(Event("next_candidate"))
    assert runtime.state.attempt_id is None and not papers.has_key("s-1")
