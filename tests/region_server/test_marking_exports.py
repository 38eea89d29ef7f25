"""The regional admin's exports of a sitting: the markers' package, streamed, unzips to MP4s that
ffprobe reads, with a manifest whose checksums match; a file central storage lacks is named, not
fatal; the results CSV maps lots to ticket numbers; markers get 403 on both; both are audited."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import zipfile

import pytest

from region_server import audit
from region_server.extensions import db
from region_server.marking import scoring
from region_server.models import Attempt, Role, Sitting, User
from tests.region_server import review_world as world
from tests.region_server.helpers import make_user, sign_in


def _setup(app, central):
    written = world.write_sitting(central.writer.put, lots=(7, 8))
    world.index(app)
    make_user(app, "admin", Role.REGIONAL_ADMIN)
    make_user(app, "marker", Role.MARKER)
    sitting_id, attempts = world.ids(app)
    with app.app_context():
        marker = db.session.scalars(db.select(User).where(User.username == "marker")).one()
        sitting = db.session.get(Sitting, sitting_id)
        scoring.assign(db.session, sitting, marker, by="admin")
        scoring.save_score(db.session, db.session.get(Attempt, attempts[7]), 1, marker, 8, "清楚 clear")
        db.session.commit()
    return written, sitting_id


def ffprobe_codecs(path) -> list[str]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [s["codec_name"] for s in json.loads(out)["streams"]]


@pytest.mark.parametrize("central", ["directory", "s3"], indirect=True)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_markers_package_streams_and_unzips_to_checked_mp4s(app, central, tmp_path):
    written, sitting_id = _setup(app, central)
    central.writer.delete("c-north/s-am/lot-008/questions/second_q2.mp4")  # lost in central storage
    admin = sign_in(app, "admin")
    resp = admin.get(f"/marking/sittings/{sitting_id}/package.zip", buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "application/zip" and resp.is_streamed
    chunks = list(resp.response)
    # Piece by piece: no chunk is bigger than the largest file in it (test_marking_zipstream: a large one is split).
    assert len(chunks) > 10 and max(len(c) for c in chunks) <= max(len(d) for d in written.files.values()) + 1024

    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.testzip() is None
    archive.extractall(tmp_path / "package")
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["lots"] == [7, 8]
    assert manifest["missing"] == [{"path": "lot-008/second_q2.mp4", "key": "c-north/s-am/lot-008/questions/"
                                    "second_q2.mp4", "reason": "not in central storage"}]
    listed = {f["path"]: f for f in manifest["files"]}
    mp4s = sorted(p for p in listed if p.endswith(".mp4"))
    assert mp4s == ["lot-007/main_q1.mp4", "lot-007/main_q2.mp4", "lot-007/second_q1.mp4", "lot-007/second_q2.mp4",
                    "lot-008/main_q1.mp4", "lot-008/main_q2.mp4", "lot-008/second_q1.mp4"]
    for path, entry in listed.items():
        data = (tmp_path / "package" / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"], path
    for path in mp4s:
        assert listed[path]["matches"] is True and listed[path]["expected_sha256"] == listed[path]["sha256"]
        assert "h264" in ffprobe_codecs(tmp_path / "package" / path)
    assert "aac" in ffprobe_codecs(tmp_path / "package" / "lot-007/main_q1.mp4")
    assert archive.read("lot-007/main_q1.mp4") == written.files["c-north/s-am/lot-007/questions/main_q1.mp4"]

    lot = json.loads(archive.read("lot-007/manifest.json"))
    assert {f["file"]: f["sha256"] for f in lot["files"]}["main_q1.mp4"] == listed["lot-007/main_q1.mp4"]["sha256"]
    assert [(f["question"], f["at"]) for f in lot["flags"]] == [(1, 3.0), (1, 6.0), (2, 1.5)]
    flags = list(csv.DictReader(io.StringIO(archive.read("flags.csv").decode("utf-8-sig"))))
    assert [(r["lot"], r["question"], r["kind"], r["at_seconds"]) for r in flags if r["lot"] == "7"] == \
        [("7", "1", "no_face", "3"), ("7", "1", "several_faces", "6"), ("7", "2", "focus_lost", "1.5")]
    assert json.loads(archive.read("sitting.json"))["name"] == world.SITTING_NAME
    whole = b"".join(chunks)
    for secret in world.SECRETS:  # the package goes to markers: no name, ticket or ID number in any file
        assert secret.encode() not in whole, secret
    with app.app_context():
        row = audit.rows(db.session)[0]
        assert (row.action, row.actor, row.payload["lots"]) == ("export.package", "admin", [7, 8])


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_the_results_csv_maps_lots_to_tickets_for_the_admin_only(app, central):
    _written, sitting_id = _setup(app, central)
    marker = sign_in(app, "marker")
    assert marker.get(f"/marking/sittings/{sitting_id}/package.zip").status_code == 403
    assert marker.get(f"/marking/sittings/{sitting_id}/results.csv").status_code == 403
    resp = sign_in(app, "admin").get(f"/marking/sittings/{sitting_id}/results.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    text = resp.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert [(r["lot"], r["ticket_no"], r["question"], r["marker"], r["score"], r["note"]) for r in rows] == [
        ("7", "TK-88314275", "1", "marker", "8", "清楚 clear"), ("7", "TK-88314275", "2", "", "", ""),
        ("8", "TK-88314299", "1", "", "", ""), ("8", "TK-88314299", "2", "", "", "")]
    with app.app_context():
        actions = [r.action for r in audit.rows(db.session)]
        assert actions[0] == "export.results" and "score.saved" in actions
        assert audit.verify_chain(db.session) is None
