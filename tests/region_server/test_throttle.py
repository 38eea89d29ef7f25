"""The re-hash's token bucket, on a controllable clock (no sleeps)."""
from __future__ import annotations

from region_server.throttle import TokenBucket


class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_bucket_keeps_the_average_rate_and_allows_one_burst():
    clock = Clock()
    bucket = TokenBucket(1000, burst=1000, clock=clock, sleep=clock.sleep)
    assert bucket.take(1000) == 0  # the burst
    for _ in range(10):
        bucket.take(500)
    assert abs(clock.now - 5.0) < 1e-9  # 5,000 more bytes at 1,000 B/s
    clock.now += 100  # idle: the bucket refills only up to its burst
    assert bucket.take(1000) == 0 and bucket.take(1000) == 1.0


def test_a_rate_of_zero_never_waits():
    clock = Clock()
    bucket = TokenBucket(0, clock=clock, sleep=clock.sleep)
    assert bucket.take(10**12) == 0 and clock.slept == []
