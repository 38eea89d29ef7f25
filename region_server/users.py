"""Regional user accounts: argon2 password hashes, roles, deactivation."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from region_server.errors import RegionError
from region_server.models import Role, User

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10


def create_user(session: Session, username: str, password: str, role: Role | str) -> User:
    """A new active user; refused if the name is taken, the role unknown or the password short."""
    username = username.strip()
    if not username or len(username) > 80:
        raise RegionError("用户名须为 1-80 个字符 · The username must have 1-80 characters", code="bad_username")
    try:
        role = Role(role)
    except ValueError:
        raise RegionError(f"未知角色 · Unknown role {role!r}", code="bad_role") from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RegionError(f"密码至少 {MIN_PASSWORD_LENGTH} 个字符 · The password must have at least "
                          f"{MIN_PASSWORD_LENGTH} characters", code="weak_password")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise RegionError(f"用户已存在 · User {username!r} already exists", code="user_exists", status=409)
    user = User(username=username, password_hash=_hasher.hash(password), role=role, active=True)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, or None (the same work either way)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        _hasher.hash(password)
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def deactivate(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise RegionError(f"没有这个用户 · No user {username!r}", code="user_unknown", status=404)
    user.active = False
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))
