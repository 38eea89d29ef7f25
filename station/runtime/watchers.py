"""Watchers beside the recorder, at low rate: the camera watch (QR tickets on the identify screen,
live face guidance on the face-login screen) and the flag watcher (monitoring flags while answering)."""
from __future__ import annotations

import base64
import logging
import os
import queue
import threading
import time
from typing import Any, Callable

import numpy as np

from examkiosk_wire.face import FaceEngine, face_distance
from station.config import StationSettings
from station.flow import FlowState, Screen
from station.proctoring import monitor
from station.runtime.capture import DeviceStatus
from station.storage.journal import Journal
from station.vision.face_quality import assess
from station.vision.qr import decode_ticket
from station.vision.snapshot import snapshot_jpeg

logger = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 160
THUMBNAIL_QUALITY = 70


class _Thread:
    """A component that is one thread, ended by the runtime's stop event."""

    name = "watcher"

    def __init__(self, stop: threading.Event):
        self._stop = stop
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The stop event ends the thread; it is a daemon, so nothing waits for it."""

    def run(self) -> None:
        raise NotImplementedError


class CameraWatch(_Thread):
    name = "camera-watch"

    def __init__(self, *, stop: threading.Event, devices: DeviceStatus, state: Callable[[], FlowState],
                 online: Callable[[], bool], post: Callable[[str, dict[str, Any]], None],
                 guidance: Callable[[str | None], None]):
        super().__init__(stop)
        self._devices = devices
        self._state = state
        self._online = online
        self._post = post
        self._guidance = guidance

    def run(self) -> None:
        engine = FaceEngine()
        last_ticket: tuple[str, float] | None = None
        while not self._stop.wait(0.5):
            frame, state = self._devices.frame, self._state()
            if frame is None or state.busy:
                continue
            try:
                if state.screen == Screen.IDENTIFY and self._online():
                    ticket = decode_ticket(frame.image)
                    if ticket and (last_ticket is None or last_ticket[0] != ticket
                                   or time.monotonic() - last_ticket[1] > 10):
                        last_ticket = (ticket, time.monotonic())
                        logger.info("admission ticket QR code read")
                        self._post("identify", {"ticket_no": ticket, "via": "qr"})
                elif state.screen == Screen.FACE_LOGIN:
                    self._guidance(assess(frame.image, engine).guidance)
                else:
                    self._guidance(None)
            except Exception:  # a bad frame must never stop the watch
                logger.exception("camera watch failed on one frame")


class FlagWatcher(_Thread):
    """Monitoring flags while answering: beside the recorder, at low priority.

    It samples at ``monitor.fps`` and skips samples it is too late for, so it never delays the
    capture or the encoder. Flags are events pointing into the recording; they inform the proctor
    and never stop the exam.
    """

    name = "monitor"

    def __init__(self, settings: StationSettings, *, stop: threading.Event, devices: DeviceStatus,
                 state: Callable[[], FlowState], now: Callable[[], float], journal: Journal,
                 recording_seq: Callable[[str], int | None], report: Callable[[str, dict[str, Any]], None],
                 flags: Callable[[tuple[str, ...]], None]):
        super().__init__(stop)
        self.settings = settings
        self._devices = devices
        self._state = state
        self._now = now
        self._journal = journal
        self._recording_seq = recording_seq
        self._report = report
        self._flags = flags
        self.focus_changes: queue.Queue[tuple[float, bool]] = queue.Queue()

    def page_focus(self, visible: bool) -> None:
        """The kiosk page lost or regained focus/visibility (from the page itself)."""
        self.focus_changes.put((self._now(), visible))

    def run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            logger.debug("could not lower the monitor thread's priority")
        cfg = self.settings.monitor
        policy = monitor.MonitorPolicy(no_face_seconds=cfg.no_face_seconds, silence_seconds=cfg.silence_seconds,
                                       reverify_seconds=cfg.reverify_seconds,
                                       mismatch_threshold=self.settings.face.threshold)
        engine = FaceEngine()
        interval = 1.0 / cfg.fps
        mstate: monitor.MonitorState | None = None
        attempt: str | None = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            next_at = max(next_at + interval, time.monotonic())  # late: drop the missed samples
            state, now = self._state(), self._now()
            if state.screen != Screen.ANSWERING or state.candidate is None or state.candidate.descriptor is None:
                if mstate is not None:
                    mstate, ended = monitor.finish(mstate, now)
                    self._send(attempt, state, [], ended, None)
                    mstate = None
                    self._flags(())
                continue
            if mstate is None:
                mstate, attempt = monitor.MonitorState(), state.attempt_id
            started: list = []
            ended: list = []
            while not self.focus_changes.empty():
                at, visible = self.focus_changes.get_nowait()
                mstate, s, e = monitor.focus(mstate, at, visible)
                started, ended = started + s, ended + e
            frame = self._devices.frame
            camera_ok = self._devices.camera_ok() and frame is not None
            image = frame.image if frame is not None else None
            mic_level = self._devices.mic_level
            try:
                if camera_ok:
                    quality = assess(image, engine)
                    faces = monitor.observation_from_quality(now, quality, mic_level=mic_level).faces
                    distance = None
                    if quality.ok and monitor.needs_descriptor(mstate, now, faces, policy):
                        enrolled = np.asarray(state.candidate.descriptor, dtype=np.float32)
                        distance = face_distance(engine.descriptor(image, quality.box), enrolled)
                    obs = monitor.observation_from_quality(now, quality, camera_ok=True, mic_level=mic_level,
                                                           distance=distance)
                else:
                    obs = monitor.Observation(t=now, faces=0, covered=False, distance=None, camera_ok=False,
                                              mic_level=mic_level)
                mstate, s, e = monitor.observe(mstate, obs, policy)
            except Exception:  # one bad sample must not stop monitoring
                logger.exception("monitor sample failed")
                continue
            started, ended = started + s, ended + e
            self._flags(tuple(f.kind for f in monitor.active_flags(mstate)))
            if started or ended:
                self._send(attempt, state, started, ended, image)

    def _send(self, attempt: str | None, state: FlowState, started: list, ended: list,
              image: np.ndarray | None) -> None:
        if not (started or ended) or attempt is None:
            return
        closed = [(s.name, s.started_at, s.ended_at) for s in self._journal.segments_of(attempt) if s.camera == "main"]
        if closed:
            last = max(closed, key=lambda c: c[2])
            seq = self._recording_seq("main")
            if seq is not None:
                closed.append((f"{attempt}_main_{seq:05d}.mkv (recording)", last[2], None))
        thumbnail = None
        if image is not None and started:
            try:
                thumbnail = base64.b64encode(snapshot_jpeg(image, width=THUMBNAIL_WIDTH,
                                                           quality=THUMBNAIL_QUALITY)).decode()
            except ValueError:
                thumbnail = None
        for flag in started:
            where = monitor.locate(flag.started_at, closed)
            self._report("flag_started", {"flag": flag.kind, "started_at": flag.started_at, "detail": flag.detail,
                                          "segment": where[0] if where else None,
                                          "offset": round(where[1], 2) if where else None,
                                          "thumbnail_jpeg": thumbnail, "question": self._state().question})
            logger.info("flag %s started at %.1f", flag.kind, flag.started_at)
        for flag in ended:
            self._report("flag_ended", {"flag": flag.kind, "started_at": flag.started_at, "ended_at": flag.ended_at})
