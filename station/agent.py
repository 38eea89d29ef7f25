"""`examkiosk-station`: the station agent, the thin runner around the candidate state machine.

It owns the adapters (camera, microphone, recorder, edge link, MQTT status, uploader, kiosk UI),
feeds events into ``flow.transition`` with server time, writes every new state through to the
journal and performs the commands that come back. I/O that may block (the network, face matching)
runs on a small thread pool and reports back as events, so the loop never stalls.
"""
from __future__ import annotations

import argparse
import base64
import logging
import os
import queue
import secrets
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np

from examkiosk_wire.chain import GENESIS, ChainEntry, StationKey
from examkiosk_wire.discovery import discover_edge
from examkiosk_wire.topics import StationCommand, StationStatus
from examkiosk_wire.version import package_version
from station import flow
from station.config import ConfigError, StationSettings, config_digest, load_settings
from station.devices import AudioSource, Camera, DeviceError, VideoFrame, level, open_audio, open_camera
from station.flow import Event, FlowState, Screen
from station.journal import Journal
from station.link import Clock, EdgeClient, EdgeRejected, EdgeUnavailable, StatusPublisher
from station.messages import MessageBox
from station.paper import PaperDamaged, PaperKeeper
from station.recorder import RecorderError, SegmentInfo, SegmentRecorder
from station.uploader import SegmentUploader

if TYPE_CHECKING:
    from examkiosk_wire.face import FaceEngine
    from station.liveness import LivenessResult

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.25
MIC_HEARD_LEVEL = 0.35
CAMERA_FRESH_SECONDS = 2.0
MIC_FRESH_SECONDS = 6.0
# Screens with a candidate at this station whom the seat map may move to another one.
MOVABLE_SCREENS = flow.BEFORE_ENTRY | flow.RECORDING_SCREENS | {Screen.RESUME}
# At the start, how long a station with a live broker waits for the pushed paper key before asking the API.
PUSH_GRACE_SECONDS = 2.0


@dataclass
class DeviceStatus:
    frame: VideoFrame | None = None
    frame_at: float = 0.0
    mic_level: float = 0.0
    mic_heard_at: float = 0.0
    camera_error: str | None = None
    mic_error: str | None = None

    def camera_ok(self) -> bool:
        return self.frame is not None and time.monotonic() - self.frame_at < CAMERA_FRESH_SECONDS

    def mic_ok(self) -> bool:
        return self.mic_error is None and time.monotonic() - self.mic_heard_at < MIC_FRESH_SECONDS


