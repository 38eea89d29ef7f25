"""The seat map: which candidate of a sitting sits at which station, and moves between them.

A candidate assigned to a station is identified there only (``attempts.open_attempt`` refuses
another station with ``wrong_station`` and names the seat). Before the start, or while the
candidate has no attempt, a move is free. After the start with an attempt in progress, a move is
an interruption under the sitting's policy: it is appended to the audit log as an
``interruption`` event of the attempt (``cause: moved``), the same kind the stations report after
a restart, and it is refused once the attempt has had ``max_interruptions`` of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge_server.errors import Conflict, NotFound
from edge_server.models import Attempt, Candidate, Event, Sitting, Station
from edge_server.services import audit

INTERRUPTION = "interruption"


@dataclass(frozen=True)
class Seat:
    station: Station
    candidate: Candidate | None


@dataclass(frozen=True)
class Move:
    candidate: Candidate
    before: str | None
    after: str
    interruption: int | None  # the attempt's interruption count after a mid-exam move
    attempt: str | None = None  # the candidate's attempt, when there is one (its old station is told)
    event_id: int | None = None  # the audit row of the move

    @property
    def push_about(self) -> str:
        """The name the push telling the old station is queued under (``work_queue.enqueue_push``)."""
        return move_push_about(self.event_id)


@dataclass(frozen=True)
class MoveNotice:
    """The latest move of a candidate with an attempt: which station was told to stop, and the push's name."""

    ticket_no: str
    before: str
    about: str
    delivered: bool | None  # from the push job's audit row; None while it has not run


def move_push_about(event_id: int | None) -> str:
    return f"move-{event_id}"


def label(station: Station) -> str:
    return station.seat or station.name or station.id


def seat_map(session: Session, sitting: Sitting) -> list[Seat]:
    """Every station of the centre with the sitting's candidate at it (revoked ones only if occupied)."""
    stations = session.scalars(select(Station).where(Station.centre_id == sitting.centre_id)
                               .order_by(Station.seat, Station.id)).all()
    taken = {c.station_id: c for c in candidates(session, sitting) if c.station_id}
    return [Seat(s, taken.get(s.id)) for s in stations if s.revoked_at is None or s.id in taken]


def candidates(session: Session, sitting: Sitting) -> list[Candidate]:
    return list(session.scalars(select(Candidate).where(Candidate.sitting_id == sitting.id)
                                .order_by(Candidate.ticket_no)))


def interruptions(session: Session, attempt: Attempt) -> int:
    """Interruptions of the attempt so far: station restarts the stations reported, and moves."""
    return session.scalar(select(func.count()).select_from(Event)
                          .where(Event.attempt_id == attempt.id, Event.kind == INTERRUPTION)) or 0


def assign(session: Session, sitting: Sitting, ticket_no: str, station_id: str, *, by: str, now: datetime) -> Move:
    """Seat the candidate at the station (a first assignment or a move), audited."""
    candidate = session.scalar(select(Candidate).where(Candidate.sitting_id == sitting.id,
                                                       Candidate.ticket_no == ticket_no))
    if candidate is None:
        raise NotFound("该场次没有这个考生 · No such candidate in this sitting", code="candidate_unknown")
    station = session.get(Station, station_id)
    if station is None or station.centre_id != sitting.centre_id:
        raise NotFound("没有这个考位 · No such station", code="station_unknown")
    if station.revoked_at is not None:
        raise Conflict(f"考位 {label(station)} 已停用 · Station {station.id} is revoked", code="station_revoked")
    before = candidate.station_id
    if before == station.id:
        raise Conflict(f"考生已在考位 {label(station)} · The candidate already sits there", code="same_station")
    occupant = session.scalar(select(Candidate).where(Candidate.sitting_id == sitting.id,
                                                      Candidate.station_id == station.id))
    if occupant is not None:
        raise Conflict(f"考位 {label(station)} 已安排考生 {occupant.ticket_no}，请选择空闲考位 · "
                       f"Station {station.id} is taken by {occupant.ticket_no}: choose a spare one",
                       code="station_taken")
    attempt = session.scalar(select(Attempt).where(Attempt.sitting_id == sitting.id,
                                                   Attempt.candidate_id == candidate.id))
    if attempt is not None and attempt.finished_at is not None:
        raise Conflict("考生已完成本场考试，不能换座 · The candidate has finished: no move",
                       code="attempt_finished")
    count = None
    if attempt is not None and now >= sitting.starts_at and before is not None:
        used = interruptions(session, attempt)
        if used >= sitting.max_interruptions:
            raise Conflict(f"中断次数已用完（{used}/{sitting.max_interruptions}），不能在考试中换座 · "
                           f"The interruption policy is exhausted ({used} of {sitting.max_interruptions} used): "
                           "no move during the exam", code="interruptions_exhausted")
        count = used + 1
        audit.append(session, kind=INTERRUPTION, station_id=station.id, attempt_id=attempt.id, source="staff",
                     payload={"cause": "moved", "from": before, "to": station.id, "count": count, "by": by},
                     at=now)
    candidate.station_id = station.id
    candidate.seat = label(station)
    session.flush()
    event = audit.append(session, kind="seat_moved" if before else "seat_assigned", station_id=station.id,
                         attempt_id=attempt.id if attempt is not None else None, source="staff",
                         payload={"sitting": sitting.id, "ticket_no": candidate.ticket_no, "from": before,
                                  "to": station.id, "during_exam": count is not None, "by": by})
    return Move(candidate, before, station.id, count, attempt.id if attempt is not None else None, event.id)


def move_notices(session: Session, sitting: Sitting) -> dict[str, MoveNotice]:
    """Per ticket number, the latest move of the sitting that had an old station to tell, with what the
    push job recorded of it (``command_pushed``)."""
    moves = session.scalars(select(Event).join(Attempt, Event.attempt_id == Attempt.id)
                            .where(Attempt.sitting_id == sitting.id, Event.kind == "seat_moved")
                            .order_by(Event.id)).all()
    latest = {m.payload.get("ticket_no"): m for m in moves if m.payload.get("from")}
    abouts = {move_push_about(m.id): ticket for ticket, m in latest.items()}
    delivered: dict[str, bool] = {}
    if abouts:
        pushed = session.scalars(select(Event).where(Event.kind == "command_pushed",
                                                     Event.attempt_id.in_({m.attempt_id for m in latest.values()})))
        for row in pushed:
            about = row.payload.get("about")
            if about in abouts:
                delivered[about] = bool(row.payload.get("delivered"))
    return {ticket: MoveNotice(ticket, str(m.payload["from"]), move_push_about(m.id),
                               delivered.get(move_push_about(m.id)))
            for ticket, m in latest.items()}
