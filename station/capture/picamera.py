"""The Raspberry Pi camera through picamera2 (an optional dependency, only on a Pi).

picamera2 is imported when a camera opens, never at import time, so this module loads anywhere.
While it captures frames for the preview and the face checks, the Pi's H.264 hardware encoder can
record the same camera (``station.recording.picamera``, chosen by ``station.recording.choose``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from station.capture.camera import Camera, parse_index
from station.capture.frames import DeviceError, VideoFrame

logger = logging.getLogger(__name__)

PICAMERA2_MISSING = "picamera2 is only available on a Raspberry Pi; install examkiosk[pi]"


def list_pi_cameras() -> list[str]:
    """Pi cameras libcamera sees, as ``picamera2:index model`` lines. Never raises."""
    found: list[str] = []
    try:
        # picamera2 is an optional dependency that exists only on a Pi: imported when used.
        from picamera2 import Picamera2

        for i, info in enumerate(Picamera2.global_camera_info()):
            found.append(f"picamera2:{i} {info.get('Model', 'camera')}")
    except Exception:  # not a Pi, or libcamera unhappy
        pass
    return found


class Picamera2Camera(Camera):
    """A Raspberry Pi camera through picamera2 (imported only when opened)."""

    def __init__(
        self,
        index: int | str = 0,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        name: str | None = None,
    ) -> None:
        parsed = parse_index(index)
        if not isinstance(parsed, int):
            raise ValueError(f"picamera2 camera number must be an integer, not {index!r}")
        self.index = parsed
        self.name = name or f"picamera2:{self.index}"
        self.size = tuple(size) if size else (1280, 720)
        self.fps = float(fps) if fps else 30.0
        self._cam: Any = None
        self._index = 0

    def open(self) -> None:
        if self._cam is not None:
            return
        try:
            # picamera2 is an optional dependency that exists only on a Pi: imported when opened.
            from picamera2 import Picamera2
        except ImportError as exc:
            raise DeviceError(PICAMERA2_MISSING) from exc
        try:
            cam = Picamera2(camera_num=self.index)
            # libcamera's "RGB888" is B, G, R in memory: what OpenCV calls BGR.
            config = cam.create_video_configuration(
                main={"size": self.size, "format": "RGB888"},
                controls={"FrameRate": self.fps},
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:  # picamera2 raises RuntimeError, IndexError, ...
            raise DeviceError(f"cannot start Pi camera {self.index}: {exc}") from exc
        self._cam = cam
        self._index = 0
        logger.info("camera %s opened: %dx%d at %g fps", self.name, *self.size, self.fps)

    def read(self) -> VideoFrame:
        if self._cam is None:
            raise DeviceError(f"camera {self.name} is not open")
        try:
            image = self._cam.capture_array("main")
        except Exception as exc:
            raise DeviceError(f"camera {self.name} lost: {exc}") from exc
        t = time.monotonic()
        if image.ndim == 3 and image.shape[2] == 4:  # XBGR8888 and friends
            image = image[:, :, :3]
        frame = VideoFrame(image=np.ascontiguousarray(image), t=t, index=self._index)
        self._index += 1
        return frame

    @property
    def picamera2(self) -> Any:
        """The open ``Picamera2`` object, for the hardware recorder (``station.recording.picamera``)."""
        if self._cam is None:
            raise DeviceError(f"camera {self.name} is not open")
        return self._cam

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            except Exception:
                logger.warning("camera %s did not close cleanly", self.name, exc_info=True)
            self._cam = None
