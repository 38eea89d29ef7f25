"""Help chat and broadcasts: a candidate's 求助, the proctor's replies, notices to a sitting.

**Help.** A station sends a help request with a quick reason (the kiosk may have no keyboard) and an
optional short text. It goes into the thread of that station and attempt (or of the station alone,
before a candidate is identified); a resolved thread opens again when the candidate asks again.
Proctors and centre admins reply and mark threads resolved; a regional admin only reads.

**Broadcast.** A proctor's notice to every station of a sitting. The stations of a sitting are
(the rule, in :func:`sitting_stations`): every station of the centre that is not revoked and

- holds an unfinished attempt of the sitting (where its candidate last identified), or
- has the seat of one of the sitting's candidates (the seat map), so a station whose candidate
  has not arrived yet has the notice when they do.

A broadcast is pushed over MQTT to the stations this rule names when it is sent (they are kept on
the message) and is fetched by any station the rule names when it asks, so a station that joins
the sitting later still gets it. The kiosk shows it until the candidate acknowledges it, which
the station reports (:func:`acknowledge`).

Every request, reply, resolution, broadcast and acknowledgement goes to the audit log.
"""
from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from edge_server.errors import EdgeError, Forbidden, NotFound
from edge_server.models import (
    Attempt,
    Candidate,
    HelpThread,
    Message,
    MessageAck,
    MessageKind,
    Sitting,
    StaffRole,
    StaffUser,
    Station,
    ThreadStatus,
    utcnow,
)
from edge_server.services import attempts as attempt_service
from examkiosk_wire.commands import MessagePush

REASONS = ("device", "network", "login", "other")
MAX_TEXT = 500
# Who may reply, resolve and broadcast; everyone signed in may read.
CHAT_ROLES = (StaffRole.PROCTOR, StaffRole.CENTRE_ADMIN)
# Messages one station fetch returns at most (the station asks again for the rest).
FETCH_LIMIT = 100
# Resolved threads stay on the dashboard, greyed, this long.
RESOLVED_SHOWN_FOR = timedelta(hours=2)


def clean_text(value: Any, *, required: bool, field: str = "text") -> str:
    """The text as stored: a string of at most MAX_TEXT characters, trimmed, no control characters."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise EdgeError(f"{field} must be a string", code="bad_field")
    text = "".join(ch for ch in value if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
    if len(text) > MAX_TEXT:
        raise EdgeError(f"{field} is longer than {MAX_TEXT} characters", code="text_too_long")
    if required and not text:
        raise EdgeError(f"{field} must not be empty", code="text_missing")
    return text


# --- help -----------------------------------------------------------------------------------------

def thread_for(session: Session, station: Station, attempt: Attempt | None) -> HelpThread:
    """The station's thread for this attempt (or for the station alone), made on first use."""
    attempt_id = attempt.id if attempt is not None else None
    query = select(HelpThread).where(HelpThread.station_id == station.id)
    query = query.where(HelpThread.attempt_id == attempt_id if attempt_id else HelpThread.attempt_id.is_(None))
    thread = session.scalars(query.order_by(HelpThread.id.desc()).limit(1)).first()
    if thread is None:
        thread = HelpThread(centre_id=station.centre_id, station_id=station.id, attempt_id=attempt_id)
        session.add(thread)
        session.flush()
    return thread


def ask_for_help(session: Session, station: Station, *, attempt_id: str | None, reason: Any, text: Any,
                 now: datetime | None = None) -> Message:
    """A candidate's 求助 from ``station``; validated here (EdgeError → 400/403/404)."""
    if not isinstance(reason, str) or reason not in REASONS:
        raise EdgeError(f"reason must be one of {', '.join(REASONS)}", code="bad_reason")
    text = clean_text(text, required=False)
    attempt = None
    if attempt_id is not None:
        if not isinstance(attempt_id, str) or not attempt_id or len(attempt_id) > 32:
            raise EdgeError("attempt_id must be an attempt id or null", code="bad_field")
        attempt = attempt_service.get_attempt(session, station, attempt_id)
        if attempt.station_id != station.id:
            raise Forbidden("this attempt is at another station", code="attempt_elsewhere")
    now = now or utcnow()
    thread = thread_for(session, station, attempt)
    reopened = thread.status == ThreadStatus.RESOLVED
    thread.status, thread.resolved_at, thread.resolved_by, thread.updated_at = ThreadStatus.OPEN, None, None, now
    message = Message(centre_id=station.centre_id, kind=MessageKind.HELP, thread_id=thread.id, station_id=station.id,
                      attempt_id=thread.attempt_id, reason=reason, text=text, created_at=now)
    session.add(message)
    session.flush()
    attempt_service.log_event(session, kind="help_requested", station_id=station.id, attempt_id=thread.attempt_id,
                              payload={"message": message.id, "thread": thread.id, "reason": reason, "text": text,
                                       "reopened": reopened}, at=now)
    return message


