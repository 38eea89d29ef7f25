"""Staff accounts: argon2 password hashes, roles."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge_server.errors import Conflict, EdgeError
from edge_server.models import LoginAttempt, StaffRole, StaffUser
from edge_server.services import audit, login_limit
from edge_server.services.login_limit import LoginLimiter, Rule

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
# Failed sign-ins for one account (or from one address) within the window lock it for the rest of the
# window (services/login_limit.py: slots in Redis, taken before the password is checked).
MAX_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ADDRESS = 20


class LockedOut(EdgeError):
    status = 429
    code = "locked_out"

    def __init__(self, until: datetime, *, first: bool = True, scope: str = "user"):
        minutes = max(1, int((until - datetime.now(until.tzinfo)).total_seconds() // 60) + 1)
        super().__init__(f"登录失败次数过多，请 {minutes} 分钟后再试 · Too many failed sign-ins; "
                         f"try again in {minutes} min")
        self.until = until
        # The first refusal of this lockout (the one that is audited); ``scope``: "user" or "address".
        self.first = first
        self.scope = scope


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


def login_limiter(redis_url: str) -> LoginLimiter:
    """The running app's sign-in limiter on ``redis_url``, for ``sign_in`` (one per app: its Redis pool,
    its fallback)."""
    return login_limit.of(redis_url)


def _check_database_count(session: Session, rules: tuple[Rule, ...], now: datetime,
                          limiter: LoginLimiter | None) -> None:
    """The failures stored in the window, per rule (the rule before Redis; now its fallback)."""
    since = now - LOCKOUT_WINDOW
    for rule in rules:
        count, last = _failures_since(session, since, **{"username" if rule.scope == "user" else "address": rule.key})
        if count >= rule.limit and last is not None:
            until = last if last.tzinfo else last.replace(tzinfo=timezone.utc)
            until += LOCKOUT_WINDOW
            first = limiter.first_refusal(rule, until) if limiter is not None else True
            raise LockedOut(until, first=first, scope=rule.scope)


def sign_in(session: Session, username: str, password: str, address: str, now: datetime,
            limiter: LoginLimiter | None = None) -> StaffUser | None:
    """Check a sign-in under the rate limit: raises LockedOut, returns None for a wrong password.

    With ``limiter`` (``login_limiter()``), the try takes a slot of the account's and of the
    address's limit in Redis before the password is hashed, atomically: however many tries arrive at
    once, at most MAX_FAILURES of them are checked per account and window, and a refused one costs
    neither a hash nor a database row. A right password hands its slots back, so only failures count.
    Every checked try is stored as a ``LoginAttempt`` (the audit of checked tries). Without Redis
    (no limiter, or Redis unreachable) the failures stored in the database count as well.
    """
    username, address = username[:80], address[:64]
    rules = (Rule("user", username, MAX_FAILURES), Rule("address", address, MAX_FAILURES_PER_ADDRESS))
    slots = None
    if limiter is not None:
        try:
            slots = limiter.reserve(rules, LOCKOUT_WINDOW)
        except login_limit.Refused as exc:
            raise LockedOut(exc.until, first=exc.first, scope=exc.rule.scope) from exc
    if slots is None or not slots.shared:
        try:
            _check_database_count(session, rules, now, limiter)
        except LockedOut:
            if slots is not None:
                limiter.refund(slots)
            raise
    user = authenticate(session, username, password)
    if user is not None and slots is not None:
        limiter.refund(slots)
    session.add(LoginAttempt(username=username, address=address, ok=user is not None, at=now))
    return user


def sign_in_audited(session: Session, username: str, password: str, address: str, now: datetime,
                    limiter: LoginLimiter | None = None) -> StaffUser | None:
    """:func:`sign_in` with its audit row: ``staff_login``, ``staff_login_failed``, or for the first
    refusal of each lockout ``staff_login_locked`` (then LockedOut is raised; later refusals write nothing)."""
    try:
        user = sign_in(session, username, password, address, now, limiter=limiter)
    except LockedOut as exc:
        if exc.first:
            audit.append(session, kind="staff_login_locked", station_id=None, attempt_id=None, source="staff",
                         payload={"user": username, "address": address, "scope": exc.scope,
                                  "until": exc.until.isoformat()})
        raise
    audit.append(session, kind="staff_login" if user is not None else "staff_login_failed", station_id=None,
                 attempt_id=None, source="staff",
                 payload={"user": user.username if user is not None else username, "address": address})
    return user
