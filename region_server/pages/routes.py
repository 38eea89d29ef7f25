"""The regional pages: centres and sittings, lots of a sitting, attempts, one attempt, problems; each
table also as CSV (``?`` filters apply to both). Regional admins and reviewers; markers do not see them."""
from __future__ import annotations

from flask import Response, abort, render_template, request

from region_server.auth import REGION_STAFF, roles_required
from region_server.errors import StoreError
from region_server.extensions import db
from region_server.models import Attempt, ObjectKind, ProblemKind, Sitting, StoredObject
from region_server.pages.blueprint import bp
from region_server.pages.csv_export import csv_response
from region_server.store import store_for
from region_server.summary import (
    STATUSES,
    attempt_rows,
    centre_rows,
    lot_rows,
    object_rows,
    problem_rows,
    sitting_rows,
    timeline,
)

CENTRE_COLUMNS = ["centre", "last_manifest_at", "last_indexed_at", "sittings", "attempts", "verified", "present",
                  "pending", "damaged", "problems"]
SITTING_COLUMNS = ["centre", "sitting", "name", "kind", "expected", "absent", "lots", "started", "finished",
                   "ended_early", "complete_at_edge", "synced_by_edge", "central", "verified", "damaged", "unchecked",
                   "missing_in_central"]
LOT_COLUMNS = ["lot", "attempt", "started", "finished", "ended_early", "end_reason", "complete_at_edge",
               "synced_by_edge", "central", "chain", "problems", "wrong", "where"]
ATTEMPT_COLUMNS = ["centre", "sitting", "lot", "attempt", "prefix", "end_reason", "finished_at", "manifest_at", "flags",
                   "verification", "chain", "problems", "checked_at", "hashed_at"]
OBJECT_COLUMNS = ["key", "kind", "camera", "question", "seq", "expected_size", "found_size", "expected_sha256",
                  "found_sha256", "check", "checked_at", "hashed_at", "detail"]
PROBLEM_COLUMNS = ["centre", "kind", "key", "message", "first_seen_at", "last_seen_at", "resolved_at"]


def _arg(name: str) -> str | None:
    return (request.args.get(name) or "").strip() or None


def _status() -> str | None:
    status = _arg("status")
    if status is not None and status not in STATUSES:
        abort(400, f"unknown status {status!r}")
    return status


def _page(template: str, **context):
    return render_template(template, **context), 200, {"Cache-Control": "no-store"}


@bp.get("/")
@roles_required(*REGION_STAFF)
def overview():
    centre = _arg("centre")
    return _page("region/overview.html", centre=centre, centres=centre_rows(db.session),
                 sittings=sitting_rows(db.session, centre))


@bp.get("/centres.csv")
@roles_required(*REGION_STAFF)
def centres_csv() -> Response:
    return csv_response("centres", CENTRE_COLUMNS, centre_rows(db.session, _arg("centre")))


@bp.get("/sittings.csv")
@roles_required(*REGION_STAFF)
def sittings_csv() -> Response:
    return csv_response("sittings", SITTING_COLUMNS, sitting_rows(db.session, _arg("centre"), _arg("sitting")))


def _sitting(sitting_id: int) -> Sitting:
    sitting = db.session.get(Sitting, sitting_id)
    if sitting is None:
        abort(404)
    return sitting


@bp.get("/sittings/<int:sitting_id>")
@roles_required(*REGION_STAFF)
def sitting(sitting_id: int):
    row = _sitting(sitting_id)
    (summary,) = sitting_rows(db.session, row.centre_id, row.sitting)
    return _page("region/sitting.html", sitting=row, summary=summary, lots=lot_rows(db.session, row))


@bp.get("/sittings/<int:sitting_id>/lots.csv")
@roles_required(*REGION_STAFF)
def lots_csv(sitting_id: int) -> Response:
    row = _sitting(sitting_id)
    return csv_response(f"lots-{row.centre_id}-{row.sitting}", LOT_COLUMNS, lot_rows(db.session, row))


@bp.get("/attempts")
@roles_required(*REGION_STAFF)
def attempts():
    centre, sitting_id, status = _arg("centre"), _arg("sitting"), _status()
    return _page("region/attempts.html", rows=attempt_rows(db.session, centre, sitting_id, status), centre=centre,
                 sitting=sitting_id, status=status, statuses=STATUSES, centres=[c["centre"] for c in centre_rows(
                     db.session)])


@bp.get("/attempts.csv")
@roles_required(*REGION_STAFF)
def attempts_csv() -> Response:
    return csv_response("attempts", ATTEMPT_COLUMNS,
                        attempt_rows(db.session, _arg("centre"), _arg("sitting"), _status(), limit=1_000_000))


def _attempt(attempt_id: int) -> Attempt:
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None:
        abort(404)
    return attempt


@bp.get("/attempts/<int:attempt_id>")
@roles_required(*REGION_STAFF)
def attempt(attempt_id: int):
    row = _attempt(attempt_id)
    objects = object_rows(row)
    frames = [o for o in row.objects if o.kind == ObjectKind.FACE_FRAME]
    return _page("region/attempt.html", attempt=row, objects=objects, frames=frames, timeline=timeline(row),
                 flags=(row.manifest or {}).get("flags") or [], problems=problem_rows_of(row))


def problem_rows_of(attempt: Attempt) -> list[dict]:
    return [p for p in problem_rows(db.session, attempt.centre_id) if p["attempt_row"] == attempt.id
            or p["key"] == attempt.manifest_key]


@bp.get("/attempts/<int:attempt_id>/objects.csv")
@roles_required(*REGION_STAFF)
def objects_csv(attempt_id: int) -> Response:
    row = _attempt(attempt_id)
    return csv_response(f"objects-{row.prefix.replace('/', '_')}", OBJECT_COLUMNS, object_rows(row))


@bp.get("/attempts/<int:attempt_id>/frames/<int:object_id>.jpg")
@roles_required(*REGION_STAFF)
def frame(attempt_id: int, object_id: int) -> Response:
    """A face-login frame, read from central storage through the app (the browser never sees the store)."""
    obj = db.session.get(StoredObject, object_id)
    if obj is None or obj.attempt_id != attempt_id or obj.kind != ObjectKind.FACE_FRAME:
        abort(404)
    try:
        data = store_for().get(obj.key)
    except StoreError:
        abort(404)
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@bp.get("/problems")
@roles_required(*REGION_STAFF)
def problems():
    centre, kind = _arg("centre"), _arg("kind")
    return _page("region/problems.html", rows=problem_rows(db.session, centre, kind), centre=centre, kind=kind,
                 kinds=[str(k) for k in ProblemKind], centres=[c["centre"] for c in centre_rows(db.session)])


@bp.get("/problems.csv")
@roles_required(*REGION_STAFF)
def problems_csv() -> Response:
    return csv_response("problems", PROBLEM_COLUMNS,
                        problem_rows(db.session, _arg("centre"), _arg("kind"), include_resolved=bool(_arg("all"))))
