"""The documents the edge writes to central storage, built as ``examkiosk_wire.central`` models.

Pure: these functions take the edge's rows (already loaded) and return the documents; reading the
database and writing the objects is the sync jobs' part (``jobs/sync.py``, ``jobs/sitting_sync.py``).
Nothing here puts a candidate's name, ticket number or ID number into a document, except
:func:`lot_map`, which exists to map lots to ticket numbers for the regional admin's results.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from edge_server.models import Attempt, Candidate, Event, Sitting
from edge_server.services.attempts import COMPLETED_END_REASONS
from examkiosk_wire import central

logger = logging.getLogger(__name__)

FLAG_STARTED, FLAG_ENDED = "flag_started", "flag_ended"
ENDED_EARLY = "ended_early"


def _epoch(value: Any) -> float | None:
    """A finite number of seconds, or None (a station's payload is not trusted to hold one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def monitoring_flags(events: Iterable[Event]) -> list[central.Flag]:
    """The attempt's monitoring flags from its ``flag_started`` / ``flag_ended`` events, in server time.

    A start and an end are the same flag when their kind (``flag``) and ``started_at`` match; a flag
    reported twice is listed once; a flag never ended keeps ``ended_at`` None; an end without its
    start is still listed. An event whose payload has no kind or no start time is left out (logged).
    """
    flags: dict[tuple[str, float], dict[str, Any]] = {}
    for event in events:
        if event.kind not in (FLAG_STARTED, FLAG_ENDED):
            continue
        payload = event.payload if isinstance(event.payload, dict) else {}
        kind, started_at = payload.get("flag"), _epoch(payload.get("started_at"))
        if not isinstance(kind, str) or not kind or started_at is None:
            logger.warning("event %s (%s) names no flag kind and start time: left out of the manifest",
                           event.id, event.kind)
            continue
        flag = flags.setdefault((kind, started_at), {"kind": kind, "started_at": started_at})
        if event.kind == FLAG_STARTED:
            flag.setdefault("detail", payload.get("detail"))
        else:
            ended_at = _epoch(payload.get("ended_at"))
            if ended_at is not None:
                flag["ended_at"] = ended_at
    return [central.Flag(**f) for f in sorted(flags.values(), key=lambda f: (f["started_at"], f["kind"]))]


def ended_early(attempt: Attempt) -> bool:
    return attempt.finished_at is not None and attempt.end_reason not in COMPLETED_END_REASONS


def attempt_flags(attempt: Attempt, events: Iterable[Event]) -> list[central.Flag]:
    """Monitoring flags, then the edge's own ``ended_early`` (at the finish, with the station's reason)."""
    flags = monitoring_flags(events)
    if ended_early(attempt):
        flags.append(central.Flag(kind=ENDED_EARLY, reason=attempt.end_reason,
                                  started_at=attempt.finished_at.timestamp() if attempt.finished_at else None))
    return flags


def attempt_manifest(attempt: Attempt, *, station: str | None, station_key: str | None,
                     objects: list[central.SegmentObject], questions: list[central.QuestionObject],
                     flags: list[central.Flag], media_problems: list[dict[str, Any]],
                     messages: list[dict[str, Any]], face_login: central.FaceLogin,
                     written_at: str | None) -> central.AttemptManifest:
    """The attempt's manifest, filed under its lot (never the candidate's name)."""
    sitting = attempt.sitting
    return central.AttemptManifest(
        format=central.ATTEMPT_FORMAT, centre=sitting.centre_id, sitting=sitting.id, attempt=attempt.id,
        kind=str(sitting.kind), scoring=str(sitting.kind) == "formal", lot=attempt.lot, station=station,
        finished_at=attempt.finished_at.isoformat() if attempt.finished_at else None,
        end_reason=attempt.end_reason, written_at=written_at, started_at=sitting.starts_at.timestamp(),
        flags=flags, station_public_key=station_key, objects=objects, questions=questions,
        media_problems=media_problems, messages=messages, face_login=face_login,
    )


def lot_state(attempt: Attempt, *, complete_at_edge: bool, synced: bool) -> central.LotState:
    """How far one lot got: started (face login passed, or anything recorded), finished, ended early."""
    assert attempt.lot is not None
    return central.LotState(
        lot=attempt.lot, attempt=attempt.id,
        started=attempt.face_verified is not None or attempt.finished_at is not None or bool(attempt.segments),
        finished=attempt.finished_at is not None, ended_early=ended_early(attempt),
        end_reason=attempt.end_reason or None, complete_at_edge=complete_at_edge, synced=synced,
    )


def _question_seconds(sitting: Sitting) -> list[int]:
    """Each question's countdown, as stations are told it (the station API's ``sitting_info``)."""
    seconds = sitting.paper.question_seconds
    if seconds is None:  # a paper from before sealing (plaintext rows)
        seconds = [q.seconds for q in sitting.paper.questions]
    return [int(sitting.question_seconds or n) for n in seconds]


def sitting_manifest(sitting: Sitting, *, expected: int, absent: int, lots: list[central.LotState],
                     written_at: str | None) -> central.SittingManifest:
    """The sitting at this centre: timing, how many were expected and absent, per lot how far it got."""
    return central.SittingManifest(
        format=central.SITTING_FORMAT, centre=sitting.centre_id, sitting=sitting.id, name=sitting.name,
        kind=str(sitting.kind), timing_mode=str(sitting.timing_mode), starts_at=sitting.starts_at.timestamp(),
        ends_at=_ends_at(sitting), question_seconds=_question_seconds(sitting), expected=expected, absent=absent,
        lots=sorted(lots, key=lambda s: s.lot), written_at=written_at,
    )


def _ends_at(sitting: Sitting) -> float:
    """When answering ends for a candidate who starts on time: the start plus the whole countdown."""
    return sitting.starts_at.timestamp() + float(sitting.total_seconds or sum(_question_seconds(sitting)))


def lot_map(sitting: Sitting, pairs: Iterable[tuple[int, Candidate]]) -> central.LotMap:
    """Lot -> ticket number, for the regional admin's results only."""
    return central.LotMap(format=central.LOTS_FORMAT, centre=sitting.centre_id, sitting=sitting.id,
                          lots={str(lot): candidate.ticket_no for lot, candidate in sorted(pairs, key=lambda p: p[0])})


def written(at: datetime) -> str:
    return at.isoformat()
