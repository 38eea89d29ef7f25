"""One centre with a row behind every id a route takes, for the tests that call every route of the app.

``build_world`` makes it: a candidate seated at ``own`` (st-01) after a move from ``former`` (st-03),
another station of the centre (``other``, st-02), a spare one the staff calls revoke and rename
(st-09), a station of another centre (``foreign``), a review, a face try with its frame, a help
thread, a broadcast, an upload, an import, and the three staff roles (password ``PASSWORD``).
``routes`` lists every (endpoint, method, path) of the app with those ids filled in.
"""
from __future__ import annotations

import base64
from pathlib import Path

from edge_server.extensions import db
from edge_server.models import (
    CandidateImport,
    FaceTry,
    HelpThread,
    ImportStatus,
    Message,
    MessageKind,
    Review,
    Segment,
    StaffRole,
)
from edge_server.services import audit, frames, snapshots
from edge_server.services.staff import create_user
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.edge_server.staff.test_staff_pages import PASSWORD

CENTRE = "c1"
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0"
    "Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==")


def build_world(app, settings, tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``(params, tokens)``: the ids to fill path parameters with, and each station's bearer token."""
    with app.app_context():
        own, own_token = make_station(db.session, CENTRE, "st-01")
        other, other_token = make_station(db.session, CENTRE, "st-02")
        former, former_token = make_station(db.session, CENTRE, "st-03")
        spare, _ = make_station(db.session, CENTRE, "st-09")  # revoked and renamed by the staff calls
        _, foreign_token = make_station(db.session, "c2", "st-x1")
        sitting = make_sitting(db.session, CENTRE, "c1-s1", starts_in=3600)
        candidate = make_candidate(db.session, sitting, ticket_no="20240001")
        make_candidate(db.session, sitting, ticket_no="20240002")
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(JPEG)
        candidate.photo_path = str(photo)
        attempt = make_attempt(db.session, candidate, own, lot=1)
        audit.append(db.session, kind="seat_moved", station_id=own.id, attempt_id=attempt.id, source="staff",
                     payload={"from": former.id, "to": own.id})
        review = Review(attempt_id=attempt.id)
        face_try = FaceTry(attempt_id=attempt.id, distance=0.7, frame_sha256="0" * 64)
        thread = HelpThread(centre_id=CENTRE, station_id=own.id, attempt_id=attempt.id)
        db.session.add_all([review, face_try, thread])
        db.session.flush()
        message = Message(centre_id=CENTRE, kind=MessageKind.BROADCAST, sitting_id=sitting.id, text="notice",
                          recipients=[own.id])
        segment = Segment(attempt_id=attempt.id, station_id=own.id, name="seg-0001", length=10,
                          sha256_declared="0" * 64)
        upload = CandidateImport(centre_id=CENTRE, sitting_id=sitting.id, status=ImportStatus.READY, total=0)
        db.session.add_all([message, segment, upload])
        for role in (StaffRole.PROCTOR, StaffRole.REGIONAL_ADMIN, StaffRole.CENTRE_ADMIN):
            create_user(db.session, str(role), PASSWORD, role, None if role == StaffRole.REGIONAL_ADMIN else CENTRE)
        db.session.commit()
        uploads_dir = settings.uploads_dir
        uploads_dir.mkdir(parents=True, exist_ok=True)
        (uploads_dir / f"{segment.id}.part").touch()
        snapshots_dir = Path(settings.snapshots_dir)
        snapshots.store(snapshots_dir, spare.id, JPEG)
        frame = frames.face_try_frame_path(settings.data_dir, attempt.id, face_try.frame_sha256)
        frame.parent.mkdir(parents=True, exist_ok=True)
        frame.write_bytes(JPEG)
        params = {"attempt_id": attempt.id, "sitting_id": sitting.id, "ticket_no": candidate.ticket_no,
                  "other_ticket_no": "20240002",
                  "station_id": spare.id, "review_id": str(review.id), "try_id": str(face_try.id),
                  "thread_id": str(thread.id), "message_id": str(message.id), "upload_id": segment.id,
                  "filename": "staff.css", "import_id": upload.id, "fmt": "pdf", "which": "photo"}
        tokens = {"own": own_token, "other": other_token, "former": former_token, "foreign": foreign_token}
    return params, tokens


def routes(app, params: dict[str, str]):
    """Every (endpoint, method, path) of the app; revoke and logout last (they end what others use)."""
    last = ("staff.revoke_station", "staff.logout")
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint in last, last.index(r.endpoint)
                                                                if r.endpoint in last else 0, r.rule)):
        missing = set(rule.arguments) - set(params)
        assert not missing, f"the test cannot fill {missing} of {rule.rule}: add a real id for it"
        path = rule.build({a: params[a] for a in rule.arguments}, append_unknown=False)[1]
        # Flask answers OPTIONS itself unless the route declares it (tus discovery does).
        automatic = {"OPTIONS"} if getattr(rule, "provide_automatic_options", False) else set()
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"}) or sorted(rule.methods - automatic)
        # DELETE last: the own station's upload is gone afterwards.
        for method in sorted(methods, key=lambda m: m == "DELETE"):
            yield rule.endpoint, method, path