def _chat_staff(staff: StaffUser) -> None:
    if staff.role not in CHAT_ROLES:
        raise Forbidden("only proctors and centre admins answer help requests", code="role_forbidden")


def get_thread(session: Session, centre_id: str, thread_id: int) -> HelpThread:
    thread = session.get(HelpThread, thread_id)
    if thread is None or thread.centre_id != centre_id:
        raise NotFound("no such help thread", code="thread_unknown")
    return thread


def reply(session: Session, thread: HelpThread, *, staff: StaffUser, text: Any, now: datetime | None = None) -> Message:
    """A proctor's answer; the caller pushes it to the station after the commit (:func:`station_message`)."""
    _chat_staff(staff)
    text = clean_text(text, required=True)
    now = now or utcnow()
    thread.updated_at = now
    message = Message(centre_id=thread.centre_id, kind=MessageKind.REPLY, thread_id=thread.id,
                      station_id=thread.station_id, attempt_id=thread.attempt_id, text=text, staff_id=staff.id,
                      author=staff.username, created_at=now)
    session.add(message)
    session.flush()
    attempt_service.log_event(session, kind="help_replied", station_id=thread.station_id, attempt_id=thread.attempt_id,
                              source="staff", payload={"message": message.id, "thread": thread.id, "text": text,
                                                       "by": staff.username}, at=now)
    return message


def resolve(session: Session, thread: HelpThread, *, staff: StaffUser, now: datetime | None = None) -> HelpThread:
    """Mark the thread resolved (idempotent); a new request from the station opens it again."""
    _chat_staff(staff)
    if thread.status == ThreadStatus.RESOLVED:
        return thread
    now = now or utcnow()
    thread.status, thread.resolved_at, thread.resolved_by, thread.updated_at = ThreadStatus.RESOLVED, now, staff.id, now
    attempt_service.log_event(session, kind="help_resolved", station_id=thread.station_id,
                              attempt_id=thread.attempt_id, source="staff",
                              payload={"thread": thread.id, "by": staff.username}, at=now)
    return thread


# --- broadcasts -----------------------------------------------------------------------------------

def get_sitting(session: Session, centre_id: str, sitting_id: Any) -> Sitting:
    sitting = session.get(Sitting, sitting_id) if isinstance(sitting_id, str) and sitting_id else None
    if sitting is None or sitting.centre_id != centre_id:
        raise NotFound("no such sitting", code="sitting_unknown")
    return sitting


def sitting_stations(session: Session, sitting: Sitting) -> list[str]:
    """The stations of a sitting (the rule in the module's docstring), sorted."""
    by_attempt = select(Attempt.station_id).where(Attempt.sitting_id == sitting.id, Attempt.finished_at.is_(None),
                                                  Attempt.station_id.is_not(None))
    seats = select(Candidate.seat).where(Candidate.sitting_id == sitting.id, Candidate.seat != "")
    query = select(Station.id).where(Station.centre_id == sitting.centre_id, Station.revoked_at.is_(None),
                                     or_(Station.id.in_(by_attempt), Station.seat.in_(seats)))
    return sorted(session.scalars(query))


def station_sittings(session: Session, station: Station) -> set[str]:
    """The sittings whose broadcasts ``station`` gets (the same rule, seen from the station)."""
    sittings = set(session.scalars(select(Attempt.sitting_id).where(Attempt.station_id == station.id,
                                                                     Attempt.finished_at.is_(None))))
    if station.seat:
        sittings |= set(session.scalars(select(Candidate.sitting_id).where(
            Candidate.centre_id == station.centre_id, Candidate.seat == station.seat)))
    return sittings


def broadcast(session: Session, sitting: Sitting, *, staff: StaffUser, text: Any,
              now: datetime | None = None) -> Message:
    """A notice to every station of the sitting; the caller pushes it to ``message.recipients``."""
    _chat_staff(staff)
    text = clean_text(text, required=True)
    now = now or utcnow()
    recipients = sitting_stations(session, sitting)
    message = Message(centre_id=sitting.centre_id, kind=MessageKind.BROADCAST, sitting_id=sitting.id, text=text,
                      staff_id=staff.id, author=staff.username, recipients=recipients, created_at=now)
    session.add(message)
    session.flush()
    attempt_service.log_event(session, kind="broadcast_sent", station_id=None, source="staff", at=now,
                              payload={"message": message.id, "sitting": sitting.id, "text": text,
                                       "by": staff.username, "stations": recipients})
    return message


