"""Candidates and their enrolled photos: the edge computes the face descriptor at import.

Photos stay on the edge; stations only ever receive the 128-d descriptor.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.orm import Session

from edge_server.errors import EdgeError
from edge_server.models import Candidate


def enrol_candidate(session: Session, *, centre_id: str, sitting_id: str, ticket_no: str, name: str,
                    id_number: str, photo: Path, photos_dir: Path, seat: str = "") -> Candidate:
    from station.face import FaceEngine, FaceError, load_image

    try:
        descriptor = FaceEngine().enrolment_descriptor(load_image(photo))
    except FaceError as exc:
        raise EdgeError(f"{photo.name}: {exc}", code="photo_unusable") from exc
    photos_dir.mkdir(parents=True, exist_ok=True)
    stored = photos_dir / f"{centre_id}-{ticket_no}{photo.suffix.lower()}"
    shutil.copyfile(photo, stored)
    candidate = Candidate(centre_id=centre_id, sitting_id=sitting_id, ticket_no=ticket_no, name=name,
                          id_number=id_number, seat=seat, photo_path=str(stored),
                          descriptor=[round(float(x), 6) for x in descriptor])
    session.add(candidate)
    session.flush()
    return candidate
