"""Candidate import in a real browser with a real RQ worker on a real Redis: a bad CSV's report shows
every bad row, confirming writes only whole valid rows, a good CSV imports; unsafe ZIP names are refused."""
from __future__ import annotations

import io
import re
import uuid
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import select

from edge_server.config import load_settings
from edge_server.extensions import db
from edge_server.jobs import context
from edge_server.models import Candidate, CandidateImport, Event, StaffRole
from edge_server.services.id_numbers import check_char
from edge_server.services.staff import create_user
from provisioning import assets
from provisioning.toml_file import write_toml
from tests.edge_server.conftest import SECRET_KEY, clean_environment
from tests.edge_server.helpers import make_sitting
from tests.edge_server.jobs.test_sync import forget_job_app
from tests.edge_server.staff.test_staff_pages import PASSWORD, csrf_session, sign_in

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "staff"
CENTRE = "c1"


def id_number(serial: int) -> str:
    first17 = f"11010519900307{serial:03d}"
    return first17 + check_char(first17)


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """Small JPEGs: one face each, two faces side by side, and no face."""
    images = assets.face_images()

    def small(image: np.ndarray, width: int = 360) -> np.ndarray:
        return cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA)

    obama, biden, obama2 = (small(cv2.imread(str(images[k]))) for k in ("obama", "biden", "obama2"))
    height = obama.shape[0]
    pair = np.hstack([obama, cv2.resize(biden, (round(biden.shape[1] * height / biden.shape[0]), height))])
    jpeg = lambda image: cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()  # noqa: E731
    return {"obama": jpeg(obama), "biden": jpeg(biden), "obama2": jpeg(obama2), "pair": jpeg(pair),
            "blank": jpeg(np.full((400, 320, 3), 128, np.uint8))}


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return data.getvalue()


@pytest.fixture
def settings(db_url, tmp_path, redis_server, monkeypatch):
    """The web app and the job's app read one config file, as under systemd."""
    config = tmp_path / "edge.toml"
    write_toml(config, {"secret_key": SECRET_KEY, "database_url": db_url, "data_dir": str(tmp_path / "data"),
                        "redis_url": redis_server.url, "queue_name": f"test-import-{uuid.uuid4().hex[:12]}",
                        "testing": True, "discovery": {"enabled": False}, "max_chunk_bytes": 256 * 1024,
                        "storage": {"directory": str(tmp_path / "central")}})
    monkeypatch.setenv("EXAMKIOSK_EDGE_CONFIG", str(config))
    monkeypatch.setattr(context, "_app", None)
    with clean_environment():
        loaded = load_settings(config)
    yield loaded
    forget_job_app()


@pytest.fixture
def centre(app, live_server, settings):
    with app.app_context():
        make_sitting(db.session, CENTRE, "sit-1", name="上午场")
        create_user(db.session, "admin", PASSWORD, StaffRole.CENTRE_ADMIN, CENTRE)
        create_user(db.session, "proctor", PASSWORD, StaffRole.PROCTOR, CENTRE)
        db.session.commit()
    return live_server


def run_worker(settings) -> None:
    """A burst worker in this process: runs the queued descriptor job while the page polls."""
    redis = Redis.from_url(settings.redis_url)
    try:
        SimpleWorker([Queue(settings.queue_name, connection=redis)], connection=redis).work(
            burst=True, with_scheduler=False)
    finally:
        redis.close()


def upload(page, tmp_path: Path, name: str, csv_text: str, entries: dict[str, bytes], bom: bool = False) -> None:
    csv_path, zip_path = tmp_path / f"{name}.csv", tmp_path / f"{name}.zip"
    csv_path.write_bytes(("\ufeff" if bom else "").encode() + csv_text.encode())
    zip_path.write_bytes(zip_bytes(entries))
    page.set_input_files("input[name=csv_file]", str(csv_path))
    page.set_input_files("input[name=zip_file]", str(zip_path))
    page.click("[data-action=upload-import]")


def problems_by_line(page) -> dict[int, list[str]]:
    result = {}
    for row in page.query_selector_all("[data-list=import-rows] tbody tr"):
        result[int(row.get_attribute("data-line"))] = [p.get_attribute("data-problem")
                                                       for p in row.query_selector_all("[data-problem]")]
    return result


def candidates(app) -> dict[str, Candidate]:
    with app.app_context():
        rows = db.session.scalars(select(Candidate)).all()
        for row in rows:
            db.session.expunge(row)
        return {c.ticket_no: c for c in rows}


