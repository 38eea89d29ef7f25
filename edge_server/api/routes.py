"""Station API: time, schedule, candidates, attempts, face login, review, lots, events (paper: papers.py)."""
from __future__ import annotations

from flask import g
from sqlalchemy import select

from edge_server.api.blueprint import bp
from edge_server.api.helpers import epoch, now, server_time
from edge_server.auth import settings, station
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.models import Attempt, Sitting, Station
from edge_server.services import attempt_actions as actions
from edge_server.services import attempts as attempt_service
from edge_server.services import centres as centre_service
from edge_server.services import fallback as fallback_service
from edge_server.services import frames, moves, seats
from edge_server.services.masking import mask_id_number
from edge_server.services.stations import register_key
from examkiosk_wire import api


@bp.get("/time")
@station
def time_now():
    return api.ServerTime(server_time=server_time()).to_json()


def sitting_info(sitting: Sitting) -> api.SittingInfo:
    seconds = sitting.paper.question_seconds
    if seconds is None:  # a paper from before sealing (plaintext rows)
        seconds = [q.seconds for q in sitting.paper.questions]
    # The sitting's own per-question duration, when set, overrides the paper's.
    seconds = [sitting.question_seconds or n for n in seconds]
    return api.SittingInfo(
        id=sitting.id, name=sitting.name, kind=str(sitting.kind), timing_mode=str(sitting.timing_mode),
        waiting_opens_at=epoch(sitting.waiting_opens_at), starts_at=epoch(sitting.starts_at),
        entry_closes_at=epoch(sitting.entry_closes_at), lot_deadline_at=epoch(sitting.lot_deadline_at),
        question_seconds=list(seconds), total_seconds=sitting.total_seconds or sum(seconds),
        early_finish=sitting.early_finish_allowed, max_interruptions=sitting.max_interruptions,
        max_gap_seconds=float(sitting.max_gap_seconds),
    )


@bp.get("/schedule")
@station
def schedule():
    sittings = db.session.scalars(
        select(Sitting).where(Sitting.centre_id == g.station.centre_id).order_by(Sitting.starts_at)
    ).all()
    return api.ScheduleReply(server_time=server_time(), centre=g.station.centre_id, station=g.station.id,
                             sittings=[sitting_info(s) for s in sittings]).to_json()


@bp.get("/candidates/<ticket_no>")
@station
def candidate(ticket_no: str):
    cand = attempt_service.find_candidate(db.session, g.station.centre_id, ticket_no)
    return candidate_info(cand).to_json()


def candidate_info(cand) -> api.CandidateInfo:
    return api.CandidateInfo(ticket_no=cand.ticket_no, name=cand.name, id_number_masked=mask_id_number(cand.id_number),
                             seat=cand.seat, sitting=cand.sitting_id,
                             descriptor=[float(v) for v in cand.descriptor] if cand.descriptor else None)


def attempt_info(attempt: Attempt) -> api.AttemptInfo:
    review = attempt_service.latest_review(db.session, attempt)
    seat = attempt.candidate.station_id
    moved_to = None
    if seat is not None and seat != g.station.id:  # the seat map moved the candidate away from this station
        target = db.session.get(Station, seat)
        moved_to = seats.label(target) if target is not None else seat
    centre = centre_service.get_centre(db.session, attempt.sitting.centre_id)
    return api.AttemptInfo(
        id=attempt.id, sitting=sitting_info(attempt.sitting), candidate=candidate_info(attempt.candidate),
        lot=attempt.lot, lot_auto=bool(attempt.lot_auto), face_verified=attempt.face_verified,
        face_tries=attempt_service.face_tries(db.session, attempt),
        review=None if review is None else review_info(review),
        finished=attempt.finished_at is not None,
        centre=api.CentreSettings(**centre_service.station_settings(centre)),
        resume=api.ResumeInfo(**moves.resume_info(db.session, attempt)),
        moved_to=moved_to,
    )


def review_info(review) -> api.ReviewInfo:
    return api.ReviewInfo(id=review.id, status=str(review.status), reason=review.reason)


