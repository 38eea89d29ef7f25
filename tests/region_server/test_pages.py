"""The regional pages and their CSV exports (test client): figures per centre, sitting, lot and attempt;
problems with their keys; markers kept out; face-login frames served through the app."""
from __future__ import annotations

import csv
import io
import json

from sqlalchemy import select

from region_server.extensions import db
from region_server.models import Attempt, Role
from tests.region_server.central_data import write_attempt, write_sitting
from tests.region_server.helpers import index_all, make_user, sign_in, verify_all


def _csv(resp) -> list[dict[str, str]]:
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    text = resp.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def _world(app, central, station_key):
    w = central.writer
    ok = write_attempt(w, "c1", "s1", 1, "a-1", station_key, per_camera=2)
    bad = write_attempt(w, "c1", "s1", 2, "a-2", station_key, per_camera=2)
    write_attempt(w, "c2", "s7", 1, "b-1", station_key, per_camera=1)
    write_sitting(w, "c1", "s1", [
        {"lot": 1, "attempt": "a-1", "started": True, "finished": True, "complete_at_edge": True, "synced": True},
        {"lot": 2, "attempt": "a-2", "started": True, "finished": True, "complete_at_edge": True, "synced": True},
        {"lot": 3, "attempt": "a-3", "started": True, "finished": True, "complete_at_edge": True, "synced": True},
        {"lot": 4, "attempt": "a-4", "started": True, "ended_early": True, "end_reason": "withdrawn"},
    ], absent=1, tickets={1: "T-SECRET-1"})
    w.delete(bad.segments[0])
    w.put("c1/s1/lot-009/manifest.json", b'{"format": "examkiosk-manifest/1", "centre": ')
    index_all(app)
    verify_all(app)
    make_user(app, "admin", Role.REGIONAL_ADMIN)
    make_user(app, "marker", Role.MARKER)
    return ok, bad


def test_overview_sitting_and_attempt_pages_show_the_figures_and_csvs_match(app, central, station_key):
    ok, bad = _world(app, central, station_key)
    client = sign_in(app, "admin")
    page = client.get("/region/").get_data(as_text=True)
    assert 'data-centre="c1"' in page and 'data-centre="c2"' in page
    centres = {r["centre"]: r for r in _csv(client.get("/region/centres.csv"))}
    assert centres["c1"]["attempts"] == "2" and centres["c1"]["verified"] == "1" and centres["c1"]["damaged"] == "1"
    assert centres["c1"]["problems"] == "3"  # missing object, its chain, the truncated manifest
    assert centres["c2"]["verified"] == "1" and centres["c1"]["last_manifest_at"]
    (s1,) = [r for r in _csv(client.get("/region/sittings.csv?centre=c1"))]
    assert (s1["expected"], s1["absent"], s1["finished"], s1["complete_at_edge"]) == ("5", "1", "3", "3")
    assert (s1["central"], s1["verified"], s1["damaged"], s1["missing_in_central"]) == ("2", "1", "1", "1")

    with app.app_context():
        sitting_id = db.session.scalar(select(Attempt.sitting_id).where(Attempt.manifest_key == ok.key))
        bad_id = db.session.scalar(select(Attempt.id).where(Attempt.manifest_key == bad.key))
    lots = {r["lot"]: r for r in _csv(client.get(f"/region/sittings/{sitting_id}/lots.csv"))}
    assert lots["1"]["central"] == "verified" and lots["2"]["central"] == "damaged"
    assert lots["2"]["wrong"] == f"missing {bad.segments[0]}"
    assert lots["3"]["central"] == "missing" and lots["3"]["where"] == "c1/s1/lot-003"
    assert lots["4"]["central"] == "not_synced" and lots["4"]["ended_early"] == "True"
    sitting_page = client.get(f"/region/sittings/{sitting_id}").get_data(as_text=True)
    assert bad.segments[0] in sitting_page and "c1/s1/lot-003/manifest.json" in sitting_page
    assert "T-SECRET-1" not in sitting_page  # ticket numbers are for the results export only

    attempt_page = client.get(f"/region/attempts/{bad_id}").get_data(as_text=True)
    assert "损坏或缺失 damaged" in attempt_page and "链断裂 broken" in attempt_page
    objects = {r["key"]: r for r in _csv(client.get(f"/region/attempts/{bad_id}/objects.csv"))}
    assert objects[bad.segments[0]]["check"] == "missing" and len(objects) == 4 + 2 + 1 + 1  # and the manifest

    problems = _csv(client.get("/region/problems.csv?centre=c1"))
    assert {(p["kind"], p["key"]) for p in problems} == {
        ("missing_object", bad.segments[0]), ("chain", bad.segments[0]),
        ("truncated_manifest", "c1/s1/lot-009/manifest.json")}
    assert "c1/s1/lot-009/manifest.json" in client.get("/region/problems").get_data(as_text=True)
    damaged = _csv(client.get("/region/attempts.csv?status=damaged"))
    assert [r["prefix"] for r in damaged] == ["c1/s1/lot-002"]
    assert client.get("/region/attempts?status=nonsense").status_code == 400


def test_face_frames_are_served_through_the_app_and_markers_see_no_regional_page(app, central, station_key):
    ok, _ = _world(app, central, station_key)
    with app.app_context():
        attempt = db.session.scalar(select(Attempt).where(Attempt.manifest_key == ok.key))
        frame = next(o for o in attempt.objects if o.kind == "face_frame")
        attempt_id, frame_id = attempt.id, frame.id
        other = next(o for o in attempt.objects if o.kind == "segment").id
    admin = sign_in(app, "admin")
    resp = admin.get(f"/region/attempts/{attempt_id}/frames/{frame_id}.jpg")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    assert resp.data == central.writer.read(ok.frames[0]) and resp.data[:2] == b"\xff\xd8"
    assert admin.get(f"/region/attempts/{attempt_id}/frames/{other}.jpg").status_code == 404  # not a frame
    marker = sign_in(app, "marker")
    for url in ("/region/", "/region/centres.csv", "/region/attempts", f"/region/attempts/{attempt_id}",
                f"/region/attempts/{attempt_id}/frames/{frame_id}.jpg", "/region/problems.csv"):
        assert marker.get(url).status_code == 403, url
    assert json.loads(admin.get("/healthz").data) == {"ok": True}
