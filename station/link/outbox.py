"""The station's event outbox: every event goes through the journal first, so none is lost to a
crash or a network cut, then over MQTT (QoS 1, acknowledged) when connected, else the API."""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

from station.link.client import EdgeClient
from station.link.errors import EdgeRejected, EdgeUnavailable
from station.link.mqtt import StatusPublisher

if TYPE_CHECKING:
    from station.storage.journal import Journal

logger = logging.getLogger(__name__)


class EventOutbox:
    def __init__(self, journal: "Journal", *, now: Callable[[], float], stop: threading.Event,
                 publisher: Callable[[], StatusPublisher | None], client: Callable[[], EdgeClient | None]):
        self._journal = journal
        self._now = now
        self._stop = stop
        self._publisher = publisher
        self._client = client
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def report(self, kind: str, payload: dict[str, Any], attempt: str | None) -> None:
        """Queue the event ``kind`` (its payload gets the server time ``at``) and send it soon."""
        self._journal.enqueue_event(kind, dict(payload, at=self._now()), attempt)
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=6)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(2.0)
            self._wake.clear()
            if not self._stop.is_set():
                self.deliver()

    def deliver(self) -> None:
        """Send what the journal holds, oldest first; stop at the first event the edge cannot take yet."""
        for event_id, kind, payload, attempt in self._journal.pending_events():
            publisher, client = self._publisher(), self._client()
            try:
                if publisher is not None and publisher.connected:
                    info = publisher.publish_event(kind, payload, attempt=attempt)
                    info.wait_for_publish(timeout=5)
                    if not info.is_published():
                        break
                elif client is not None:
                    client.event(kind, payload, attempt=attempt)
                else:
                    break
            except (EdgeUnavailable, RuntimeError, ValueError) as exc:
                logger.info("event %s waits for the edge: %s", kind, exc)
                break
            except EdgeRejected as exc:
                logger.warning("edge refused event %s: %s", kind, exc)
            self._journal.event_delivered(event_id)
