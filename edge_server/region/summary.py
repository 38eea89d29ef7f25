"""What the regional view shows: per attempt its upload and sync status, per centre the totals.

``attempt_rows`` reads; ``centre_totals`` and ``csv_text`` are plain functions over the rows.
Rows name the candidate by ticket number only.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.models import Attempt, Centre, Sitting, Station
from edge_server.services import attempts as attempt_service
from edge_server.services import audit

COLUMNS = ["centre", "sitting", "lot", "ticket_no", "station", "finished", "segments_expected",
           "segments_verified", "segments_missing", "complete_on_edge", "chain_ok", "sync", "synced_at",
           "sync_error"]


def attempt_rows(session: Session, centre: str | None = None) -> list[dict[str, Any]]:
    query = (select(Attempt).join(Sitting, Attempt.sitting_id == Sitting.id)
             .order_by(Sitting.centre_id, Attempt.sitting_id, Attempt.lot, Attempt.created_at))
    if centre:
        query = query.where(Sitting.centre_id == centre)
    rows = []
    for a in session.scalars(query):
        status = attempt_service.upload_status(session, a)
        rows.append({
            "centre": a.sitting.centre_id, "sitting": a.sitting_id, "lot": a.lot, "ticket_no": a.candidate.ticket_no,
            "station": a.station_id or "", "finished": status["finished"],
            "segments_expected": status["expected"], "segments_verified": status["verified"],
            "segments_missing": len(status["missing"]), "complete_on_edge": status["complete"],
            "chain_ok": status["chain_ok"], "sync": status["sync"],
            "synced_at": a.synced_at.isoformat() if a.synced_at else "", "sync_error": a.sync_error or "",
        })
    return rows


def centre_totals(rows: Iterable[dict[str, Any]], centres: dict[str, str],
                  stations: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """Per centre: stations (online, all) and attempts by how far they got. ``centres``: id -> name."""
    totals = {cid: {"centre": cid, "name": name, "stations": stations.get(cid, (0, 0))[1],
                    "online": stations.get(cid, (0, 0))[0], "attempts": 0, "finished": 0, "complete": 0,
                    "synced": 0, "failed": 0, "incomplete": 0}
              for cid, name in centres.items()}
    for row in rows:
        t = totals.setdefault(row["centre"], {"centre": row["centre"], "name": row["centre"], "stations": 0,
                                              "online": 0, "attempts": 0, "finished": 0, "complete": 0,
                                              "synced": 0, "failed": 0, "incomplete": 0})
        t["attempts"] += 1
        t["finished"] += row["finished"]
        t["complete"] += row["complete_on_edge"]
        t["synced"] += row["sync"] == "synced"
        t["failed"] += row["sync"] == "failed"
        t["incomplete"] += row["finished"] and not row["complete_on_edge"]
    return sorted(totals.values(), key=lambda t: t["centre"])


def station_counts(session: Session, now: datetime, stale_after: timedelta) -> dict[str, tuple[int, int]]:
    """Per centre: (online, all) stations that are not revoked."""
    counts: dict[str, list[int]] = {}
    for s in session.scalars(select(Station).where(Station.revoked_at.is_(None))):
        c = counts.setdefault(s.centre_id, [0, 0])
        c[1] += 1
        c[0] += bool(s.online and s.last_seen_at is not None and now - s.last_seen_at < stale_after)
    return {k: (v[0], v[1]) for k, v in counts.items()}


def centre_names(session: Session) -> dict[str, str]:
    return {c.id: c.name for c in session.scalars(select(Centre).order_by(Centre.id))}


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in COLUMNS])
    return out.getvalue()


def export(session: Session, centre: str | None, *, by: str) -> str:
    """The CSV of the attempts (of one centre, or all), the export audited with its row count."""
    rows = attempt_rows(session, centre)
    audit.append(session, kind="region_export", station_id=None, attempt_id=None, source="staff",
                 payload={"by": by, "centre": centre, "rows": len(rows)})
    return csv_text(rows)
