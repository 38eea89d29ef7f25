"""Staff one-time fallback codes, instead of face login (issue 4).

A proctor or centre admin issues a code for an attempt whose face login failed. The code works
once, for that attempt's candidate, at the attempt's station, for ten minutes; a newer code for
the same attempt supersedes the older one. Only an HMAC of the code (keyed with the edge's
secret key and bound to the attempt id) is stored: the plain code is shown once to the staff
member and never written anywhere. Using the code has the effect of a staff approval of the
face review. Every issue, use and refused use goes to the audit log.

Wrong codes are counted on the attempt's current code: after ``MAX_WRONG_TRIES`` the code is
locked (``too_many_tries``) and staff must issue a new one.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from edge_server.errors import Conflict, EdgeError, Forbidden
from edge_server.models import Attempt, FallbackCode, Review, ReviewStatus, StaffRole, StaffUser, Station
from edge_server.services import attempts as attempt_service

CODE_DIGITS = 8
CODE_TTL = timedelta(minutes=10)
MAX_WRONG_TRIES = 5
REVIEW_REASON = "fallback code"
ISSUER_ROLES = (StaffRole.PROCTOR, StaffRole.CENTRE_ADMIN)


class CodeRefused(Forbidden):
    """The code does not let the candidate in (``code_invalid``, ``code_expired``, ``code_used``)."""


class TooManyTries(EdgeError):
    status = 429
    code = "too_many_tries"


def normalise(code: str) -> str:
    """What the candidate typed, without the spaces or dashes of the printed form."""
    return "".join(ch for ch in code if ch not in " -\t")


def display(plain: str) -> str:
    """``12345678`` shown as ``1234 5678``."""
    half = len(plain) // 2
    return f"{plain[:half]} {plain[half:]}"


def code_digest(key: bytes, attempt_id: str, plain: str) -> str:
    return hmac.new(key, f"{attempt_id}:{plain}".encode(), hashlib.sha256).hexdigest()


def current_code(session: Session, attempt: Attempt) -> FallbackCode | None:
    """The attempt's newest code that has not been superseded (used or not, expired or not)."""
    return session.scalar(
        select(FallbackCode).where(FallbackCode.attempt_id == attempt.id, FallbackCode.superseded_at.is_(None))
        .order_by(FallbackCode.id.desc()).limit(1)
    )


def list_codes(session: Session, attempt: Attempt) -> list[FallbackCode]:
    return list(session.scalars(select(FallbackCode).where(FallbackCode.attempt_id == attempt.id)
                                .order_by(FallbackCode.id.desc())))


def code_state(code: FallbackCode, now: datetime) -> str:
    """``used``, ``superseded``, ``locked``, ``expired`` or ``active``."""
    if code.used_at is not None:
        return "used"
    if code.superseded_at is not None:
        return "superseded"
    if code.failed_tries >= MAX_WRONG_TRIES:
        return "locked"
    if now >= code.expires_at:
        return "expired"
    return "active"


def issue_problem(attempt: Attempt) -> str | None:
    """Why no code can be issued for the attempt now (None: it can)."""
    if attempt.finished_at is not None:
        return "the candidate has already finished"
    if attempt.face_verified is not None:
        return "the candidate's identity is already verified"
    if attempt.station_id is None:
        return "the attempt is at no station yet"
    return None


def issue(session: Session, attempt: Attempt, *, staff: StaffUser, key: bytes, now: datetime) -> tuple[FallbackCode, str]:
    """A new code for the attempt; returns the row and the plain code (to be shown once, then forgotten)."""
    if staff.role not in ISSUER_ROLES:
        raise Forbidden("only a proctor or a centre admin may issue a fallback code", code="role_forbidden")
    problem = issue_problem(attempt)
    if problem is not None:
        raise Conflict(problem, code="fallback_not_needed")
    assert attempt.station_id is not None
    session.execute(
        update(FallbackCode)
        .where(FallbackCode.attempt_id == attempt.id, FallbackCode.used_at.is_(None),
               FallbackCode.superseded_at.is_(None))
        .values(superseded_at=now)
        .execution_options(synchronize_session=False)
    )
    plain = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    code = FallbackCode(attempt_id=attempt.id, candidate_id=attempt.candidate_id, station_id=attempt.station_id,
                        code_hash=code_digest(key, attempt.id, plain), issued_by=staff.id, created_at=now,
                        expires_at=now + CODE_TTL)
    session.add(code)
    session.flush()
    attempt_service.log_event(
        session, kind="fallback_code_issued", station_id=attempt.station_id, attempt_id=attempt.id, source="staff",
        payload={"code": code.id, "by": staff.username, "ticket_no": attempt.candidate.ticket_no,
                 "expires_at": code.expires_at.isoformat()},
    )
    return code, plain


def redeem(session: Session, station: Station, attempt: Attempt, entered: str, *, key: bytes,
           now: datetime) -> Review:
    """Let the candidate in with a code: approves the attempt's face review like a staff member would.

    Raises CodeRefused or TooManyTries after writing the refusal (and a wrong try's count) to the
    session: the caller commits before it answers.
    """
    code = current_code(session, attempt)
    if code is None:
        _refuse(session, station, attempt, None, "code_invalid", detail="no_code")
    if code.failed_tries >= MAX_WRONG_TRIES:
        _refuse(session, station, attempt, code, "too_many_tries")
    right = hmac.compare_digest(code.code_hash, code_digest(key, attempt.id, normalise(entered)))
    if not right or code.station_id != station.id or code.candidate_id != attempt.candidate_id:
        session.execute(
            update(FallbackCode).where(FallbackCode.id == code.id)
            .values(failed_tries=FallbackCode.failed_tries + 1)
            .execution_options(synchronize_session=False)
        )
        session.refresh(code)
        _refuse(session, station, attempt, code, "code_invalid",
                detail="wrong_code" if not right else "other_station")
    if code.used_at is not None:
        _refuse(session, station, attempt, code, "code_used")
    if now >= code.expires_at:
        _refuse(session, station, attempt, code, "code_expired")
    marked = session.execute(
        update(FallbackCode).where(FallbackCode.id == code.id, FallbackCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(code)
    if marked.rowcount != 1:  # another request used it a moment ago
        _refuse(session, station, attempt, code, "code_used")
    review = attempt_service.latest_review(session, attempt)
    if review is None or review.status != ReviewStatus.PENDING:
        review = attempt_service.request_review(session, attempt, None)
    attempt_service.decide_review(session, review, approve=True, staff_id=code.issued_by, reason=REVIEW_REASON)
    attempt_service.log_event(
        session, kind="fallback_code_used", station_id=station.id, attempt_id=attempt.id,
        payload={"code": code.id, "review": review.id, "issued_by": code.issued_by},
    )
    return review


_MESSAGES = {
    "code_invalid": "this fallback code is not valid for this candidate at this station",
    "code_expired": "this fallback code has expired; ask staff for a new one",
    "code_used": "this fallback code has already been used",
    "too_many_tries": "too many wrong codes; ask staff for a new one",
}


def _refuse(session: Session, station: Station, attempt: Attempt, code: FallbackCode | None, reason: str,
            detail: str = "") -> NoReturn:
    payload: dict[str, object] = {"reason": reason, "code": code.id if code else None}
    if detail:
        payload["detail"] = detail
    if code is not None:
        payload["failed_tries"] = code.failed_tries
    attempt_service.log_event(session, kind="fallback_code_refused", station_id=station.id, attempt_id=attempt.id,
                              payload=payload)
    error = TooManyTries if reason == "too_many_tries" else CodeRefused
    raise error(_MESSAGES[reason], code=reason)
