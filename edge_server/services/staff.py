"""Staff accounts: argon2 password hashes, roles."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.errors import Conflict, EdgeError
from edge_server.models import StaffRole, StaffUser

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10


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
