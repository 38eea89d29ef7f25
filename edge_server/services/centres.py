"""Per-centre settings the stations follow: the face-match threshold and whether voice prompts play."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from edge_server.errors import EdgeError, NotFound
from edge_server.models import Centre
from edge_server.services import audit

# A distance threshold outside this range either lets strangers in or turns the candidate away.
MIN_FACE_THRESHOLD = 0.3
MAX_FACE_THRESHOLD = 0.8


def get_centre(session: Session, centre_id: str) -> Centre:
    centre = session.get(Centre, centre_id)
    if centre is None:
        raise NotFound("no such centre", code="centre_unknown")
    return centre


def station_settings(centre: Centre) -> dict[str, Any]:
    """What a station needs of its centre's settings (sent with every attempt)."""
    return {"face_threshold": centre.face_threshold, "voice_prompts": centre.voice_prompts}


def update_settings(session: Session, centre: Centre, *, face_threshold: float, voice_prompts: bool,
                    by: str) -> dict[str, Any]:
    """Change the centre's settings, audited; returns what changed as ``{field: [before, after]}``."""
    if isinstance(face_threshold, bool) or not isinstance(face_threshold, (int, float)) \
            or not MIN_FACE_THRESHOLD <= face_threshold <= MAX_FACE_THRESHOLD:
        raise EdgeError(f"the face threshold must be between {MIN_FACE_THRESHOLD} and {MAX_FACE_THRESHOLD}",
                        code="bad_threshold")
    before = station_settings(centre)
    centre.face_threshold = float(face_threshold)
    centre.voice_prompts = bool(voice_prompts)
    after = station_settings(centre)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changes:
        audit.append(session, kind="centre_settings_changed", station_id=None, attempt_id=None, source="staff",
                     payload={"centre": centre.id, "by": by, "changes": changes})
    return changes
