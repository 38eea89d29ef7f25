"""Station API: time, schedule, candidates, attempts, face login, review, lots, events (paper: papers.py)."""
from __future__ import annotations

from flask import g, jsonify
from sqlalchemy import select

from edge_server.api import bp
from edge_server.api.helpers import epoch, json_body, now, server_time, settings, station_required
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.models import Attempt, Sitting, Station
from edge_server.services import attempts as attempt_service
from edge_server.services import centres as centre_service
from edge_server.services import fallback as fallback_service
from edge_server.services import frames
from edge_server.services.masking import mask_id_number


@bp.get("/time")
@station_required
def time_now():
    return jsonify(server_time=server_time())


def sitting_json(sitting: Sitting) -> dict:
    seconds = sitting.paper.question_seconds
    if seconds is None:  # a paper from before sealing (plaintext rows)
        seconds = [q.seconds for q in sitting.paper.questions]
    # The sitting's own per-question duration, when set, overrides the paper's.
    seconds = [sitting.question_seconds or n for n in seconds]
    return {
        "id": sitting.id,
        "name": sitting.name,
        "kind": str(sitting.kind),
        "timing_mode": str(sitting.timing_mode),
        "waiting_opens_at": epoch(sitting.waiting_opens_at),
        "starts_at": epoch(sitting.starts_at),
        "entry_closes_at": epoch(sitting.entry_closes_at),
        "lot_deadline_at": epoch(sitting.lot_deadline_at),
        "question_seconds": seconds,
        "total_seconds": sitting.total_seconds or sum(seconds),
        "early_finish": sitting.early_finish_allowed,
        "max_interruptions": sitting.max_interruptions,
        "max_gap_seconds": sitting.max_gap_seconds,
    }


@bp.get("/schedule")
@station_required
def schedule():
    sittings = db.session.scalars(
        select(Sitting).where(Sitting.centre_id == g.station.centre_id).order_by(Sitting.starts_at)
    ).all()
    return jsonify(server_time=server_time(), centre=g.station.centre_id, station=g.station.id,
                   sittings=[sitting_json(s) for s in sittings])


@bp.get("/candidates/<ticket_no>")
@station_required
def candidate(ticket_no: str):
    cand = attempt_service.find_candidate(db.session, g.station.centre_id, ticket_no)
    return jsonify(candidate_json(cand))


def candidate_json(cand) -> dict:
    return {
        "ticket_no": cand.ticket_no,
        "name": cand.name,
        "id_number_masked": mask_id_number(cand.id_number),
        "seat": cand.seat,
        "sitting": cand.sitting_id,
        "descriptor": cand.descriptor,
    }


def attempt_json(attempt: Attempt) -> dict:
    from edge_server.services import moves, seats

    review = attempt_service.latest_review(db.session, attempt)
    seat = attempt.candidate.station_id
    moved_to = None
    if seat is not None and seat != g.station.id:  # the seat map moved the candidate away from this station
        target = db.session.get(Station, seat)
        moved_to = seats.label(target) if target is not None else seat
    return {
        "id": attempt.id,
        "sitting": sitting_json(attempt.sitting),
        "candidate": candidate_json(attempt.candidate),
        "lot": attempt.lot,
        "lot_auto": attempt.lot_auto,
        "face_verified": attempt.face_verified,
        "face_tries": attempt_service.face_tries(db.session, attempt),
        "review": None if review is None else {"id": review.id, "status": str(review.status), "reason": review.reason},
        "finished": attempt.finished_at is not None,
        "centre": centre_service.station_settings(centre_service.get_centre(db.session, attempt.sitting.centre_id)),
        "resume": moves.resume_info(db.session, attempt),
        "moved_to": moved_to,
    }


@bp.post("/attempts")
@station_required
def open_attempt():
    body = json_body("ticket_no")
    attempt = attempt_service.open_attempt(db.session, g.station, str(body["ticket_no"]), now())
    attempt_service.log_event(db.session, kind="identified", station_id=g.station.id, attempt_id=attempt.id)
    db.session.commit()
    return jsonify(attempt_json(attempt)), 201


@bp.get("/attempts/<attempt_id>")
@station_required
def get_attempt(attempt_id: str):
    return jsonify(attempt_json(attempt_service.get_attempt(db.session, g.station, attempt_id)))


@bp.post("/attempts/<attempt_id>/face-tries")
@station_required
def face_try(attempt_id: str):
    body = json_body("matched")
    attempt = attempt_service.get_attempt(db.session, g.station, attempt_id)
    distance = body.get("distance")
    if distance is not None and not isinstance(distance, (int, float)):
        raise EdgeError("distance must be a number", code="bad_field")
    liveness = body.get("liveness")  # the head-turn challenge's outcome, when one ran ("ok", "rigid", ...)
    if liveness is not None and not (isinstance(liveness, str) and 0 < len(liveness) <= 32):
        raise EdgeError("liveness must be a short string", code="bad_field")
    frame = frames.decode_jpeg_b64(body.get("frame_jpeg"))
    frame_sha256 = (frames.store_face_try_frame(settings().data_dir, attempt.id, frame)
                    if frame is not None else None)
    tries = attempt_service.record_face_try(db.session, attempt, distance=distance, matched=bool(body["matched"]),
                                            frame_sha256=frame_sha256)
    attempt_service.log_event(db.session, kind="face_try", station_id=g.station.id, attempt_id=attempt.id,
                              payload={"distance": distance, "matched": bool(body["matched"]), "try": tries,
                                       "liveness": liveness, "frame_sha256": frame_sha256})
    db.session.commit()
    return jsonify(tries=tries, face_verified=attempt.face_verified)


