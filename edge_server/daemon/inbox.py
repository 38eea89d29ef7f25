"""What the MQTT bridge received and has not yet written: the latest status per station, the events.

Status is state, not history: a station's newer status replaces the one still waiting, so the
database gets at most one write per station per flush however often it publishes. Events are
history: every one is kept, in arrival order. Pure (no I/O): paho's thread puts, the writer's
thread takes, under one lock. Each entry keeps when it arrived (``received``, monotonic seconds)
so the writer can tell how late it was when it reached the database.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PendingStatus:
    station: str
    status: dict[str, Any]
    seen_at: datetime
    received: float


@dataclass(frozen=True)
class PendingEvent:
    station: str
    kind: str
    attempt: str | None
    payload: dict[str, Any]
    at: datetime
    received: float


@dataclass
class Batch:
    statuses: dict[str, PendingStatus] = field(default_factory=dict)
    events: list[PendingEvent] = field(default_factory=list)
    replaced: int = 0  # statuses that a newer one of the same station replaced before the write

    def __bool__(self) -> bool:
        return bool(self.statuses or self.events)

    @property
    def oldest(self) -> float | None:
        """When the oldest message in the batch arrived (monotonic), or None if empty."""
        times = [s.received for s in self.statuses.values()] + [e.received for e in self.events[:1]]
        return min(times) if times else None

    def received_times(self) -> list[float]:
        return [s.received for s in self.statuses.values()] + [e.received for e in self.events]

    def add_status(self, item: PendingStatus) -> None:
        """The newest status of its station; a waiting one is replaced, but the lag keeps counting
        from when the first unwritten status of that station arrived."""
        waiting = self.statuses.get(item.station)
        if waiting is not None:
            item = PendingStatus(item.station, item.status, item.seen_at, min(waiting.received, item.received))
            self.replaced += 1
        self.statuses[item.station] = item


class Inbox:
    """Thread-safe: ``put_status``/``put_event`` from the receiving thread, ``take`` from the writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batch = Batch()

    def put_status(self, item: PendingStatus) -> None:
        with self._lock:
            self._batch.add_status(item)

    def put_event(self, item: PendingEvent) -> None:
        with self._lock:
            self._batch.events.append(item)

    def take(self) -> Batch:
        """Everything waiting, leaving the inbox empty."""
        with self._lock:
            batch, self._batch = self._batch, Batch()
        return batch

    def put_back(self, batch: Batch) -> None:
        """A batch the writer could not store goes back in front of what arrived meanwhile: newer
        statuses win, events keep their order."""
        with self._lock:
            newer = self._batch
            merged = Batch(statuses=dict(batch.statuses), events=batch.events + newer.events,
                           replaced=batch.replaced + newer.replaced)
            for item in newer.statuses.values():
                merged.add_status(item)
            self._batch = merged

    def pending(self) -> tuple[int, float | None]:
        """(messages waiting, arrival time of the oldest) without taking them."""
        with self._lock:
            return len(self._batch.statuses) + len(self._batch.events), self._batch.oldest
