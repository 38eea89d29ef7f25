"""Writing a manifest to central storage so that running it again changes nothing.

A document carries ``written_at``; written again with the same content it would differ in that
field alone. The edge keeps the SHA-256 and time of what it last wrote under each key
(``CentralDocument``): a document whose content is unchanged is written with its old
``written_at``, so its bytes are the same and the store skips them; a changed one gets the time of
now. The caller commits the session.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from edge_server.models import CentralDocument
from edge_server.storage import CentralStorage
from examkiosk_wire import central


def document_bytes(session: Session, key: str, build: Callable[[str | None], BaseModel],
                   now: datetime | None = None) -> tuple[bytes, CentralDocument]:
    """The bytes to store under ``key`` (``build(written_at)`` dumped) and the row that records them."""
    row = session.get(CentralDocument, key)
    if row is not None:
        data = central.dump(build(row.written_at.isoformat()))
        if hashlib.sha256(data).hexdigest() == row.sha256:
            return data, row
    at = now or datetime.now(timezone.utc)
    data = central.dump(build(at.isoformat()))
    if row is None:
        row = CentralDocument(key=key, sha256="", written_at=at)
        session.add(row)
    row.sha256, row.written_at = hashlib.sha256(data).hexdigest(), at
    return data, row


def write_document(session: Session, storage: CentralStorage, key: str, build: Callable[[str | None], BaseModel],
                   **put: Any) -> str:
    """Store the document under ``key`` (unchanged content: the same bytes as before); its SHA-256."""
    data, _row = document_bytes(session, key, build)
    return storage.put_bytes(key, data, **put)
