"""Staff accounts: argon2 password hashes, roles."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from datetime import datetime, timedelta

from sqlalchemy import func

from edge_server.errors import Conflict, EdgeError
from edge_server.models import LoginAttempt, StaffRole, StaffUser

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
# Failed sign-ins for one account (or from one address) within the window lock it for the window.
MAX_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ADDRESS = 20


class LockedOut(EdgeError):
    status = 429
    code = "locked_out"

    def __init__(self, until: datetime):
        minutes = max(1, int((until - datetime.now(until.tzinfo)).total_seconds() // 60) + 1)
        super().__init__(f"登录失败次数过多，请 {minutes} 分钟后再试 · Too many failed sign-ins; "
                         f"try again in {minutes} min")
        self.until = until


def create_user(session: Session, username: str, password: str, role: StaffRole, centre_id: str | None) -> StaffUser:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise EdgeError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters", code="weak_password")
    if session.scalar(select(StaffUser).where(StaffUser.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists", code="user_exists")
    user = StaffUser(username=username, password_hash=_hasher.hash(password), role=role, centre_id=centre_id)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> StaffUser | None:
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None:
        _hasher.hash(password)  # same work whether or not the user exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def _failures_since(session: Session, since: datetime, **where: str) -> tuple[int, datetime | None]:
    column = LoginAttempt.username if "username" in where else LoginAttempt.address
    value = where.get("username", where.get("address"))
    row = session.execute(
        select(func.count(), func.max(LoginAttempt.at)).where(column == value, LoginAttempt.ok.is_(False),
                                                              LoginAttempt.at >= since)
    ).one()
    return int(row[0]), row[1]


def sign_in(session: Session, username: str, password: str, address: str, now: datetime) -> StaffUser | None:
    """Check a sign-in under the rate limit: raises LockedOut, returns None for a wrong password."""
    since = now - LOCKOUT_WINDOW
    for where, limit in (({"username": username}, MAX_FAILURES), ({"address": address}, MAX_FAILURES_PER_ADDRESS)):
        count, last = _failures_since(session, since, **where)
        if count >= limit and last is not None:
            raise LockedOut(last + LOCKOUT_WINDOW)
    user = authenticate(session, username, password)
    session.add(LoginAttempt(username=username[:80], address=address[:64], ok=user is not None, at=now))
    return user
