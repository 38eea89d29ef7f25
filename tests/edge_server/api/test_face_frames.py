"""Face tries carry the frame the station matched; attempts carry the centre's face settings."""
from __future__ import annotations

import base64
import hashlib

import cv2
import pytest
from sqlalchemy import select

from edge_server.extensions import db
from edge_server.models import Centre, Event, FaceTry
from edge_server.services import centres
from edge_server.services.frames import face_try_frame_path
from provisioning import assets
from tests.edge_server.helpers import make_candidate, make_sitting, make_station


def real_jpeg(width: int = 240) -> bytes:
    """Grace Hopper's photo (matplotlib's sample data), scaled down, as a JPEG."""
    image = cv2.imread(str(assets.grace_hopper_image()))
    height = round(image.shape[0] * width / image.shape[1])
    ok, data = cv2.imencode(".jpg", cv2.resize(image, (width, height)), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return data.tobytes()


@pytest.fixture
def opened(app, client):
    with app.app_context():
        _, token = make_station(db.session, "c1", "st-01")
        ticket = make_candidate(db.session, make_sitting(db.session, "c1")).ticket_no
        db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    resp = client.post("/api/v1/attempts", json={"ticket_no": ticket}, headers=headers)
    assert resp.status_code == 201
    return resp.get_json(), headers


def test_every_try_keeps_its_distance_and_frame(app, client, settings, opened):
    attempt, headers = opened
    url = f"/api/v1/attempts/{attempt['id']}/face-tries"
    frame = real_jpeg()
    resp = client.post(url, json={"matched": False, "distance": 0.72, "frame_jpeg": base64.b64encode(frame).decode()},
                       headers=headers)
    assert resp.status_code == 200 and resp.get_json() == {"tries": 1, "face_verified": None}
    assert client.post(url, json={"matched": False, "distance": 0.69}, headers=headers).status_code == 200
    with app.app_context():
        tries = db.session.scalars(select(FaceTry).where(FaceTry.attempt_id == attempt["id"])
                                   .order_by(FaceTry.id)).all()
        assert [(t.distance, t.matched) for t in tries] == [(0.72, False), (0.69, False)]
        assert tries[0].frame_sha256 == hashlib.sha256(frame).hexdigest() and tries[1].frame_sha256 is None
        stored = face_try_frame_path(settings.data_dir, attempt["id"], tries[0].frame_sha256)
        assert stored.read_bytes() == frame
        assert stored.parent.name == attempt["id"]  # filed with its attempt
        event = db.session.scalar(select(Event).where(Event.kind == "face_try").order_by(Event.id).limit(1))
        assert event.payload["frame_sha256"] == tries[0].frame_sha256


@pytest.mark.parametrize(("frame", "message"), [
    ("not base64 at all!", "not base64"),
    (base64.b64encode(b"GIF89a....").decode(), "not a JPEG"),
    (12345, "base64 JPEG"),
], ids=["not-base64", "not-jpeg", "not-a-string"])
def test_a_bad_frame_is_400_and_no_try_is_logged(app, client, opened, frame, message):
    attempt, headers = opened
    resp = client.post(f"/api/v1/attempts/{attempt['id']}/face-tries",
                       json={"matched": False, "distance": 0.7, "frame_jpeg": frame}, headers=headers)
    assert resp.status_code == 400 and resp.get_json()["code"] == "bad_frame"
    assert message in resp.get_json()["error"]
    with app.app_context():
        assert db.session.scalars(select(FaceTry)).all() == []


def test_the_attempt_carries_the_centre_face_settings(app, client, opened):
    attempt, headers = opened
    assert attempt["centre"] == {"face_threshold": 0.6, "voice_prompts": True}
    with app.app_context():
        changes = centres.update_settings(db.session, db.session.get(Centre, "c1"), face_threshold=0.5,
                                          voice_prompts=False, by="admin")
        db.session.commit()
    assert changes == {"face_threshold": [0.6, 0.5], "voice_prompts": [True, False]}
    got = client.get(f"/api/v1/attempts/{attempt['id']}", headers=headers).get_json()
    assert got["centre"] == {"face_threshold": 0.5, "voice_prompts": False}


@pytest.mark.parametrize("value", [0.29, 0.81, float("nan"), True, "0.5"])
def test_the_threshold_must_be_between_0_3_and_0_8(app, value):
    from edge_server.errors import EdgeError

    with app.app_context():
        centre = db.session.get(Centre, make_station(db.session, "c1")[0].centre_id)
        with pytest.raises(EdgeError) as info:
            centres.update_settings(db.session, centre, face_threshold=value, voice_prompts=True, by="admin")
        assert info.value.code == "bad_threshold" and "between 0.3 and 0.8" in info.value.message
        assert centre.face_threshold == 0.6
