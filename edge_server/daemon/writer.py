"""The bridge's writer: one batch of statuses and events into the database in one transaction.

Statuses go in with one query per few hundred stations (``services.stations.record_statuses``),
events with one read of the audit chain's tail (``services.attempts.log_events``). An event of a
station the database does not hold is dropped (and counted); one naming an attempt the edge does
not know keeps the attempt's id in its payload, as a single event always did. The dashboard tile
of each station written is built from the rows already loaded, and handed back once committed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from edge_server.config import EdgeSettings
from edge_server.daemon.inbox import Batch, PendingEvent
from edge_server.extensions import db
from edge_server.models import Attempt, Station
from edge_server.services import attempts as attempt_service
from edge_server.services import live, snapshots
from edge_server.services import stations as station_service

CHUNK = 500  # ids per IN (...) query: well below any database's limit on bound parameters


@dataclass
class Written:
    tiles: list[dict[str, Any]] = field(default_factory=list)
    events: list[PendingEvent] = field(default_factory=list)
    usable: dict[str, bool] = field(default_factory=dict)  # station id -> not revoked, of those written
    unknown: set[str] = field(default_factory=set)  # stations of the batch the database does not hold


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]


class BatchWriter:
    def __init__(self, app: Flask, settings: EdgeSettings):
        self.app = app
        self.settings = settings

    def write(self, batch: Batch) -> Written:
        """Store the batch; raises SQLAlchemyError with nothing stored (the caller keeps the batch)."""
        out = Written()
        with self.app.app_context():
            session = db.session
            try:
                stations: list[Station] = []
                ids = list(batch.statuses)
                for part in _chunks(ids):
                    stations += station_service.record_statuses(
                        session, {sid: (batch.statuses[sid].status, batch.statuses[sid].seen_at) for sid in part})
                known = {s.id for s in stations}
                missing = sorted({e.station for e in batch.events} - known)
                for part in _chunks(missing):
                    known |= set(session.scalars(select(Station.id).where(Station.id.in_(part))))
                attempts = sorted({e.attempt for e in batch.events if e.attempt})
                known_attempts: set[str] = set()
                for part in _chunks(attempts):
                    known_attempts |= set(session.scalars(select(Attempt.id).where(Attempt.id.in_(part))))
                entries = []
                for event in batch.events:
                    if event.station not in known:
                        continue
                    payload, attempt_id = dict(event.payload), event.attempt
                    if attempt_id is not None and attempt_id not in known_attempts:
                        payload.setdefault("attempt", attempt_id)  # keep what the station said
                        attempt_id = None
                    entries.append({"kind": event.kind, "station_id": event.station, "attempt_id": attempt_id,
                                    "payload": payload, "source": "mqtt", "at": event.at})
                    out.events.append(event)
                attempt_service.log_events(session, entries)
                # The tiles from the rows as written, before the commit expires them (reading them
                # after it would cost a query per station); they are sent only once it succeeded.
                now = datetime.now(timezone.utc)
                stale_after = timedelta(seconds=self.settings.dashboard.stale_seconds)
                for station in stations:
                    out.tiles.append(live.station_tile(
                        station, now, stale_after=stale_after,
                        snapshot_at=snapshots.taken_at(self.settings.snapshots_dir, station.id)))
                    out.usable[station.id] = station.revoked_at is None
                session.commit()
            except SQLAlchemyError:
                session.rollback()
                raise
            finally:
                session.remove()
        out.unknown = (set(ids) | {e.station for e in batch.events}) - known
        return out