class Agent:
    def __init__(self, settings: StationSettings):
        self.settings = settings
        self.journal = Journal(settings.journal_path)
        self.key = StationKey.load_or_create(settings.data_dir / "station_key.pem")
        self.clock = Clock()
        self.events: queue.Queue[Event] = queue.Queue()
        self.state = FlowState()
        self.devices = DeviceStatus()
        self.paper: dict[str, Any] | None = None
        # The sealed paper: ciphertext fetched ahead and cached, key in memory only (station/paper.py).
        self.papers = PaperKeeper(settings.data_dir / "papers", client=lambda: self.client)
        self.link_ok = False
        self._warned_plain_http = False
        self.last_cue: tuple[str, float] | None = None
        # What the face-login screen tells the candidate while the camera looks (a guidance code).
        self.live_guidance: str | None = None
        # The closest frame of the face tries, as JPEG, for the proctor's manual review.
        self.best_face_frame: bytes | None = None
        # The frame the last face try was decided on (JPEG), reported with the try.
        self.try_frame: bytes | None = None
        # The liveness challenge under way ("left" or "right"), for the kiosk.
        self.live_challenge: str | None = None
        self._best_face_distance: float | None = None
        self._disk_alerted: str | None = None
        self._focus_changes: queue.Queue[tuple[float, bool]] = queue.Queue()
        self.active_flags: tuple[str, ...] = ()
        self._config_digest = config_digest(settings)
        # Help chat and broadcasts (station/messages.py): beside the flow, not in it.
        self.messages = MessageBox(client=lambda: self.client, now=self.clock.now,
                                   mqtt_up=lambda: self.publisher is not None and self.publisher.connected)
        self._events_wake = threading.Event()
        self.client: EdgeClient | None = None
        self.publisher: StatusPublisher | None = None
        # One recorder per camera ("main", and "second" for the evidence camera when configured).
        self.recorders: dict[str, SegmentRecorder] = {}
        self._recorder_lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="agent-io")
        self._threads: list[threading.Thread] = []
        self.camera: Camera | None = None
        self.second_camera: Camera | None = None
        self.audio: AudioSource | None = None
        self.uploader = SegmentUploader(
            self.journal, base_url=lambda: self.client.base_url if self.client else None,
            token=settings.edge.token, chunk_bytes=settings.upload_chunk_bytes, on_link=self._set_link,
            keep_seconds=settings.retention.keep_hours * 3600, fingerprint=settings.edge.fingerprint or None)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        restored = self.journal.load_state()
        if restored is not None:
            state, alive_at = restored
            self.state = state
            logger.info("journal restored screen %s (last alive %.0f)", state.screen, alive_at)
            self.events.put(Event("restored", {"last_alive": alive_at}))
        self._open_devices()
        self._spawn(self._connect_edge, "edge-link")
        self._spawn(self._status_loop, "status")
        self._spawn(self._watch_camera, "camera-watch")
        self._spawn(self._monitor_loop, "monitor")
        if self.settings.kiosk.voice:
            self._spawn(self._build_voice, "voice")
        self._spawn(self._deliver_events, "events")
        self._spawn(lambda: self.messages.run(self._stop), "messages")
        self.uploader.start()

    def stop(self) -> None:
        self._stop.set()
        with self._recorder_lock:
            recorders, self.recorders = self.recorders, {}
        for recorder in recorders.values():
            recorder.stop()
        self.uploader.stop()
        if self.publisher is not None:
            self.publisher.stop()
        for dev in (self.camera, self.second_camera, self.audio):
            if dev is not None:
                try:
                    dev.close()
                except Exception:  # closing a lost device must not stop the shutdown
                    logger.debug("closing %s failed", dev, exc_info=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.journal.close()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def run(self) -> None:
        """The loop: one event at a time, with a tick at least every TICK_SECONDS."""
        last_tick = 0.0
        last_alive = 0.0
        while not self._stop.is_set():
            try:
                event = self.events.get(timeout=TICK_SECONDS)
                self.apply(event)
            except queue.Empty:
                pass
            mono = time.monotonic()
            if mono - last_tick >= TICK_SECONDS:
                last_tick = mono
                self.apply(Event("tick"))
            if mono - last_alive >= 1.0:
                last_alive = mono
                self.journal.touch_alive(self.clock.now())

    def post(self, name: str, payload: dict[str, Any] | None = None) -> None:
        self.events.put(Event(name, payload or {}))

    def apply(self, event: Event) -> None:
        now = self.clock.now()
        new, commands = flow.transition(self.state, event, now)
        if new != self.state:
            if new.screen != self.state.screen:
                logger.info("screen %s -> %s (%s)", self.state.screen, new.screen, event.name)
            self.journal.save_state(new, now)
            self.state = new
        for command in commands:
            try:
                self.execute(command)
            except Exception:
                logger.exception("command %s failed", command)

    # --- devices ------------------------------------------------------------------------------
    def _open_devices(self) -> None:
        cam, mic = self.settings.camera, self.settings.audio
        try:
            self.camera = open_camera(cam.kind, cam.source, size=(cam.width, cam.height), fps=cam.fps)
            self.camera.open()
            logger.info("camera: %s", self.camera)
            self._spawn(self._capture_video, "camera")
        except DeviceError as exc:
            self.devices.camera_error = str(exc)
            logger.warning("camera unavailable: %s", exc)
        second = self.settings.second_camera
        if second is not None:
            try:
                self.second_camera = open_camera(second.kind, second.source, size=(second.width, second.height),
                                                 fps=second.fps)
                self.second_camera.open()
                logger.info("second camera: %s", self.second_camera)
                self._spawn(self._capture_second, "second-camera")
            except DeviceError as exc:
                logger.warning("second camera unavailable: %s", exc)
                self._report("camera_lost", {"camera": "second", "error": str(exc)})
        try:
            self.audio = open_audio(mic.kind, mic.source, rate=mic.rate, channels=mic.channels)
            self.audio.open()
            logger.info("microphone: %s", self.audio)
            self._spawn(self._capture_audio, "microphone")
        except DeviceError as exc:
            self.devices.mic_error = str(exc)
            logger.warning("microphone unavailable: %s", exc)

    def _capture_video(self) -> None:
        assert self.camera is not None
        while not self._stop.is_set():
            try:
                frame = self.camera.read()
            except DeviceError as exc:
                self.devices.camera_error = str(exc)
                logger.warning("camera lost: %s", exc)
                self._report("camera_lost", {"error": str(exc)})
                return
            self.devices.frame = frame
            self.devices.frame_at = time.monotonic()
            self._feed(lambda r: r.push_video(frame), "main")

    def _capture_second(self) -> None:
        assert self.second_camera is not None
        while not self._stop.is_set():
            try:
                frame = self.second_camera.read()
            except DeviceError as exc:
                logger.warning("second camera lost: %s", exc)
                self._report("camera_lost", {"camera": "second", "error": str(exc)})
                return
            self._feed(lambda r: r.push_video(frame), "second")

    def _capture_audio(self) -> None:
        assert self.audio is not None
        while not self._stop.is_set():
            try:
                chunk = self.audio.read()
            except DeviceError as exc:
                self.devices.mic_error = str(exc)
                logger.warning("microphone lost: %s", exc)
                self._report("microphone_lost", {"error": str(exc)})
                return
            value = level(chunk.samples)
            self.devices.mic_level = 0.6 * self.devices.mic_level + 0.4 * value
            if value >= MIC_HEARD_LEVEL:
                self.devices.mic_heard_at = time.monotonic()
            for camera in list(self.recorders):
                self._feed(lambda r: r.push_audio(chunk), camera)

    def _feed(self, push: Callable[[SegmentRecorder], None], camera: str) -> None:
        recorder = self.recorders.get(camera)
        if recorder is None:
            return
        try:
            push(recorder)
        except RecorderError as exc:
            # The encoder failed: keep capturing (preview, face) and tell the proctor.
            logger.error("recorder of camera %s failed: %s", camera, exc)
            self._report("recorder_failed", {"camera": camera, "error": str(exc)})
            with self._recorder_lock:
                if self.recorders.get(camera) is recorder:
                    del self.recorders[camera]

    @property
    def voice_dir(self):
        return self.settings.data_dir / "voice"

    def _build_voice(self) -> None:
        """Mandarin prompts made offline with espeak-ng (once; cached by text)."""
        from station.voice import VoiceError, build_prompts

        try:
            build_prompts(self.voice_dir)
        except VoiceError as exc:
            logger.warning("voice prompts unavailable: %s", exc)

    def _watch_camera(self) -> None:
        """Beside the recorder, at low rate: QR tickets on the identify screen, live face guidance."""
        from examkiosk_wire.face import FaceEngine
        from station.face_quality import assess
        from station.qr import decode_ticket

        engine = FaceEngine()
        last_ticket: tuple[str, float] | None = None
        while not self._stop.wait(0.5):
            frame, state = self.devices.frame, self.state
            if frame is None or state.busy:
                continue
            try:
                if state.screen == Screen.IDENTIFY and self.client is not None:
                    ticket = decode_ticket(frame.image)
                    if ticket and (last_ticket is None or last_ticket[0] != ticket or time.monotonic() - last_ticket[1] > 10):
                        last_ticket = (ticket, time.monotonic())
                        logger.info("admission ticket QR code read")
                        self.post("identify", {"ticket_no": ticket, "via": "qr"})
                elif state.screen == Screen.FACE_LOGIN:
                    self.live_guidance = assess(frame.image, engine).guidance
                else:
                    self.live_guidance = None
            except Exception:  # a bad frame must never stop the watch
                logger.exception("camera watch failed on one frame")

    def page_focus(self, visible: bool) -> None:
        """The kiosk page lost or regained focus/visibility (from the page itself)."""
        self._focus_changes.put((self.clock.now(), visible))

    def _monitor_loop(self) -> None:
        """Monitoring flags while answering (F14): beside the recorder, at low priority.

        It samples at ``monitor.fps`` and skips samples it is too late for, so it never delays
        the capture or the encoder. Flags are events pointing into the recording; they inform
        the proctor and never stop the exam.
        """
        from examkiosk_wire.face import FaceEngine, face_distance
        from station import monitor
        from station.face_quality import assess

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
            state, now = self.state, self.clock.now()
            if state.screen != Screen.ANSWERING or state.candidate is None or state.candidate.descriptor is None:
                if mstate is not None:
                    mstate, ended = monitor.finish(mstate, now)
                    self._send_flags(attempt, [], ended, None)
                    mstate, self.active_flags = None, ()
                continue
            if mstate is None:
                mstate, attempt = monitor.MonitorState(), state.attempt_id
            started: list = []
            ended: list = []
            while not self._focus_changes.empty():
                at, visible = self._focus_changes.get_nowait()
                mstate, s, e = monitor.focus(mstate, at, visible)
                started, ended = started + s, ended + e
            frame = self.devices.frame
            camera_ok = self.devices.camera_ok() and frame is not None
            image = frame.image if frame is not None else None
            try:
                if camera_ok:
                    quality = assess(image, engine)
                    faces = monitor.observation_from_quality(now, quality, mic_level=self.devices.mic_level).faces
                    distance = None
                    if quality.ok and monitor.needs_descriptor(mstate, now, faces, policy):
                        enrolled = np.asarray(state.candidate.descriptor, dtype=np.float32)
                        distance = face_distance(engine.descriptor(image, quality.box), enrolled)
                    obs = monitor.observation_from_quality(now, quality, camera_ok=True,
                                                           mic_level=self.devices.mic_level, distance=distance)
                else:
                    obs = monitor.Observation(t=now, faces=0, covered=False, distance=None, camera_ok=False,
                                              mic_level=self.devices.mic_level)
                mstate, s, e = monitor.observe(mstate, obs, policy)
            except Exception:  # one bad sample must not stop monitoring
                logger.exception("monitor sample failed")
                continue
            started, ended = started + s, ended + e
            self.active_flags = tuple(f.kind for f in monitor.active_flags(mstate))
            if started or ended:
                self._send_flags(attempt, started, ended, image)

    def _send_flags(self, attempt: str | None, started: list, ended: list, image: np.ndarray | None) -> None:
        from station.monitor import locate

        if not (started or ended) or attempt is None:
            return
        closed = [(s.name, s.started_at, s.ended_at) for s in self.journal.segments_of(attempt) if s.camera == "main"]
        if closed:
            last = max(closed, key=lambda c: c[2])
            recorder = self.recorders.get("main")
            if recorder is not None:
                closed.append((f"{attempt}_main_{recorder.seq:05d}.mkv (recording)", last[2], None))
        thumbnail = None
        if image is not None and started:
            small = cv2.resize(image, (160, int(image.shape[0] * 160 / image.shape[1])))
            ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])
            thumbnail = base64.b64encode(jpeg.tobytes()).decode() if ok else None
        for flag in started:
            where = locate(flag.started_at, closed)
            self._report("flag_started", {"flag": flag.kind, "started_at": flag.started_at, "detail": flag.detail,
                                          "segment": where[0] if where else None,
                                          "offset": round(where[1], 2) if where else None,
                                          "thumbnail_jpeg": thumbnail, "question": self.state.question})
            logger.info("flag %s started at %.1f", flag.kind, flag.started_at)
        for flag in ended:
            self._report("flag_ended", {"flag": flag.kind, "started_at": flag.started_at, "ended_at": flag.ended_at})

    def frames(self, count: int, spacing: float = 0.2) -> list[np.ndarray]:
        """A few recent distinct camera frames, for face matching."""
        images: list[np.ndarray] = []
        last_index = -1
        deadline = time.monotonic() + count * spacing + 2.0
        while len(images) < count and time.monotonic() < deadline:
            frame = self.devices.frame
            if frame is not None and frame.index != last_index:
                images.append(frame.image)
                last_index = frame.index
            time.sleep(spacing)
        return images

    # --- edge link ----------------------------------------------------------------------------
    def _set_link(self, ok: bool) -> None:
        self.link_ok = ok

    def _connect_edge(self) -> None:
        edge = self.settings.edge
        mqtt = self.settings.mqtt
        while not self._stop.is_set():
            try:
                api, mqtt_host, mqtt_port, mqtt_tls = edge.api, mqtt.host, mqtt.port, mqtt.tls
                if not api or not mqtt_host:
                    service = discover_edge(centre=self.settings.centre, fp=edge.fingerprint or None,
                                            timeout=edge.discovery_timeout,
                                            interfaces=edge.discovery_interfaces or None)
                    logger.info("found edge %s at %s (mqtt %s:%s)", service.name, service.api, service.mqtt_host,
                                service.mqtt_port)
                    api = api or service.api
                    if not mqtt_host:
                        mqtt_host, mqtt_port, mqtt_tls = service.mqtt_host, service.mqtt_port, service.mqtt_tls
                if api.startswith("http://") and not self._warned_plain_http:
                    self._warned_plain_http = True
                    logger.warning("the edge at %s is plain HTTP: its identity is not checked (enrolled "
                                   "fingerprint %s…)", api, (edge.fingerprint or "none")[:16])
                client = EdgeClient(api, edge.token, fingerprint=edge.fingerprint or None)
                self.clock.sync(client)
                client.register_key(self.key.public_b64)
                self.client = client
                self.link_ok = True
                logger.info("edge %s: clock offset %.1f ms", api, self.clock.offset * 1000)
                if mqtt.username:
                    self.publisher = StatusPublisher(mqtt_host, mqtt_port, mqtt.username, mqtt.password,
                                                     self.settings.centre, self.settings.station_id, clock=self.clock,
                                                     on_command=self._command, tls=mqtt_tls,
                                                     fingerprint=edge.fingerprint or None)
                    self.publisher.start()
                self.uploader.wake()
                break
            except Exception as exc:
                logger.warning("edge not reachable yet: %s", exc)
                self.link_ok = False
                self._stop.wait(3.0)
        # Keep the clock honest while running.
        while not self._stop.wait(30.0):
            try:
                self.clock.sync(self.client)
                self.link_ok = True
            except EdgeUnavailable:
                self.link_ok = False

    def _status_loop(self) -> None:
        ticks = 0
        every = self.settings.monitor.snapshot_seconds
        next_snapshot = time.monotonic()
        while not self._stop.wait(1.0):
            ticks += 1
            if every and time.monotonic() >= next_snapshot:
                next_snapshot = time.monotonic() + every
                self._send_snapshot()
            status = self.status()
            mqtt_up = self.publisher is not None and self.publisher.connected
            if self.publisher is not None:
                self.publisher.publish_status(status)
            # The review's decision is pushed over MQTT; the API is asked as well, every
            # 10 s while the broker is up (a push lost in a reconnect), every second while not.
            if (self.state.screen == Screen.MANUAL_REVIEW and self.client and self.state.attempt_id
                    and (not mqtt_up or ticks % 10 == 0)):
                self._poll_review()
            # A move to another station is pushed too; the API is asked every 10 s (every 3 s without the broker).
            if (self.state.screen in MOVABLE_SCREENS and self.client and self.state.attempt_id
                    and ticks % (10 if mqtt_up else 3) == 0):
                self._poll_moved()
            self._watch_disk()

    def _command(self, command: StationCommand) -> None:
        """A command from the edge over MQTT (examkiosk_wire.topics.StationCommand)."""
        if command.kind == "revoked":  # the edge removes our broker login and token right after
            logger.error("the edge revoked this station: its token and MQTT login no longer work; "
                         "enrol it again with `examkiosk-provision enrol --code ... --force`")
            return
        if command.kind == "paper_key":  # the start: the sealed paper's key (kept in memory only)
            self.papers.key_pushed(command.payload)
            return
        if command.kind == "message":  # a reply or a broadcast: for the station, whatever the attempt
            self.messages.pushed(command.payload)
            return
        if command.attempt is None or command.attempt != self.state.attempt_id:
            logger.info("ignoring %s about attempt %s (current: %s)", command.kind, command.attempt,
                        self.state.attempt_id)
            return
        if command.kind == "moved":  # the seat map moved the candidate to another station
            self.post("moved", {"to": str(command.payload.get("to", ""))})
        elif command.kind == "review_result" and command.payload.get("status") in ("approved", "rejected"):
            self.post("review_result", {"status": command.payload["status"],
                                        "reason": str(command.payload.get("reason", ""))})
        else:
            logger.warning("unknown command %s", command.kind)

    def _poll_moved(self) -> None:
        try:
            moved_to = self.client.attempt(self.state.attempt_id).get("moved_to")
        except (EdgeUnavailable, EdgeRejected) as exc:
            logger.debug("move poll: %s", exc)
            return
        if moved_to:
            self.post("moved", {"to": str(moved_to)})

    def _poll_review(self) -> None:
        try:
            review = self.client.review(self.state.attempt_id)
        except (EdgeUnavailable, EdgeRejected) as exc:
            logger.debug("review poll: %s", exc)
            return
        if review.get("status") in ("approved", "rejected"):
            self.post("review_result", {"status": review["status"], "reason": review.get("reason", "")})

    def disk_check(self) -> dict[str, int]:
        """Free space against what the attempt may record (see flow.recording_bytes_needed)."""
        free = shutil.disk_usage(self.settings.data_dir).free
        sch = self.state.schedule
        needed = 0 if sch is None else flow.recording_bytes_needed(sch, self.settings.recording.bitrate_kbps,
                                                                   self.clock.now())
        return {"disk_free": free, "disk_needed": needed}

    def _watch_disk(self) -> None:
        """While recording: alert staff once if the rest of the exam may not fit on the disk."""
        state = self.state
        if not state.recording or state.schedule is None or self._disk_alerted == state.attempt_id:
            return
        remaining = max(state.schedule.ends_at - self.clock.now(), 0)
        needed = int(self.settings.recording.bitrate_kbps * 1000 / 8 * remaining * 1.2)
        free = shutil.disk_usage(self.settings.data_dir).free
        if free < needed:
            self._disk_alerted = state.attempt_id
            logger.warning("disk low during recording: %d MB free, %d MB needed", free // 10**6, needed // 10**6)
            self._report("disk_low", {"free": free, "needed": needed, "during": "recording"})

    def status(self) -> StationStatus:
        state = self.state
        now = self.clock.now()
        left = flow.time_left(state, now)
        usage = shutil.disk_usage(self.settings.data_dir)
        return StationStatus(
            station=self.settings.station_id, online=True, state=str(state.screen), lot=state.lot,
            question=state.question or None, time_left=None if left is None else round(left, 1),
            mic_level=round(self.devices.mic_level, 3), backlog=len(self.journal.pending()),
            disk_free_mb=int(usage.free / 1e6), clock_offset_ms=round(self.clock.offset * 1000, 1),
            version=package_version(), config=self._config_digest, ts=now, flags=self.active_flags,
        )

    def _send_snapshot(self) -> None:
        """The latest camera frame, small, for the proctors' dashboard (only while the camera delivers)."""
        from station.snapshot import snapshot_jpeg

        frame = self.devices.frame
        if self.publisher is None or not self.publisher.connected or frame is None or not self.devices.camera_ok():
            return
        try:
            self.publisher.publish_snapshot(snapshot_jpeg(frame.image))
        except ValueError as exc:
            logger.debug("no snapshot: %s", exc)

    def _report(self, kind: str, payload: dict[str, Any]) -> None:
        """Events go through the journal's outbox, so none is lost to a crash or a network cut."""
        self.journal.enqueue_event(kind, dict(payload, at=self.clock.now()), self.state.attempt_id)
        self._events_wake.set()

    def _deliver_events(self) -> None:
        """Send queued events: over MQTT (QoS 1, acknowledged) when connected, else the API."""
        while not self._stop.is_set():
            self._events_wake.wait(2.0)
            self._events_wake.clear()
            for event_id, kind, payload, attempt in self.journal.pending_events():
                try:
                    if self.publisher is not None and self.publisher.connected:
                        info = self.publisher.publish_event(kind, payload, attempt=attempt)
                        info.wait_for_publish(timeout=5)
                        if not info.is_published():
                            break
                    elif self.client is not None:
                        self.client.event(kind, payload, attempt=attempt)
                    else:
                        break
                except (EdgeUnavailable, RuntimeError, ValueError) as exc:
                    logger.info("event %s waits for the edge: %s", kind, exc)
                    break
                except EdgeRejected as exc:
                    logger.warning("edge refused event %s: %s", kind, exc)
                self.journal.event_delivered(event_id)

    # --- commands -----------------------------------------------------------------------------
    def execute(self, command: flow.Command) -> None:
        handler = getattr(self, f"_do_{type(command).__name__}")
        handler(command)

    def _background(self, work: Callable[[], Event | None], failure: str = "command_failed") -> None:
        def run() -> None:
            try:
                result = work()
            except EdgeRejected as exc:
                logger.info("%s: the edge refused: %s (%s)", failure, exc.message, exc.code)
                result = Event(failure, {"code": exc.code, "message": exc.message})
            except EdgeUnavailable as exc:
                logger.warning("%s: %s", failure, exc)
                self.link_ok = False
                result = Event(failure, {"code": "edge_unreachable", "message": str(exc)})
            except Exception as exc:
                logger.exception("background command failed")
                result = Event(failure, {"code": "station_error", "message": str(exc)})
            if result is not None:
                self.events.put(result)

        self._pool.submit(run)

    def _need_client(self) -> EdgeClient:
        if self.client is None:
            raise EdgeUnavailable("the edge server has not been found yet")
        return self.client

    def _do_OpenAttempt(self, cmd: flow.OpenAttempt) -> None:
        def work() -> Event:
            data = self._need_client().open_attempt(cmd.ticket_no)
            self._pool.submit(self._prefetch_paper, str(data["sitting"]["id"]))
            return Event("attempt_opened", data)

        self._background(work, failure="attempt_failed")

    def _do_MatchFace(self, cmd: flow.MatchFace) -> None:
        def work() -> Event:
            from examkiosk_wire.face import FaceEngine, decide, face_distance
            from station.face_quality import assess

            cand = self.state.candidate
            if cand is None or cand.descriptor is None:
                return Event("face_result", {"matched": False, "distance": None, "guidance": "no_enrolment"})
            engine = FaceEngine()
            descriptors = []
            good_images: list[np.ndarray] = []
            refused: list[str] = []
            # Only frames that pass the quality gate are matched; the decision uses several of them.
            for image in self.frames(self.settings.face.frames + 3):
                quality = assess(image, engine)
                if not quality.ok:
                    refused.append(quality.guidance)
                    continue
                descriptors.append(engine.descriptor(image, quality.box))
                good_images.append(image)
                if len(descriptors) >= self.settings.face.frames:
                    break
            if not descriptors:
                guidance = max(set(refused), key=refused.count) if refused else "no_face"
                return Event("face_result", {"matched": False, "distance": None, "guidance": guidance})
            enrolled = np.asarray(cand.descriptor, dtype=np.float32)
            threshold = self.state.face_threshold or self.settings.face.threshold
            decision = decide(descriptors, enrolled, threshold=threshold)
            self._keep_best_frame(good_images, descriptors, enrolled)
            closest = min(range(len(descriptors)), key=lambda i: face_distance(descriptors[i], enrolled))
            self.try_frame = _jpeg(good_images[closest])
            logger.info("face try: distance %.3f over %d frames (threshold %.2f) -> %s", decision.distance,
                        decision.frames_used, threshold, "match" if decision.matched else "no match")
            result: dict[str, Any] = {"matched": decision.matched, "distance": round(decision.distance, 4)}
            if decision.matched and self.settings.face.liveness:
                result["liveness"] = self._liveness_challenge(engine).to_dict()
            return Event("face_result", result)

        self._background(work)

    def _liveness_challenge(self, engine: "FaceEngine") -> "LivenessResult":
        """Ask for a head turn to a random side and watch the camera meanwhile (station.liveness)."""
        from station.liveness import Direction, LivenessCheck

        direction = secrets.choice(list(Direction))
        self.live_challenge = str(direction)
        self._do_Speak(flow.Speak(f"turn_{direction}"))
        check = LivenessCheck(engine, direction)
        last_index = -1
        deadline = time.monotonic() + self.settings.face.challenge_seconds
        try:
            while time.monotonic() < deadline:
                frame = self.devices.frame
                if frame is None or frame.index == last_index:
                    time.sleep(0.02)
                    continue
                last_index = frame.index
                check.add(frame.image)  # about 40 ms a frame: the check sees 10-20 frames
        finally:
            self.live_challenge = None
        result = check.result()
        logger.info("liveness (%s): %s", direction, result.to_dict())
        return result

    def _keep_best_frame(self, images: list[np.ndarray], descriptors: list[np.ndarray], enrolled: np.ndarray) -> None:
        from examkiosk_wire.face import face_distance

        for image, descriptor in zip(images, descriptors):
            distance = face_distance(descriptor, enrolled)
            if self._best_face_distance is None or distance < self._best_face_distance:
                jpeg = _jpeg(image)
                if jpeg:
                    self.best_face_frame, self._best_face_distance = jpeg, distance

    def _do_ReportFaceTry(self, cmd: flow.ReportFaceTry) -> None:
        attempt = self.state.attempt_id

        frame, self.try_frame = self.try_frame, None

        def work() -> None:
            self._need_client().face_try(attempt, distance=cmd.distance, matched=cmd.matched,
                                         liveness=cmd.liveness, frame_jpeg=frame)
            return None

        self._background(work, failure="report_failed")

    def _do_RequestReview(self, cmd: flow.RequestReview) -> None:
        attempt = self.state.attempt_id

        def work() -> None:
            self._need_client().request_review(attempt, best_distance=cmd.best_distance,
                                               frame_jpeg=self.best_face_frame)
            return None

        self._background(work, failure="report_failed")

    def _do_RedeemCode(self, cmd: flow.RedeemCode) -> None:
        attempt = self.state.attempt_id

        def work() -> Event:
            self._need_client().redeem_fallback_code(attempt, cmd.code)
            return Event("review_result", {"status": "approved", "reason": "fallback_code"})

        self._background(work)

    def _do_DrawLot(self, cmd: flow.DrawLot) -> None:
        attempt = self.state.attempt_id

        def work() -> Event:
            data = self._need_client().draw_lot(attempt)
            return Event("lot_drawn", {"lot": data["lot"], "auto": data.get("auto", False)})

        self._background(work)

    def _do_StartRecording(self, cmd: flow.StartRecording) -> None:
        """One segment chain per camera; after a restart each chain continues from the journal."""
        attempt = self.state.attempt_id
        assert attempt is not None
        cameras = {"main": (self.camera, self.settings.camera)}
        if self.second_camera is not None and self.settings.second_camera is not None:
            cameras["second"] = (self.second_camera, self.settings.second_camera)
        with self._recorder_lock:
            for name, (device, cfg) in cameras.items():
                if name in self.recorders:
                    self.recorders[name].cut(cmd.question)
                    continue
                recorder = self._new_recorder(attempt, name, device, cfg)
                recorder.start(cmd.question)
                self.recorders[name] = recorder
                logger.info("recording attempt %s, camera %s, from segment %d", attempt, name, recorder.seq)

    def _new_recorder(self, attempt: str, name: str, device: Any, cfg: Any) -> Any:
        """The Pi's hardware encoder for a picamera2 camera, libx264 (``SegmentRecorder``) otherwise."""
        # After a move here the chain continues at the move's base (examkiosk_wire.chain.move_seq_base).
        common = dict(segment_seconds=self.settings.recording.segment_seconds,
                      first_seq=max(self.journal.next_seq(attempt, name), self.state.seq_from), clock=self.clock.now,
                      on_closed=self._segment_closed)
        out_dir = self.settings.segments_dir / attempt
        if self.settings.recording.hardware_encoder and hasattr(device, "hardware_recorder"):
            return device.hardware_recorder(out_dir, attempt, name, audio=name == "main",
                                            bitrate=self.settings.recording.bitrate_kbps * 1000, **common)
        return SegmentRecorder(
            out_dir, attempt, name,
            fps=device.fps if device is not None else cfg.fps,
            size=device.size if device is not None else (cfg.width, cfg.height),
            audio_rate=self.settings.audio.rate, audio_channels=self.settings.audio.channels, **common)

    def _segment_closed(self, info: SegmentInfo) -> None:
        """Journal the closed segment as the next signed link of its camera's chain, then upload it."""
        # The first segment at a move's base starts a new link of the chain (examkiosk_wire.chain.link_problems).
        restart = info.seq > 0 and info.seq == self.state.seq_from
        entry = ChainEntry(attempt=info.attempt_id, camera=info.camera, seq=info.seq, name=info.name,
                           question=info.question, started_at=info.started_at, ended_at=info.ended_at,
                           size=info.size, sha256=info.sha256,
                           prev=GENESIS if restart else self.journal.last_entry(info.attempt_id, info.camera))
        digest = entry.digest()
        self.journal.add_segment(name=info.name, attempt_id=info.attempt_id, camera=info.camera, seq=info.seq,
                                 question=info.question, path=info.path, started_at=info.started_at,
                                 ended_at=info.ended_at, size=info.size, sha256=info.sha256, prev_hash=entry.prev,
                                 entry_hash=digest, signature=self.key.sign(digest))
        self.uploader.wake()

    def _do_CutSegment(self, cmd: flow.CutSegment) -> None:
        with self._recorder_lock:
            for recorder in self.recorders.values():
                recorder.cut(cmd.question)

    def _do_StopRecording(self, cmd: flow.StopRecording) -> None:
        with self._recorder_lock:
            recorders, self.recorders = self.recorders, {}
        for recorder in recorders.values():
            recorder.stop()

    def _prefetch_paper(self, sitting: str) -> None:
        """Download the sealed paper while the candidate gets ready (it is opened at the start)."""
        try:
            self.papers.prefetch(sitting)
        except (EdgeUnavailable, EdgeRejected, PaperDamaged) as exc:
            logger.warning("could not fetch the sealed paper of %s ahead of the start: %s", sitting, exc)

    def _do_FetchPaper(self, cmd: flow.FetchPaper) -> None:
        """Open the sealed paper at the start: the key pushed over MQTT, else asked from the API."""
        schedule = self.state.schedule
        if schedule is None:
            return
        sitting = schedule.sitting
        self.paper = None  # never show the previous attempt's paper while this one opens

        def work() -> Event | None:
            for _ in range(240):
                try:
                    mqtt_up = self.publisher is not None and self.publisher.connected
                    # With the broker up the push usually comes first; ask the API when it has not.
                    grace = PUSH_GRACE_SECONDS if mqtt_up else 0.0
                    if not self.papers.has_key(sitting) and self.clock.now() >= schedule.starts_at + grace:
                        self.papers.fetch_key(sitting)
                    if self.papers.has_key(sitting):
                        self.paper = self.papers.open(sitting)
                        return Event("paper_loaded", {})
                except PaperDamaged as exc:
                    logger.error("the paper of %s cannot be opened: %s", sitting, exc)
                    self._report("paper_damaged", {"sitting": sitting, "error": str(exc)})
                    return Event("command_failed", {"code": "paper_damaged"})
                except EdgeRejected as exc:
                    if exc.code not in ("paper_sealed", "paper_missing"):
                        raise
                except EdgeUnavailable:
                    pass
                if self._stop.wait(0.5):
                    return None
            return Event("command_failed", {"code": "paper_unavailable"})

        self._background(work)

    def _do_FinishAttempt(self, cmd: flow.FinishAttempt) -> None:
        attempt = self.state.attempt_id

        def work() -> Event | None:
            # Every segment is journaled before upload; wait for the uploader to catch up.
            while not self._stop.is_set():
                try:
                    names = [s.name for s in self.journal.segments_of(attempt)]
                    if not any(s.attempt_id == attempt for s in self.journal.pending()):
                        status = self._need_client().finish(attempt, names, reason=cmd.reason)
                        if status.get("complete"):
                            return Event("uploads_verified", {})
                    self.uploader.wake()
                except (EdgeUnavailable, EdgeRejected) as exc:
                    logger.info("waiting for the edge to confirm the upload: %s", exc)
                self._stop.wait(1.0)
            return None

        self._background(work)

    def _do_HandOver(self, cmd: flow.HandOver) -> None:
        """The candidate moved on: declare this station's segments (the attempt goes on elsewhere),
        upload them all, and free the station once the edge has verified every one."""
        attempt = cmd.attempt_id

        def work() -> Event | None:
            while not self._stop.is_set():
                try:
                    names = [s.name for s in self.journal.segments_of(attempt)]
                    status = self._need_client().finish(attempt, names, reason="moved")
                    uploaded = not any(s.attempt_id == attempt for s in self.journal.pending())
                    if uploaded and not set(names) & set(status.get("missing", [])):
                        logger.info("attempt %s handed over: %d segments verified", attempt, len(names))
                        return Event("handed_over", {})
                    self.uploader.wake()
                except (EdgeUnavailable, EdgeRejected) as exc:
                    logger.info("waiting to hand attempt %s over: %s", attempt, exc)
                self._stop.wait(1.0)
            return None

        self._background(work)

    def _do_Speak(self, cmd: flow.Speak) -> None:
        self.last_cue = (cmd.cue, time.time())

    def _do_ReportEvent(self, cmd: flow.ReportEvent) -> None:
        self._report(cmd.kind, dict(cmd.payload))

    def _do_RefreshDevices(self, cmd: flow.RefreshDevices) -> None:
        if self.devices.camera_error and self.camera is None:
            self._open_devices()


def _jpeg(image: np.ndarray, quality: int = 85) -> bytes | None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="examkiosk-station", description="examkiosk station agent")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check_config:
        print("configuration OK")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per kiosk poll (ten a second)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    agent = Agent(settings)
    from station.kiosk import serve_kiosk

    def _stop(signum: int, frame: Any) -> None:
        agent._stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    agent.start()
    server = serve_kiosk(agent, settings.kiosk.host, settings.kiosk.port)
    logger.info("kiosk at http://%s:%d/", settings.kiosk.host, settings.kiosk.port)
    try:
        agent.run()
    finally:
        server.shutdown()
        agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