@bp.post("/attempts/<attempt_id>/review")
@station_required
def request_review(attempt_id: str):
    body = json_body()
    attempt = attempt_service.get_attempt(db.session, g.station, attempt_id)
    frame = frames.decode_jpeg_b64(body.get("frame_jpeg"))
    review = attempt_service.request_review(db.session, attempt, body.get("best_distance"))
    if frame is not None:
        path = frames.review_frame_path(settings().data_dir, review.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(frame)
    attempt_service.log_event(db.session, kind="review_requested", station_id=g.station.id, attempt_id=attempt.id)
    db.session.commit()
    return jsonify(id=review.id, status=str(review.status)), 201


@bp.get("/attempts/<attempt_id>/review")
@station_required
def review_result(attempt_id: str):
    attempt = attempt_service.get_attempt(db.session, g.station, attempt_id)
    review = attempt_service.latest_review(db.session, attempt)
    if review is None:
        raise EdgeError("no review was requested for this attempt", code="no_review", status=404)
    return jsonify(id=review.id, status=str(review.status), reason=review.reason)


@bp.post("/attempts/<attempt_id>/fallback-code")
@station_required
def fallback_code(attempt_id: str):
    """A staff member's one-time code instead of face login: approves the face review once."""
    body = json_body("code")
    if not isinstance(body["code"], str) or len(body["code"]) > 32:
        raise EdgeError("code must be a short string", code="bad_field")
    attempt = attempt_service.get_attempt(db.session, g.station, attempt_id)
    try:
        review = fallback_service.redeem(db.session, g.station, attempt, body["code"],
                                         key=settings().secret_key.encode(), now=now())
    except (fallback_service.CodeRefused, fallback_service.TooManyTries):
        db.session.commit()  # the refusal is audited and a wrong try counted
        raise
    db.session.commit()
    return jsonify(status=str(review.status), review=review.id, face_verified=attempt.face_verified)


@bp.post("/attempts/<attempt_id>/lot")
@station_required
def draw_lot(attempt_id: str):
    attempt = attempt_service.get_attempt(db.session, g.station, attempt_id)
    lot = attempt_service.draw_lot(db.session, attempt, auto=now() >= attempt.sitting.lot_deadline_at)
    attempt_service.log_event(db.session, kind="lot_drawn", station_id=g.station.id, attempt_id=attempt.id,
                              payload={"lot": lot, "auto": attempt.lot_auto})
    db.session.commit()
    return jsonify(lot=lot, auto=attempt.lot_auto)


@bp.post("/events")
@station_required
def post_event():
    body = json_body("kind")
    kind = body["kind"]
    if not isinstance(kind, str) or not kind or len(kind) > 64:
        raise EdgeError("kind must be a short string", code="bad_field")
    payload = body.get("payload") or {}
    if not isinstance(payload, dict):
        raise EdgeError("payload must be an object", code="bad_field")
    attempt_id = body.get("attempt")
    if attempt_id is not None:
        attempt_service.get_attempt(db.session, g.station, str(attempt_id))
    attempt_service.log_event(db.session, kind=kind, station_id=g.station.id, attempt_id=attempt_id, payload=payload)
    db.session.commit()
    return jsonify(ok=True), 201


@bp.post("/station-key")
@station_required
def station_key():
    body = json_body("public_key")
    from edge_server.services.stations import register_key

    register_key(db.session, g.station, body["public_key"])
    db.session.commit()
    return jsonify(station=g.station.id, public_key=g.station.public_key)


@bp.post("/attempts/<attempt_id>/finish")
@station_required
def finish(attempt_id: str):
    body = json_body("segments")
    if not isinstance(body["segments"], list):
        raise EdgeError("segments must be a list of names", code="bad_field")
    attempt = attempt_service.get_attempt(db.session, g.station, attempt_id)
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise EdgeError("reason must be a string", code="bad_field")
    attempt_service.finish_attempt(db.session, attempt, body["segments"], reason)
    attempt_service.log_event(db.session, kind="segments_handed_over" if reason == attempt_service.HANDED_OVER
                              else "attempt_finished", station_id=g.station.id, attempt_id=attempt.id,
                              payload={"segments": len(body["segments"]), "reason": body.get("reason", "")})
    from edge_server.api.uploads import enqueue_sync_if_complete

    enqueue_sync_if_complete(attempt)
    db.session.commit()
    return jsonify(attempt_service.upload_status(db.session, attempt))


@bp.get("/attempts/<attempt_id>/uploads")
@station_required
def uploads_status(attempt_id: str):
    attempt = attempt_service.get_attempt(db.session, g.station, attempt_id)
    return jsonify(attempt_service.upload_status(db.session, attempt))
