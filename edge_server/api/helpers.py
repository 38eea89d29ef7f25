"""Small helpers shared by the API routes: time."""
from __future__ import annotations

import time
from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)


def epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def server_time() -> float:
    return time.time()
