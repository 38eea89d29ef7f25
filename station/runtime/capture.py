"""The capture hub: opens the cameras and the microphone the config names, reads them on threads of
their own, keeps the latest frame and the mic level for everyone who looks (face login, watchers,
kiosk, status) and hands every frame and audio chunk to the recording."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from station.capture.audio import AudioSource, level
from station.capture.backends import open_audio, open_camera
from station.capture.camera import Camera
from station.capture.frames import AudioChunk, DeviceError, VideoFrame
from station.config import StationSettings

logger = logging.getLogger(__name__)

MIC_HEARD_LEVEL = 0.35
CAMERA_FRESH_SECONDS = 2.0
MIC_FRESH_SECONDS = 6.0


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


class Sink(Protocol):
    """Where the captured media go (the recording)."""

    def push_video(self, camera: str, frame: VideoFrame) -> None: ...

    def push_audio(self, chunk: AudioChunk) -> None: ...


class CaptureHub:
    def __init__(self, settings: StationSettings, *, stop: threading.Event, sink: Sink,
                 report: Callable[[str, dict[str, Any]], None]):
        self.settings = settings
        self._stop = stop
        self._sink = sink
        self._report = report
        self.status = DeviceStatus()
        self.camera: Camera | None = None
        self.second_camera: Camera | None = None
        self.audio: AudioSource | None = None

    def start(self) -> None:
        self.open_devices()

    def stop(self) -> None:
        for dev in (self.camera, self.second_camera, self.audio):
            if dev is not None:
                try:
                    dev.close()
                except Exception:  # closing a lost device must not stop the shutdown
                    logger.debug("closing %s failed", dev, exc_info=True)

    def refresh(self) -> None:
        """The candidate asked to look for the devices again: reopen them if the camera never opened."""
        if self.status.camera_error and self.camera is None:
            self.open_devices()

    def open_devices(self) -> None:
        cam, mic = self.settings.camera, self.settings.audio
        try:
            self.camera = open_camera(cam.kind, cam.source, size=(cam.width, cam.height), fps=cam.fps)
            logger.info("camera: %s", self.camera)
            self._spawn(self._capture_video, "camera")
        except DeviceError as exc:
            self.status.camera_error = str(exc)
            logger.warning("camera unavailable: %s", exc)
        second = self.settings.second_camera
        if second is not None:
            try:
                self.second_camera = open_camera(second.kind, second.source, size=(second.width, second.height),
                                                 fps=second.fps)
                logger.info("second camera: %s", self.second_camera)
                self._spawn(self._capture_second, "second-camera")
            except DeviceError as exc:
                logger.warning("second camera unavailable: %s", exc)
                self._report("camera_lost", {"camera": "second", "error": str(exc)})
        try:
            self.audio = open_audio(mic.kind, mic.source, rate=mic.rate, channels=mic.channels)
            logger.info("microphone: %s", self.audio)
            self._spawn(self._capture_audio, "microphone")
        except DeviceError as exc:
            self.status.mic_error = str(exc)
            logger.warning("microphone unavailable: %s", exc)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        threading.Thread(target=target, name=name, daemon=True).start()

    def _capture_video(self) -> None:
        assert self.camera is not None
        while not self._stop.is_set():
            try:
                frame = self.camera.read()
            except DeviceError as exc:
                self.status.camera_error = str(exc)
                logger.warning("camera lost: %s", exc)
                self._report("camera_lost", {"error": str(exc)})
                return
            self.status.frame = frame
            self.status.frame_at = time.monotonic()
            self._sink.push_video("main", frame)

    def _capture_second(self) -> None:
        assert self.second_camera is not None
        while not self._stop.is_set():
            try:
                frame = self.second_camera.read()
            except DeviceError as exc:
                logger.warning("second camera lost: %s", exc)
                self._report("camera_lost", {"camera": "second", "error": str(exc)})
                return
            self._sink.push_video("second", frame)

    def _capture_audio(self) -> None:
        assert self.audio is not None
        while not self._stop.is_set():
            try:
                chunk = self.audio.read()
            except DeviceError as exc:
                self.status.mic_error = str(exc)
                logger.warning("microphone lost: %s", exc)
                self._report("microphone_lost", {"error": str(exc)})
                return
            value = level(chunk.samples)
            self.status.mic_level = 0.6 * self.status.mic_level + 0.4 * value
            if value >= MIC_HEARD_LEVEL:
                self.status.mic_heard_at = time.monotonic()
            self._sink.push_audio(chunk)

    def frames(self, count: int, spacing: float = 0.2) -> list[np.ndarray]:
        """A few recent distinct camera frames, for face matching."""
        images: list[np.ndarray] = []
        last_index = -1
        deadline = time.monotonic() + count * spacing + 2.0
        while len(images) < count and time.monotonic() < deadline:
            frame = self.status.frame
            if frame is not None and frame.index != last_index:
                images.append(frame.image)
                last_index = frame.index
            time.sleep(spacing)
        return images

    def cameras(self) -> dict[str, tuple[Camera | None, Any]]:
        """The cameras to record, by name, with their config: "main", and "second" when it is open."""
        cameras: dict[str, tuple[Camera | None, Any]] = {"main": (self.camera, self.settings.camera)}
        if self.second_camera is not None and self.settings.second_camera is not None:
            cameras["second"] = (self.second_camera, self.settings.second_camera)
        return cameras
