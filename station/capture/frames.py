"""What capture devices deliver: :class:`VideoFrame`, :class:`AudioChunk`, and :class:`DeviceError`.

All times are ``time.monotonic()`` seconds; the recorder maps them to server time. Backends turn
library errors into :class:`DeviceError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoFrame:
    """One captured picture."""

    image: np.ndarray  # BGR uint8, H x W x 3
    t: float  # time.monotonic() at capture
    index: int  # running frame number since open()


@dataclass(frozen=True)
class AudioChunk:
    """A block of interleaved 16-bit samples."""

    samples: np.ndarray  # int16, shape (n, channels)
    rate: int
    t: float  # time.monotonic() of the first sample

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


class DeviceError(Exception):
    """A capture device could not be opened, or was lost while reading."""


def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on the monotonic clock (at once if it passed): how file backends pace."""
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