def test_bad_then_good_import(app, centre, settings, photos, chromium, tmp_path):
    base = centre
    page = chromium.new_page()
    sign_in(page, base, "admin", PASSWORD)
    page.click("[data-action=sittings]")
    page.click("[data-sitting=sit-1] [data-action=import-candidates]")
    bad_csv = "\n".join([
        "ticket_no,name,id_number",
        f"20240001,张明,{id_number(1)}",   # line 2: duplicate of line 6
        f"20240002,李华,{id_number(2)}",   # line 3: no photo in the ZIP
        f"20240003,王芳,{id_number(3)}",   # line 4: no face
        f"20240004,赵强,{id_number(4)}",   # line 5: two faces
        f"20240001,张明,{id_number(1)}",   # line 6: duplicate of line 2
        f"20240005,钱六,{id_number(5)}",   # line 7: fine
        "20240006,孙七,110105199003070061",  # line 8: bad checksum
    ]) + "\n"
    upload(page, tmp_path, "bad", bad_csv, {"20240001.jpg": photos["obama"], "20240003.jpg": photos["blank"],
                                            "photos/20240004.jpg": photos["pair"], "20240005.jpg": photos["biden"],
                                            "20240006.jpg": photos["obama2"]})
    page.wait_for_selector("[data-import][data-status=analysing] [data-progress]")
    assert page.inner_text("[data-field=progress-text]") == "0 / 6"  # line 6 shares line 2's photo
    # What the CSV and the ZIP's names tell is there before any photo was looked at.
    early = problems_by_line(page)
    assert early[3] == ["missing_photo"] and early[8] == ["bad_id_number"] and early[6] == ["duplicate_ticket"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "import_progress.png"), full_page=True)

    run_worker(settings)
    page.wait_for_selector("[data-import][data-status=ready]", timeout=15000)
    assert problems_by_line(page) == {2: ["duplicate_ticket"], 3: ["missing_photo"], 4: ["no_face"],
                                      5: ["several_faces"], 6: ["duplicate_ticket"], 7: [], 8: ["bad_id_number"]}
    assert "also on line 6" in page.inner_text("[data-line='2']")
    assert "checksum" in page.inner_text("[data-line='8']")
    assert "7 rows: 1 ready, 6 with problems" in page.inner_text("[data-field=summary]")
    page.screenshot(path=str(ARTIFACTS / "import_report.png"), full_page=True)
    assert candidates(app) == {}  # nothing written before the confirmation

    page.click("[data-action=confirm-import]")
    assert "1 candidates imported" in page.inner_text("[data-field=imported]")
    stored = candidates(app)
    assert list(stored) == ["20240005"]
    only = stored["20240005"]
    assert (only.name, only.id_number, only.sitting_id) == ("钱六", id_number(5), "sit-1")
    assert len(only.descriptor) == 128 and Path(only.photo_path).read_bytes() == photos["biden"]
    assert Path(only.photo_path).parent == settings.data_dir / "photos"

    # The good list: UTF-8 with a BOM, Chinese headers, the rows fixed.
    page.click("[data-action=new-import]")
    good_csv = "\n".join(["准考证号,姓名,身份证号", f"20240001,张明,{id_number(1)}",
                          f"20240002,李华,{id_number(2)}"]) + "\n"
    upload(page, tmp_path, "good", good_csv, {"20240001.jpg": photos["obama"], "20240002.jpeg": photos["obama2"]},
           bom=True)
    page.wait_for_selector("[data-import][data-status=analysing]")
    run_worker(settings)
    page.wait_for_selector("[data-import][data-status=ready]", timeout=15000)
    assert problems_by_line(page) == {2: [], 3: []}
    page.click("[data-action=confirm-import]")
    assert "2 candidates imported" in page.inner_text("[data-field=imported]")
    page.screenshot(path=str(ARTIFACTS / "import_confirmed.png"), full_page=True)
    page.close()

    stored = candidates(app)
    assert sorted(stored) == ["20240001", "20240002", "20240005"]
    from examkiosk_wire.face import face_distance

    assert face_distance(stored["20240001"].descriptor, stored["20240002"].descriptor) < 0.6  # both Obama
    assert face_distance(stored["20240001"].descriptor, stored["20240005"].descriptor) > 0.6
    assert list((settings.data_dir / "imports").iterdir()) == []  # staging is gone once confirmed
    with app.app_context():
        kinds = [e.kind for e in db.session.scalars(select(Event).order_by(Event.id))]
        assert kinds.count("candidate_import_uploaded") == 2 and kinds.count("candidates_imported") == 2
        first = db.session.scalars(select(Event).where(Event.kind == "candidates_imported").order_by(Event.id)).first()
        assert first.payload["tickets"] == ["20240005"] and first.payload["skipped_lines"] == [2, 3, 4, 5, 6, 8]
        assert first.payload["by"] == "admin"


@pytest.mark.parametrize("entry", ["../20240001.jpg", "/tmp/20240001.jpg"])
def test_unsafe_zip_names_are_refused(app, centre, settings, photos, entry):
    base = centre
    admin, _ = csrf_session(base, "admin")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      admin.get(f"{base}/staff/sittings/sit-1/import").text).group(1)
    files = {"csv_file": ("list.csv", f"ticket_no,name,id_number\n20240001,张明,{id_number(1)}\n".encode()),
             "zip_file": ("../../photos.zip", zip_bytes({"20240002.jpg": photos["obama"], entry: photos["obama"]}))}
    r = admin.post(f"{base}/staff/sittings/sit-1/import", data={"csrf_token": token}, files=files)
    assert r.status_code == 400
    assert "Unsafe file name in the ZIP" in r.text and entry in r.text
    assert not (settings.data_dir / "imports").exists() or list((settings.data_dir / "imports").iterdir()) == []
    assert not (settings.data_dir.parent / "20240001.jpg").exists()
    with app.app_context():
        assert db.session.scalars(select(CandidateImport)).all() == []
    # Without the form's token, and for a proctor, nothing is accepted either.
    assert admin.post(f"{base}/staff/sittings/sit-1/import", files=files).status_code == 400
    proctor, token = csrf_session(base, "proctor")
    assert proctor.post(f"{base}/staff/sittings/sit-1/import", data={"csrf_token": token},
                        files=files).status_code == 403
    assert requests.get(f"{base}/staff/sittings/sit-1/import").url.endswith("/staff/login?next=%2Fstaff%2Fsittings%2Fsit-1%2Fimport")