@bp.post("/attempts")
@station(body=api.OpenAttempt)
def open_attempt(body: api.OpenAttempt):
    attempt = actions.identify(db.session, g.station, body.ticket_no, now())
    db.session.commit()
    return attempt_info(attempt).to_json(), 201


@bp.get("/attempts/<attempt_id>")
@station(attempt="handover")
def get_attempt(attempt_id: str):
    return attempt_info(g.attempt).to_json()


@bp.post("/attempts/<attempt_id>/face-tries")
@station(attempt="current", body=api.FaceTry)
def face_try(attempt_id: str, body: api.FaceTry):
    attempt = g.attempt
    tries = actions.face_try(db.session, settings().data_dir, g.station, attempt, distance=body.distance,
                             matched=body.matched, liveness=body.liveness,
                             frame=frames.decode_jpeg_b64(body.frame_jpeg))
    db.session.commit()
    return api.FaceTryReply(tries=tries, face_verified=attempt.face_verified).to_json()


@bp.post("/attempts/<attempt_id>/review")
@station(attempt="current", body=api.ReviewRequest)
def request_review(attempt_id: str, body: api.ReviewRequest):
    review = actions.request_review(db.session, settings().data_dir, g.station, g.attempt,
                                    best_distance=body.best_distance, frame=frames.decode_jpeg_b64(body.frame_jpeg))
    db.session.commit()
    return review_info(review).to_json(), 201


@bp.get("/attempts/<attempt_id>/review")
@station(attempt="current")
def review_result(attempt_id: str):
    review = attempt_service.latest_review(db.session, g.attempt)
    if review is None:
        raise EdgeError("no review was requested for this attempt", code="no_review", status=404)
    return review_info(review).to_json()


@bp.post("/attempts/<attempt_id>/fallback-code")
@station(attempt="current", body=api.FallbackCode)
def fallback_code(attempt_id: str, body: api.FallbackCode):
    """A staff member's one-time code instead of face login: approves the face review once."""
    attempt = g.attempt
    try:
        review = fallback_service.redeem(db.session, g.station, attempt, body.code,
                                         key=settings().secret_key.encode(), now=now())
    except (fallback_service.CodeRefused, fallback_service.TooManyTries):
        db.session.commit()  # the refusal is audited and a wrong try counted
        raise
    db.session.commit()
    return api.FallbackReply(status=str(review.status), review=review.id, face_verified=attempt.face_verified).to_json()


@bp.post("/attempts/<attempt_id>/lot")
@station(attempt="current", body=api.NoFields)
def draw_lot(attempt_id: str, body: api.NoFields):
    attempt = g.attempt
    lot = actions.draw_lot(db.session, g.station, attempt, now())
    db.session.commit()
    return api.LotReply(lot=lot, auto=bool(attempt.lot_auto)).to_json()


@bp.post("/events")
@station(body=api.StationEvent)
def post_event(body: api.StationEvent):
    actions.report_event(db.session, g.station, body.kind, body.attempt, body.payload)
    db.session.commit()
    return api.Accepted().to_json(), 201


@bp.post("/station-key")
@station(body=api.StationKey)
def station_key(body: api.StationKey):
    register_key(db.session, g.station, body.public_key)
    db.session.commit()
    return api.KeyReply(station=g.station.id, public_key=g.station.public_key).to_json()


@bp.post("/attempts/<attempt_id>/finish")
@station(attempt="handover", body=api.Finish)
def finish(attempt_id: str, body: api.Finish):
    attempt = g.attempt
    actions.finish(db.session, g.station, attempt, list(body.segments), body.reason)
    attempt_service.queue_sync_if_complete(db.session, settings(), attempt)
    db.session.commit()
    return api.UploadStatus(**attempt_service.upload_status(db.session, attempt)).to_json()


@bp.get("/attempts/<attempt_id>/uploads")
@station(attempt="handover")
def uploads_status(attempt_id: str):
    return api.UploadStatus(**attempt_service.upload_status(db.session, g.attempt)).to_json()
