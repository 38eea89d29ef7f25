"""Help chat (求助) and broadcasts on the station: held beside the candidate flow, not in it.

Messages never change what the candidate does next, so they live here and not in ``station.flow``.
:class:`MessageBox` keeps

- the candidate's help requests on their way to the edge (``POST /api/v1/help``), retried until
  the edge takes them (in memory: a request lost to a crash is asked again by the candidate);
- every message the edge sent to this station: replies and broadcasts come pushed over MQTT (a
  ``message`` command) and are fetched as well (``GET /api/v1/messages?after=<id>``) every
  ``poll_seconds``, when MQTT reconnects and right after the station sent something, so a lost
  push only delays a reply;
- the broadcasts the candidate acknowledged (``POST /api/v1/messages/<id>/ack``, retried too).

The kiosk shows :meth:`MessageBox.view`: the thread of the current attempt (or of the station
alone before a candidate is identified), how many replies are unread, and the broadcasts still
waiting for the candidate's acknowledgement.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import ValidationError

from examkiosk_wire.commands import MessagePush
from station.link import EdgeRejected, EdgeUnavailable

if TYPE_CHECKING:
    from station.link import EdgeClient

logger = logging.getLogger(__name__)

REASONS = ("device", "network", "login", "other")
MAX_TEXT = 500
POLL_SECONDS = 5.0
# While MQTT is up, replies and broadcasts are pushed; the fetch is then only the net under a lost
# push (a room of 1,000 stations fetching every 5 s would be 200 requests a second for nothing).
POLL_UP_SECONDS = 30.0
# The station's own thread (help asked before identification) is shown for this long, and only since
# the last candidate left; knowing no sitting yet, the kiosk shows the broadcasts of this last hour.
STATION_WINDOW = 3600.0
KEEP = 500  # messages kept in memory, newest


class MessageError(ValueError):
    """The kiosk sent something the station does not pass on (bad reason, text too long)."""


def clean_text(value: Any) -> str:
    """At most MAX_TEXT characters, trimmed, without control characters (the edge checks again)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MessageError("text must be a string")
    text = "".join(ch for ch in value if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
    if len(text) > MAX_TEXT:
        raise MessageError(f"text is longer than {MAX_TEXT} characters")
    return text


@dataclass
class Outgoing:
    """A help request the edge has not taken yet."""

    local_id: int
    reason: str
    text: str
    attempt: str | None
    at: float
    tries: int = 0


class MessageBox:
    def __init__(self, *, client: Callable[[], "EdgeClient | None"], mqtt_up: Callable[[], bool] = lambda: False,
                 now: Callable[[], float] = time.time, poll_seconds: float = POLL_SECONDS,
                 up_poll_seconds: float | None = None):
        self._client = client
        self._mqtt_up = mqtt_up
        self._now = now
        self.poll_seconds = poll_seconds
        self.up_poll_seconds = max(poll_seconds, POLL_UP_SECONDS) if up_poll_seconds is None else up_poll_seconds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._messages: dict[int, dict[str, Any]] = {}
        self._outgoing: list[Outgoing] = []
        self._local_ids = itertools.count(1)
        self._after = 0                         # fetch cursor: only what a fetch returned moves it
        self._acks: dict[int, str | None] = {}  # broadcast id -> attempt, not yet taken by the edge
        self._acked: set[int] = set()
        self._seen_reply = 0                    # highest reply id the candidate has seen
        self._viewed_attempt: str | None = None  # the attempt of the last view
        self._session_since = 0.0               # when the last candidate left (the station's thread restarts)
        self.refused: list[str] = []            # why the edge refused help requests (codes), for the log
        self.last_poll_ok: float | None = None

    # --- from the kiosk -----------------------------------------------------------------------
    def ask(self, reason: Any, text: Any, attempt: str | None) -> Outgoing:
        """Queue a help request; the loop sends it at once."""
        if not isinstance(reason, str) or reason not in REASONS:
            raise MessageError(f"reason must be one of {', '.join(REASONS)}")
        item = Outgoing(local_id=next(self._local_ids), reason=reason, text=clean_text(text), attempt=attempt,
                        at=self._now())
        with self._lock:
            self._outgoing.append(item)
        logger.info("help requested (%s) for attempt %s", reason, attempt)
        self._wake.set()
        return item

    def acknowledge(self, message_id: int, attempt: str | None) -> bool:
        """The candidate acknowledged broadcast ``message_id``; False if there is no such broadcast."""
        with self._lock:
            message = self._messages.get(message_id)
            if message is None or message["kind"] != "broadcast":
                return False
            first = not message["acknowledged"]
            message["acknowledged"] = True
            self._acked.add(message_id)
            if first:
                self._acks.setdefault(message_id, attempt)
        self._wake.set()
        return True

    def mark_seen(self, upto: int) -> None:
        """The candidate looked at the help panel: replies up to ``upto`` are read."""
        with self._lock:
            self._seen_reply = max(self._seen_reply, int(upto))

    # --- from the edge ------------------------------------------------------------------------
    def pushed(self, payload: Any) -> bool:
        """A message pushed over MQTT (a ``message`` command's payload); False if unusable or known."""
        return bool(self.merge([payload]))

    def merge(self, messages: list[Any]) -> list[dict[str, Any]]:
        """Keep the messages not seen before; returns them."""
        new = []
        with self._lock:
            for raw in messages:
                message = _valid(raw)
                if message is None:
                    logger.warning("ignoring a malformed message from the edge: %r", raw)
                    continue
                if message["id"] in self._acked:
                    message["acknowledged"] = True
                old = self._messages.get(message["id"])
                if old is not None:
                    old["acknowledged"] = old["acknowledged"] or message["acknowledged"]
                    continue
                self._messages[message["id"]] = message
                new.append(message)
            if len(self._messages) > KEEP:
                for stale in sorted(self._messages)[: len(self._messages) - KEEP]:
                    del self._messages[stale]
        for message in new:
            if message["kind"] != "help":
                logger.info("%s %d from the edge", message["kind"], message["id"])
        return new

    # --- what the kiosk shows -----------------------------------------------------------------
    def view(self, attempt: str | None, sitting: str | None) -> dict[str, Any]:
        now = self._now()
        with self._lock:
            if self._viewed_attempt is not None and attempt is None:
                self._session_since = now  # the candidate left: the next one does not see their station chat
            self._viewed_attempt = attempt
            since = self._session_since
            messages = sorted(self._messages.values(), key=lambda m: m["id"])
            outgoing = list(self._outgoing)
            seen = self._seen_reply

        def ours(m: dict[str, Any]) -> bool:
            """The attempt's thread, and what was said at the station before this candidate identified."""
            if attempt is not None and m["attempt"] == attempt:
                return True
            return m["attempt"] is None and m["at"] >= since and now - m["at"] < STATION_WINDOW

        thread = [dict(m, pending=False) for m in messages if m["kind"] in ("help", "reply") and ours(m)]
        thread += [{"id": None, "local_id": o.local_id, "kind": "help", "reason": o.reason, "text": o.text,
                    "from": "candidate", "at": o.at, "pending": True, "attempt": o.attempt}
                   for o in outgoing if o.attempt == attempt or o.attempt is None]
        replies = [m for m in thread if m["kind"] == "reply"]
        notices = [m for m in messages if m["kind"] == "broadcast" and not m["acknowledged"]
                   and (m["sitting"] == sitting if sitting else now - m["at"] < STATION_WINDOW)]
        return {
            "thread": thread,
            "unread": sum(1 for m in replies if m["id"] > seen),
            "last_reply": replies[-1]["id"] if replies else 0,
            "broadcasts": notices,
            "sending": any(o.attempt in (attempt, None) for o in outgoing),
        }

    # --- the loop -----------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Send and fetch every ``poll_seconds`` (``up_poll_seconds`` while MQTT is up); at once when
        woken (a help request to send, a push) or when MQTT reconnects."""
        was_up = self._mqtt_up()
        next_poll = 0.0
        while not stop.is_set():
            up = self._mqtt_up()
            if up and not was_up:
                next_poll = 0.0  # reconnected: a push may have been lost meanwhile
            was_up = up
            if self._wake.is_set() or time.monotonic() >= next_poll:
                self._wake.clear()
                try:
                    self.poll_once()
                except Exception:  # never let one bad answer end the loop
                    logger.exception("message round failed")
                next_poll = time.monotonic() + (self.up_poll_seconds if up else self.poll_seconds)
            self._wake.wait(0.5)

    def poll_once(self) -> bool:
        """Send the help requests and acknowledgements waiting, then fetch what is new; False if
        the edge could not be reached (everything stays queued for the next round)."""
        client = self._client()
        if client is None:
            return False
        try:
            self._send_outgoing(client)
            self._send_acks(client)
            for _ in range(50):  # at most 50 pages a round
                page = client.messages(self._after)
                self.merge(list(page.messages))
                if page.last_id is not None and page.last_id > self._after:
                    self._after = page.last_id
                if not page.more:
                    break
        except EdgeUnavailable as exc:
            logger.debug("messages wait for the edge: %s", exc)
            return False
        except EdgeRejected as exc:
            logger.warning("the edge refused the message fetch: %s", exc)
            return False
        self.last_poll_ok = self._now()
        return True

    def _send_outgoing(self, client: "EdgeClient") -> None:
        with self._lock:
            queued = list(self._outgoing)
        for item in queued:
            item.tries += 1
            try:
                try:
                    reply = client.ask_for_help(item.reason, item.text, attempt_id=item.attempt)
                except EdgeRejected as exc:
                    if exc.code not in ("attempt_elsewhere", "attempt_unknown") or item.attempt is None:
                        raise
                    # The candidate moved on or to another station: the request still reaches staff.
                    logger.info("help for attempt %s goes to the station's own thread (%s)", item.attempt, exc.code)
                    reply = client.ask_for_help(item.reason, item.text)
            except EdgeRejected as exc:
                # The edge will never take it (e.g. the attempt moved to another station): drop it.
                logger.warning("the edge refused a help request: %s", exc)
                self.refused.append(exc.code)
                reply = None
            with self._lock:
                self._outgoing.remove(item)
            if reply is not None:
                self.merge([reply.message])

    def _send_acks(self, client: "EdgeClient") -> None:
        with self._lock:
            acks = dict(self._acks)
        for message_id, attempt in acks.items():
            try:
                client.acknowledge(message_id, attempt)
            except EdgeRejected as exc:
                logger.warning("the edge refused the acknowledgement of broadcast %d: %s", message_id, exc)
            with self._lock:
                self._acks.pop(message_id, None)


def _valid(raw: Any) -> dict[str, Any] | None:
    """A message from the edge (``examkiosk_wire.commands.MessagePush``, pushed or fetched) as the kiosk keeps it,
    or None if it is not one."""
    if not isinstance(raw, MessagePush):
        try:
            raw = MessagePush.model_validate(raw)
        except ValidationError:
            return None
    return {"id": raw.id, "kind": raw.kind, "text": raw.text[:MAX_TEXT], "reason": raw.reason, "attempt": raw.attempt,
            "sitting": raw.sitting, "from": "candidate" if raw.kind == "help" else "staff", "at": raw.at,
            "acknowledged": raw.acknowledged}
