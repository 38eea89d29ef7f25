"""The recording: one recorder per camera of the current attempt ("main", and "second" for the
evidence camera when configured), fed by the capture hub, and the journal of what they seal.

Every sealed segment becomes the next signed link of its camera's chain in the journal, strictly in
order. A segment that cannot be journaled or signed is never only logged: it is reported to staff
(``recorder_failed``), shown on the kiosk, and waits with every later segment of its camera until
it can be journaled (at the next segment, at the end of the recording, before the attempt is
finished, and from the file on disk at the next start: the journal is the truth).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from examkiosk_wire.chain import GENESIS, ChainEntry, StationKey
from station.capture.audio import level
from station.capture.camera import Camera
from station.capture.frames import AudioChunk, VideoFrame
from station.config import StationSettings
from station.recording.base import (
    INFO_SUFFIX,
    CutAt,
    Recorder,
    RecorderError,
    SegmentInfo,
    SegmentNotJournaled,
    info_path,
    read_info,
)
from station.recording.choose import new_recorder
from station.storage.journal import Journal

logger = logging.getLogger(__name__)


class Recording:
    def __init__(self, settings: StationSettings, *, journal: Journal, key: StationKey,
                 clock: Callable[[], float], seq_from: Callable[[], int], wake_uploader: Callable[[], None],
                 report: Callable[[str, dict[str, Any]], None]):
        self.settings = settings
        self._journal = journal
        self._key = key
        self._clock = clock
        self._seq_from = seq_from
        self._wake_uploader = wake_uploader
        self._report = report
        self.recorders: dict[str, Recorder] = {}
        self._lock = threading.Lock()  # the recorders
        self._chain_lock = threading.Lock()  # the journal's chains: one segment at a time, in order
        # Sealed segments not journaled yet, oldest first, by (attempt, camera).
        self._backlog: dict[tuple[str, str], list[SegmentInfo]] = {}
        # The microphone's loudest level while the attempt recorded: (attempt, level 0..1).
        self._loudest: tuple[str, float] | None = None

    # --- component ----------------------------------------------------------------------------
    def start(self) -> None:
        """Nothing runs on its own: the flow starts the recorders (``record``)."""

    def stop(self) -> None:
        self.stop_all()

    # --- what the flow asks -------------------------------------------------------------------
    def record(self, attempt: str, question: int | None, cameras: dict[str, tuple[Camera | None, Any]]) -> None:
        """One segment chain per camera; after a restart each chain continues from the journal."""
        with self._lock:
            for name, (device, cfg) in cameras.items():
                if name in self.recorders:
                    self.recorders[name].cut(question)
                    continue
                recorder = self._new_recorder(attempt, name, device, cfg)
                recorder.start(question)
                self.recorders[name] = recorder
                logger.info("recording attempt %s, camera %s, from segment %d", attempt, name, recorder.seq)

    def _new_recorder(self, attempt: str, name: str, device: Camera | None, cfg: Any) -> Recorder:
        """The Pi's hardware encoder for a picamera2 camera, libx264 otherwise (station.recording.choose)."""
        rec = self.settings.recording
        # After a move here the chain continues at the move's base (examkiosk_wire.chain.move_seq_base).
        recorder = new_recorder(
            device, self.settings.segments_dir / attempt, attempt, name, hardware_encoder=rec.hardware_encoder,
            fps=device.fps if device is not None else cfg.fps,
            size=device.size if device is not None else (cfg.width, cfg.height),
            audio=name == "main", audio_rate=self.settings.audio.rate, audio_channels=self.settings.audio.channels,
            bitrate=rec.bitrate_kbps * 1000, segment_seconds=rec.segment_seconds,
            first_seq=max(self._journal.next_seq(attempt, name), self._seq_from()), clock=self._clock,
            on_closed=self.segment_closed)
        recorder.on_failed = self.segment_failed
        return recorder

    def cut(self, question: int | None, at: CutAt | None = None) -> None:
        """A question boundary in every camera's chain; with ``at``, placed at that instant by capture time."""
        with self._lock:
            for recorder in self.recorders.values():
                recorder.cut(question, at)

    def stop_all(self) -> None:
        with self._lock:
            recorders, self.recorders = self.recorders, {}
        for recorder in recorders.values():
            try:
                recorder.stop()
            except RecorderError as exc:
                logger.error("recorder of camera %s failed at its stop: %s", recorder.camera, exc)
                self._report("recorder_failed", {"camera": recorder.camera, "error": str(exc)})
        self.retry()

    def next_seq(self, camera: str) -> int | None:
        """The sequence number of the segment ``camera`` records now (None when it does not record)."""
        recorder = self.recorders.get(camera)
        return None if recorder is None else recorder.seq

    # --- from the capture hub -----------------------------------------------------------------
    def push_video(self, camera: str, frame: VideoFrame) -> None:
        self._feed(camera, lambda r: r.push_video(frame))

    def push_audio(self, chunk: AudioChunk) -> None:
        recorders = list(self.recorders.items())
        if recorders:
            self._note_level(recorders[0][1].attempt_id, level(chunk.samples))
        for camera, _ in recorders:
            self._feed(camera, lambda r: r.push_audio(chunk))

    def _note_level(self, attempt: str, value: float) -> None:
        loudest = self._loudest  # one audio thread writes it; a new attempt starts afresh
        if loudest is None or loudest[0] != attempt or value > loudest[1]:
            self._loudest = (attempt, value)

    def loudest(self, attempt: str) -> float | None:
        """The microphone's loudest level (``station.capture.audio.level``) while ``attempt`` recorded
        here since the agent started; None if it heard nothing of it."""
        loudest = self._loudest
        return loudest[1] if loudest is not None and loudest[0] == attempt else None

    def _feed(self, camera: str, push: Callable[[Recorder], None]) -> None:
        recorder = self.recorders.get(camera)
        if recorder is None:
            return
        try:
            push(recorder)
        except RecorderError as exc:
            # The encoder failed: keep capturing (preview, face) and tell the proctor.
            logger.error("recorder of camera %s failed: %s", camera, exc)
            self._report("recorder_failed", {"camera": camera, "error": str(exc)})
            with self._lock:
                if self.recorders.get(camera) is recorder:
                    del self.recorders[camera]

    # --- the journal --------------------------------------------------------------------------
    def segment_closed(self, info: SegmentInfo) -> None:
        """``on_closed``: journal the sealed segment as the next signed link of its camera's chain,
        behind any earlier one still waiting; raises when it cannot (the recorder reports it)."""
        with self._chain_lock:
            self._drain((info.attempt_id, info.camera))
            self._add(info)

    def segment_failed(self, failure: SegmentNotJournaled) -> None:
        """``on_failed``: the segment waits (with every later one of its camera); staff hear of it."""
        info = failure.info
        with self._chain_lock:
            waiting = self._backlog.setdefault((info.attempt_id, info.camera), [])
            if all(w.name != info.name for w in waiting):
                waiting.append(info)
        self._report("recorder_failed", {"camera": info.camera, "segment": info.name, "stage": "journal",
                                         "error": str(failure.cause)})

    def waiting(self, attempt: str | None = None) -> list[str]:
        """Names of the sealed segments not journaled yet (of ``attempt``, or all)."""
        with self._chain_lock:
            return [i.name for (a, _), infos in sorted(self._backlog.items()) for i in infos
                    if attempt is None or a == attempt]

    def retry(self) -> bool:
        """Journal the segments waiting, in order; True when none is left."""
        with self._chain_lock:
            for key in sorted(self._backlog):
                try:
                    self._drain(key)
                except Exception as exc:
                    logger.warning("segment %s still cannot be journaled: %s", self._backlog[key][0].name, exc)
            return not self._backlog

    def recover(self, attempt: str | None) -> None:
        """At the start: sealed segments of ``attempt`` that the journal lacks (their info kept beside
        the file when on_closed failed) are journaled and signed now, in order."""
        if attempt is None:
            return
        folder = self.settings.segments_dir / attempt
        known = {s.name for s in self._journal.segments_of(attempt)}
        found: list[SegmentInfo] = []
        for path in sorted(folder.glob(f"*{INFO_SUFFIX}")) if folder.is_dir() else ():
            try:
                info = read_info(path)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.error("the info of a sealed segment (%s) is unreadable: %s", path.name, exc)
                continue
            if info.name in known:
                path.unlink(missing_ok=True)
            elif info.path.exists():
                found.append(info)
            else:
                logger.error("segment %s was never journaled and its file is gone", info.name)
        for info in sorted(found, key=lambda i: (i.camera, i.seq)):
            logger.warning("segment %s is sealed but not journaled: journaling it from the file", info.name)
            with self._chain_lock:
                self._backlog.setdefault((info.attempt_id, info.camera), []).append(info)
        if found and not self.retry():
            self._report("recorder_failed", {"segments": self.waiting(attempt), "stage": "journal",
                                             "error": "sealed segments still cannot be journaled"})

    def _drain(self, key: tuple[str, str]) -> None:
        """Journal the waiting segments of one chain, oldest first (under the chain lock); raises at
        the first that still fails."""
        waiting = self._backlog.get(key)
        while waiting:
            self._add(waiting[0])
            logger.info("segment %s journaled after it had to wait", waiting.pop(0).name)
        self._backlog.pop(key, None)

    def _add(self, info: SegmentInfo) -> None:
        # The first segment at a move's base starts a new link of the chain (examkiosk_wire.chain.link_problems).
        restart = info.seq > 0 and info.seq == self._seq_from()
        entry = ChainEntry(attempt=info.attempt_id, camera=info.camera, seq=info.seq, name=info.name,
                           question=info.question, started_at=info.started_at, ended_at=info.ended_at,
                           size=info.size, sha256=info.sha256,
                           prev=GENESIS if restart else self._journal.last_entry(info.attempt_id, info.camera))
        digest = entry.digest()
        self._journal.add_segment(name=info.name, attempt_id=info.attempt_id, camera=info.camera, seq=info.seq,
                                  question=info.question, path=info.path, started_at=info.started_at,
                                  ended_at=info.ended_at, size=info.size, sha256=info.sha256, prev_hash=entry.prev,
                                  entry_hash=digest, signature=self._key.sign(digest))
        Path(info_path(info.path)).unlink(missing_ok=True)
        self._wake_uploader()
