"""A token bucket: at most ``rate`` bytes per second on average, in bursts of at most ``burst``."""
from __future__ import annotations

import time
from typing import Callable


class TokenBucket:
    """``take(n)`` returns once ``n`` bytes may go; a rate of 0 never waits."""

    def __init__(self, rate: float, burst: float | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate, 1))
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._at = clock()

    def take(self, n: int) -> float:
        """Spend ``n`` tokens, sleeping while the bucket is in debt; returns the seconds slept."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= n
        if self._tokens >= 0:
            return 0.0
        wait = -self._tokens / self.rate
        self._sleep(wait)
        return wait
