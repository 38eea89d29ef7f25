"""Cameras behind a small abstract base: a video file and anything OpenCV opens.

File backends behave like live devices: they are paced in real time and loop forever, so the rest
of the station cannot tell them apart. The Pi camera is in ``station.capture.picamera``.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from station.capture.frames import DeviceError, VideoFrame, sleep_until

logger = logging.getLogger(__name__)


class Camera(ABC):
    """A source of :class:`VideoFrame`.

    ``fps`` and ``size`` (width, height) hold the requested values until
    :meth:`open` has run, and what the device really delivers afterwards.
    """

    name: str
    fps: float
    size: tuple[int, int]

    @abstractmethod
    def open(self) -> None:
        """Start capturing. Raises DeviceError. Opening an open camera does nothing."""

    @abstractmethod
    def read(self) -> VideoFrame:
        """Block until the next frame. Raises DeviceError if the device is lost."""

    @abstractmethod
    def close(self) -> None:
        """Release the device. Safe to call twice."""

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.size[0]}x{self.size[1]}@{self.fps:g}>"


class FileCamera(Camera):
    """A video file played as a camera.

    Frames are decoded with PyAV, paced in real time at the file's frame rate
    (or ``fps`` if given) and the file loops forever. Frame ``i`` is due at
    ``start + i / fps`` on the monotonic clock, so pacing never drifts; a
    reader that falls behind gets the overdue frames at once. ``size``
    resizes every frame.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or f"file:{self.path.name}"
        self._want_size = tuple(size) if size else None
        self._want_fps = float(fps) if fps else None
        self.size = self._want_size or (0, 0)
        self.fps = self._want_fps or 0.0
        self._container: Any = None
        self._frames: Any = None
        self._start = 0.0
        self._index = 0

    def open(self) -> None:
        if self._container is not None:
            return
        self._open_container()
        stream = self._container.streams.video[0]
        if self._want_fps is None:
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            self.fps = float(rate)
        if self._want_size is None:
            self.size = (stream.codec_context.width, stream.codec_context.height)
        self._index = 0
        self._start = time.monotonic()
        logger.info("camera %s opened: %dx%d at %g fps", self.name, *self.size, self.fps)

    def _open_container(self) -> None:
        try:
            self._container = av.open(str(self.path))
            if not self._container.streams.video:
                raise DeviceError(f"{self.path} has no video stream")
        except (OSError, av.FFmpegError) as exc:
            self._container = None
            raise DeviceError(f"cannot open video file {self.path}: {exc}") from exc
        self._frames = self._container.decode(video=0)

    def _next_image(self) -> np.ndarray:
        for _attempt in range(2):
            try:
                frame = next(self._frames)
            except StopIteration:
                # End of file: start again from the beginning.
                self._container.close()
                self._open_container()
                continue
            except av.FFmpegError as exc:
                raise DeviceError(f"cannot decode {self.path}: {exc}") from exc
            return frame.to_ndarray(format="bgr24")
        raise DeviceError(f"{self.path} has no decodable frames")

    def read(self) -> VideoFrame:
        if self._container is None:
            raise DeviceError(f"camera {self.name} is not open")
        image = self._next_image()
        if image.shape[1::-1] != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        sleep_until(self._start + self._index / self.fps)
        frame = VideoFrame(image=image, t=time.monotonic(), index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._frames = None


def parse_index(source: str | int | None) -> str | int:
    """'' / None -> 0, '2' -> 2, anything else (a path, a URL, a pipeline) as is."""
    if source is None or source == "":
        return 0
    if isinstance(source, int):
        return source
    return int(source) if source.strip().isdigit() else source


class OpenCVCamera(Camera):
    """A V4L2/UVC camera (or anything ``cv2.VideoCapture`` opens) read with OpenCV.

    The requested size and frame rate are asked for; if the device delivers
    another size, frames are resized so consumers always get ``size``.
    """

    def __init__(
        self,
        index: int | str = 0,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        name: str | None = None,
    ) -> None:
        self.index = parse_index(index)
        self.name = name or f"opencv:{self.index}"
        self._want_size = tuple(size) if size else None
        self._want_fps = float(fps) if fps else None
        self.size = self._want_size or (640, 480)
        self.fps = self._want_fps or 30.0
        self._cap: Any = None
        self._native_size: tuple[int, int] = self.size
        self._index = 0

    def open(self) -> None:
        if self._cap is not None:
            return
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(f"cannot open camera {self.index!r} with OpenCV")
        if self._want_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._want_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._want_size[1])
        if self._want_fps:
            cap.set(cv2.CAP_PROP_FPS, self._want_fps)
        native = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if native[0] <= 0 or native[1] <= 0:
            ok, image = cap.read()
            if not ok:
                cap.release()
                raise DeviceError(f"camera {self.index!r} opened but gives no frames")
            native = (image.shape[1], image.shape[0])
        self._native_size = native
        self.size = self._want_size or native
        reported_fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = self._want_fps or (reported_fps if 0 < reported_fps < 1000 else 30.0)
        if native != self.size:
            logger.info("camera %s delivers %dx%d; resizing to %dx%d", self.name, *native, *self.size)
        self._cap = cap
        self._index = 0
        logger.info("camera %s opened: %dx%d at %g fps", self.name, *self.size, self.fps)

    def read(self) -> VideoFrame:
        if self._cap is None:
            raise DeviceError(f"camera {self.name} is not open")
        ok, image = self._cap.read()
        t = time.monotonic()
        if not ok or image is None:
            raise DeviceError(f"camera {self.name} stopped delivering frames")
        if image.shape[1::-1] != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        frame = VideoFrame(image=image, t=t, index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
