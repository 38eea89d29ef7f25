"""Candidates and their enrolled photos: the edge computes the face descriptor at import.

Photos stay on the edge; stations only ever receive the 128-d descriptor. :func:`photo_descriptor`
is the one way a descriptor is made from a photo (the demo, and the import job of
services/candidate_import.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.orm import Session

from edge_server.errors import EdgeError
from edge_server.models import Candidate
from examkiosk_wire.face import FaceEngine, NoFaceFound, SeveralFaces, load_image


def photo_descriptor(photo: Path) -> list[float]:
    """The 128-d descriptor of the only face in the photo.

    EdgeError with code ``no_face``, ``several_faces`` or ``photo_unreadable`` otherwise.
    """
    try:
        image = load_image(photo)
    except (FileNotFoundError, ValueError) as exc:
        raise EdgeError(f"{photo.name}: {exc}", code="photo_unreadable") from exc
    try:
        descriptor = FaceEngine().enrolment_descriptor(image)  # models load once per process
    except NoFaceFound as exc:
        raise EdgeError(f"{photo.name}: {exc}", code="no_face") from exc
    except SeveralFaces as exc:
        raise EdgeError(f"{photo.name}: {exc}", code="several_faces") from exc
    return [round(float(x), 6) for x in descriptor]


def stored_photo_path(photos_dir: Path, centre_id: str, ticket_no: str, suffix: str) -> Path:
    return photos_dir / f"{centre_id}-{ticket_no}{suffix.lower()}"


def enrol_candidate(session: Session, *, centre_id: str, sitting_id: str, ticket_no: str, name: str,
                    id_number: str, photo: Path, photos_dir: Path, seat: str = "") -> Candidate:
    try:
        descriptor = photo_descriptor(photo)
    except EdgeError as exc:
        raise EdgeError(exc.message, code="photo_unusable") from exc
    photos_dir.mkdir(parents=True, exist_ok=True)
    stored = stored_photo_path(photos_dir, centre_id, ticket_no, photo.suffix)
    shutil.copyfile(photo, stored)
    candidate = Candidate(centre_id=centre_id, sitting_id=sitting_id, ticket_no=ticket_no, name=name,
                          id_number=id_number, seat=seat, photo_path=str(stored), descriptor=descriptor)
    session.add(candidate)
    session.flush()
    return candidate
