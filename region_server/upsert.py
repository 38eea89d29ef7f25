"""INSERT ... ON CONFLICT for the two databases the region runs on (SQLite, PostgreSQL)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session, table: Table):
    """The dialect's ``insert`` (which has ``on_conflict_do_update``/``on_conflict_do_nothing``)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {name!r}: use SQLite or PostgreSQL")


def upsert(session: Session, table: Table, values: dict[str, Any], keys: list[str],
           update: list[str] | None = None) -> int | None:
    """Insert ``values`` or, if a row with the same ``keys`` exists, update the ``update`` columns
    (default: every other given column); returns the row's ``id`` where the table has one."""
    stmt = insert_for(session, table).values(**values)
    columns = update if update is not None else [c for c in values if c not in keys]
    if columns:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in columns})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    if "id" in table.c:
        stmt = stmt.returning(table.c.id)
        row = session.execute(stmt).first()
        return row[0] if row is not None else None
    session.execute(stmt)
    return None
