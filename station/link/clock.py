"""The edge's clock seen from the station (the exam's clock): an NTP-style offset."""
from __future__ import annotations

import logging
import threading
import time

from station.link.client import EdgeClient
from station.link.errors import EdgeUnavailable

logger = logging.getLogger(__name__)


class Clock:
    """The edge's clock seen from the station: NTP-style offset from API round trips."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._rtt: float | None = None
        self._synced_at: float | None = None

    def sync(self, client: EdgeClient, samples: int = 5) -> float:
        """Sample ``GET /time`` and keep the offset of the quickest round trip; returns it."""
        best: tuple[float, float] | None = None
        error: EdgeUnavailable | None = None
        for _ in range(max(1, samples)):
            wall0, mono0 = time.time(), time.monotonic()
            try:
                server = client.time()
            except EdgeUnavailable as exc:
                error = exc
                continue
            rtt = time.monotonic() - mono0
            offset = server - (wall0 + rtt / 2)  # server - (t0 + t1) / 2, on a monotonic ruler
            if best is None or rtt < best[1]:
                best = (offset, rtt)
        if best is None:
            assert error is not None
            raise error
        with self._lock:
            self._offset, self._rtt = best
            self._synced_at = time.monotonic()
        logger.info("clock offset to the edge %+.1f ms (round trip %.1f ms)", best[0] * 1000, best[1] * 1000)
        return best[0]

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    @property
    def rtt(self) -> float | None:
        with self._lock:
            return self._rtt

    @property
    def synced(self) -> bool:
        with self._lock:
            return self._synced_at is not None

    def now(self) -> float:
        """Server time, in seconds since the epoch."""
        with self._lock:
            offset = self._offset
        return time.time() + offset