def acknowledge(session: Session, station: Station, message_id: int, *, attempt_id: str | None = None,
                now: datetime | None = None) -> tuple[MessageAck, bool]:
    """The candidate at ``station`` acknowledged a broadcast; ``(ack, new)``, the audit row only when new."""
    message = session.get(Message, message_id)
    if (message is None or message.kind != MessageKind.BROADCAST or message.centre_id != station.centre_id
            or not _broadcast_reaches(session, message, station)):
        raise NotFound("no such broadcast for this station", code="message_unknown")
    if attempt_id is not None:
        if not isinstance(attempt_id, str):
            raise EdgeError("attempt_id must be an attempt id or null", code="bad_field")
        attempt_service.get_attempt(session, station, attempt_id)
    ack = session.scalar(select(MessageAck).where(MessageAck.message_id == message.id,
                                                  MessageAck.station_id == station.id))
    if ack is not None:
        return ack, False
    now = now or utcnow()
    ack = MessageAck(message_id=message.id, station_id=station.id, attempt_id=attempt_id, at=now)
    session.add(ack)
    session.flush()
    attempt_service.log_event(session, kind="broadcast_acknowledged", station_id=station.id, attempt_id=attempt_id,
                              payload={"message": message.id, "sitting": message.sitting_id}, at=now)
    return ack, True


def _broadcast_reaches(session: Session, message: Message, station: Station) -> bool:
    return station.id in (message.recipients or []) or message.sitting_id in station_sittings(session, station)


# --- what a station fetches -----------------------------------------------------------------------

def messages_for_station(session: Session, station: Station, after: int,
                         limit: int = FETCH_LIMIT) -> tuple[list[Message], bool]:
    """Messages after id ``after`` for ``station``: its help threads (both ways) and the broadcasts
    of its sittings (or pushed to it); ``(messages, more)``, oldest first."""
    threads = select(HelpThread.id).where(HelpThread.station_id == station.id)
    chat = list(session.scalars(select(Message).where(Message.id > after, Message.thread_id.in_(threads))
                                .order_by(Message.id).limit(limit + 1)))
    sittings = station_sittings(session, station)
    notices = [m for m in session.scalars(
        select(Message).where(Message.id > after, Message.centre_id == station.centre_id,
                              Message.kind == MessageKind.BROADCAST).order_by(Message.id))
        if m.sitting_id in sittings or station.id in (m.recipients or [])]
    found = sorted(chat + notices, key=lambda m: m.id)
    return found[:limit], len(found) > limit


def acked_by(session: Session, station_id: str, message_ids: Iterable[int]) -> set[int]:
    ids = list(message_ids)
    if not ids:
        return set()
    return set(session.scalars(select(MessageAck.message_id).where(MessageAck.station_id == station_id,
                                                                   MessageAck.message_id.in_(ids))))


def station_message(message: Message, *, acknowledged: bool = False) -> MessagePush:
    """A message as a station sees it (pushed over MQTT and fetched): no staff names."""
    return MessagePush(id=message.id, kind=str(message.kind), thread=message.thread_id, attempt=message.attempt_id,
                       sitting=message.sitting_id, reason=message.reason, text=message.text,
                       sender="candidate" if message.kind == MessageKind.HELP else "staff",
                       at=message.created_at.timestamp(), acknowledged=acknowledged)


# --- what staff see -------------------------------------------------------------------------------

def push_about(message: Message) -> str:
    """The name a staff message's push is queued under (``work_queue.enqueue_push``)."""
    return f"message-{message.id}"


def add_push_outcomes(data: dict[str, Any], outcomes: Callable[[list[str]], dict[str, str]]) -> None:
    """Give each reply and broadcast of ``dashboard(...)`` its push's outcome (``push``: sending,
    delivered, not_delivered; None when the queue no longer knows it)."""
    staff = [m for t in data["threads"] for m in t["messages"] if m["kind"] != str(MessageKind.HELP)]
    staff += data["broadcasts"]
    known = outcomes([f"message-{m['id']}" for m in staff])
    for m in staff:
        m["push"] = known.get(f"message-{m['id']}")


