"""How late the bridge's writes are: a window of the most recent message lags, in milliseconds."""
from __future__ import annotations

import collections
import threading


class LagWindow:
    """The last ``size`` lags (receive to committed, ms); percentiles over them. Thread-safe."""

    def __init__(self, size: int = 5000):
        self._lags: collections.deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, lags_ms: list[float]) -> None:
        with self._lock:
            self._lags.extend(lags_ms)

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100, nearest rank) of the window, None while it is empty."""
        with self._lock:
            values = sorted(self._lags)
        if not values:
            return None
        rank = max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))
        return values[rank]

    def __len__(self) -> int:
        return len(self._lags)
