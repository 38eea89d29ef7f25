"""Which sittings and lots a user may mark: a marker only the sittings assigned to them, the
regional admin every sitting. A lot is the latest scoring attempt filed under that lot number."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from region_server.marking.models import Assignment
from region_server.models import Attempt, Role, Sitting, User


def assigned_sitting_ids(session: Session, user: User) -> set[int]:
    return set(session.scalars(select(Assignment.sitting_id).where(Assignment.user_id == user.id)))


def may_mark(session: Session, user: User, sitting: Sitting) -> bool:
    """Whether ``user`` may see and score the lots of ``sitting``."""
    if Role(user.role) == Role.REGIONAL_ADMIN:
        return True
    return Role(user.role) == Role.MARKER and sitting.id in assigned_sitting_ids(session, user)


def sittings_for(session: Session, user: User) -> list[Sitting]:
    """The sittings ``user`` marks (all for the regional admin), by centre and sitting."""
    query = select(Sitting).order_by(Sitting.centre_id, Sitting.sitting)
    if Role(user.role) != Role.REGIONAL_ADMIN:
        query = query.join(Assignment, Assignment.sitting_id == Sitting.id).where(Assignment.user_id == user.id)
    return list(session.scalars(query))


def lots_of(session: Session, sitting_id: int) -> dict[int, Attempt]:
    """Lot number -> the attempt to mark (the newest scoring attempt with that lot)."""
    lots: dict[int, Attempt] = {}
    query = select(Attempt).where(Attempt.sitting_id == sitting_id, Attempt.lot.is_not(None),
                                  Attempt.scoring.is_(True)).order_by(Attempt.lot, Attempt.id)
    for attempt in session.scalars(query):
        lots[attempt.lot] = attempt  # a later row of the same lot wins
    return dict(sorted(lots.items()))


def lot_attempt(session: Session, sitting_id: int, lot: int) -> Attempt | None:
    return lots_of(session, sitting_id).get(lot)


def markers(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.role == Role.MARKER).order_by(User.username)))