def staff_message_json(message: Message) -> dict[str, Any]:
    return {"id": message.id, "kind": str(message.kind), "reason": message.reason, "text": message.text,
            "author": message.author, "at": message.created_at.isoformat()}


def dashboard(session: Session, centre_id: str, now: datetime | None = None) -> dict[str, Any]:
    """Open threads (and recently resolved ones) with their history, recent broadcasts with who
    acknowledged them, and the centre's sittings for the broadcast form."""
    now = now or utcnow()
    threads = list(session.scalars(
        select(HelpThread).where(HelpThread.centre_id == centre_id,
                                 or_(HelpThread.status == ThreadStatus.OPEN,
                                     HelpThread.resolved_at >= now - RESOLVED_SHOWN_FOR))
        .order_by(HelpThread.updated_at.desc())))
    history: dict[int, list[Message]] = {t.id: [] for t in threads}
    if threads:
        for message in session.scalars(select(Message).where(Message.thread_id.in_(list(history)))
                                       .order_by(Message.id)):
            history[message.thread_id].append(message)
    stations = {s.id: s for s in session.scalars(select(Station).where(Station.centre_id == centre_id))}
    attempts = {a.id: a for a in session.scalars(
        select(Attempt).where(Attempt.id.in_([t.attempt_id for t in threads if t.attempt_id])))} if threads else {}
    thread_rows = []
    for thread in threads:
        msgs = history[thread.id]
        station = stations.get(thread.station_id)
        attempt = attempts.get(thread.attempt_id) if thread.attempt_id else None
        thread_rows.append({
            "id": thread.id,
            "station": thread.station_id,
            "station_name": station.name if station else thread.station_id,
            "seat": station.seat if station else "",
            "attempt": thread.attempt_id,
            "lot": attempt.lot if attempt else None,
            "sitting": attempt.sitting_id if attempt else None,
            "status": str(thread.status),
            # The candidate spoke last: the thread waits for a proctor.
            "waiting": thread.status == ThreadStatus.OPEN and bool(msgs) and msgs[-1].kind == MessageKind.HELP,
            "updated_at": thread.updated_at.isoformat(),
            "messages": [staff_message_json(m) for m in msgs],
        })
    thread_rows.sort(key=lambda t: (t["status"] != "open", not t["waiting"]))
    casts = list(session.scalars(select(Message).where(Message.centre_id == centre_id,
                                                       Message.kind == MessageKind.BROADCAST)
                                 .order_by(Message.id.desc()).limit(10)))
    acks: dict[int, list[str]] = {m.id: [] for m in casts}
    if casts:
        for ack in session.scalars(select(MessageAck).where(MessageAck.message_id.in_(list(acks)))
                                   .order_by(MessageAck.id)):
            acks[ack.message_id].append(ack.station_id)
    sittings = list(session.scalars(select(Sitting).where(Sitting.centre_id == centre_id)
                                    .order_by(Sitting.starts_at)))
    names = {s.id: s.name for s in sittings}
    last_help = session.scalar(select(func.max(Message.id)).where(Message.centre_id == centre_id,
                                                                  Message.kind == MessageKind.HELP))
    return {
        "threads": thread_rows,
        "broadcasts": [dict(staff_message_json(m), sitting=m.sitting_id, sitting_name=names.get(m.sitting_id, ""),
                            stations=m.recipients or [], acknowledged=acks[m.id]) for m in casts],
        "sittings": [{"id": s.id, "name": s.name, "starts_at": s.starts_at.isoformat(),
                      "stations": len(sitting_stations(session, s))} for s in sittings],
        "last_help_id": last_help or 0,
    }


def attempt_history(session: Session, attempt: Attempt) -> list[dict[str, Any]]:
    """The attempt's help chat and the broadcasts its station acknowledged, for the manifest."""
    rows: list[dict[str, Any]] = []
    for message in session.scalars(select(Message).where(Message.attempt_id == attempt.id).order_by(Message.id)):
        rows.append({"id": message.id, "kind": str(message.kind), "at": message.created_at.isoformat(),
                     "from": "candidate" if message.kind == MessageKind.HELP else "proctor",
                     "reason": message.reason, "text": message.text})
    for ack, message in session.execute(select(MessageAck, Message).join(Message, MessageAck.message_id == Message.id)
                                        .where(MessageAck.attempt_id == attempt.id).order_by(Message.id)):
        rows.append({"id": message.id, "kind": "broadcast", "at": message.created_at.isoformat(), "from": "proctor",
                     "reason": "", "text": message.text, "acknowledged_at": ack.at.isoformat()})
    return sorted(rows, key=lambda r: r["id"])
