"""Candidate import: upload, preview, descriptors in an RQ job, confirm.

1. :func:`start` reads the CSV and the ZIP (services/roster.py), stores them in a staging
   directory ``<data_dir>/imports/<id>`` whose name is the import's random id (never anything the
   upload named), extracts each row's photo there as ``photos/<line><suffix>`` and records the
   preview, one entry per row with its problems. Nothing is written to the candidates yet.
2. The RQ job (jobs/candidates.py) runs :func:`analyse`: for each row's photo the one descriptor
   code path (services/enrolment.photo_descriptor) gives the descriptor or the problem (no face,
   several faces, unreadable); ``done`` counts up for the progress bar. Safe to run twice.
3. :func:`confirm` writes every valid row (no problem, a descriptor) in the caller's transaction,
   each row whole: the candidate, its descriptor and its photo under ``<data_dir>/photos``.
   Rows with problems are left out and stay listed in the report; fix them and upload them again.
"""
from __future__ import annotations

import shutil
import zipfile
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.errors import Conflict, EdgeError, NotFound
from edge_server.models import Candidate, CandidateImport, ImportStatus, Sitting, StaffUser
from edge_server.services import audit, roster
from edge_server.services.enrolment import photo_descriptor, stored_photo_path

IMPORTS_DIR = "imports"
PHOTOS_DIR = "photos"
FACE_PROBLEMS = ("no_face", "several_faces", "photo_unreadable")


def staging_dir(data_dir: Path, import_id: str) -> Path:
    return data_dir / IMPORTS_DIR / import_id


def photos_dir(data_dir: Path) -> Path:
    return data_dir / PHOTOS_DIR


def start(session: Session, data_dir: Path, sitting: Sitting, csv_data: bytes, zip_file: IO[bytes],
          staff: StaffUser) -> CandidateImport:
    """Check the upload and stage it; RosterError (nothing staged) if the files cannot be used."""
    records = roster.parse_csv(csv_data)
    try:
        archive = zipfile.ZipFile(zip_file)
    except (zipfile.BadZipFile, OSError) as exc:
        raise roster.RosterError("照片文件不是 ZIP · The photo file is not a ZIP archive") from exc
    with archive:
        photos = roster.photo_entries(archive)
        enrolled = set(session.scalars(select(Candidate.ticket_no).where(Candidate.centre_id == sitting.centre_id)))
        rows = roster.check_rows(records, photos, enrolled)
        imp = CandidateImport(centre_id=sitting.centre_id, sitting_id=sitting.id, created_by=staff.id)
        session.add(imp)
        session.flush()
        stage = staging_dir(data_dir, imp.id)
        (stage / PHOTOS_DIR).mkdir(parents=True)
        try:
            (stage / "candidates.csv").write_bytes(csv_data)
            entries = []
            for row in rows:
                entry = row.as_json()
                if row.photo is not None:
                    entry["staged"] = _extract(archive, row.photo, stage / PHOTOS_DIR, row.line)
                entries.append(entry)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
            shutil.rmtree(stage, ignore_errors=True)
            raise roster.RosterError(f"ZIP 无法解压 · The ZIP cannot be extracted: {exc}") from exc
    imp.rows = entries
    imp.total = sum(1 for e in entries if e.get("staged"))
    imp.status = ImportStatus.ANALYSING if imp.total else ImportStatus.READY
    audit.append(session, kind="candidate_import_uploaded", station_id=None, attempt_id=None, source="staff",
                 payload={"import": imp.id, "sitting": sitting.id, "by": staff.username, "rows": len(entries),
                          "rows_with_problems": sum(1 for e in entries if e["problems"])})
    return imp


def _extract(archive: zipfile.ZipFile, entry: str, target_dir: Path, line: int) -> str:
    """Copy one ZIP entry to ``<target_dir>/<line><suffix>``, at most MAX_PHOTO_BYTES; the file's name."""
    suffix = Path(entry.replace("\\", "/")).suffix.lower()
    name = f"{line}{suffix}"
    with archive.open(entry) as src, open(target_dir / name, "wb") as dst:
        data = src.read(roster.MAX_PHOTO_BYTES + 1)
        if len(data) > roster.MAX_PHOTO_BYTES:
            raise RuntimeError(f"{entry!r} is larger than it claims")
        dst.write(data)
    return name


def get_import(session: Session, centre_id: str, import_id: str) -> CandidateImport:
    imp = session.get(CandidateImport, import_id)
    if imp is None or imp.centre_id != centre_id:
        raise NotFound("no such import", code="import_unknown")
    return imp


def analyse(session: Session, imp: CandidateImport, data_dir: Path) -> None:
    """Compute each staged photo's descriptor (or its problem), committing after each photo."""
    stage = staging_dir(data_dir, imp.id) / PHOTOS_DIR
    for index, entry in enumerate(imp.rows):
        if not entry.get("staged") or entry.get("analysed"):
            continue
        entry = dict(entry)
        try:
            entry["descriptor"] = photo_descriptor(stage / entry["staged"])
        except EdgeError as exc:
            code = exc.code if exc.code in FACE_PROBLEMS else "photo_unreadable"
            entry["problems"] = [*entry["problems"], roster.problem(code)]
        entry["analysed"] = True
        rows = list(imp.rows)
        rows[index] = entry
        imp.rows = rows  # a new list: the JSON column sees the change
        imp.done = sum(1 for e in rows if e.get("analysed"))
        session.commit()
    if imp.status == ImportStatus.ANALYSING:
        imp.status = ImportStatus.READY
        session.commit()


def summary(imp: CandidateImport) -> dict[str, Any]:
    valid = [e for e in imp.rows if not e["problems"] and e.get("descriptor")]
    return {"id": imp.id, "status": str(imp.status), "done": imp.done, "total": imp.total,
            "percent": 100 if not imp.total else round(100 * imp.done / imp.total),
            "rows": len(imp.rows), "valid": len(valid), "with_problems": sum(1 for e in imp.rows if e["problems"]),
            "imported": imp.imported, "error": imp.error}


def confirm(session: Session, imp: CandidateImport, data_dir: Path, staff: StaffUser,
            now: datetime) -> list[Path]:
    """Write every valid row; returns the photos copied (the caller removes them if its commit fails)."""
    if imp.status == ImportStatus.CONFIRMED:
        raise Conflict("这次导入已确认过 · This import was confirmed already", code="import_confirmed")
    if imp.status != ImportStatus.READY:
        raise Conflict("照片还在检查中 · The photos are still being checked", code="import_not_ready")
    enrolled = set(session.scalars(select(Candidate.ticket_no).where(Candidate.centre_id == imp.centre_id)))
    valid = [e for e in imp.rows if not e["problems"] and e.get("descriptor")]
    taken = sorted(e["ticket_no"] for e in valid if e["ticket_no"] in enrolled)
    if taken:  # enrolled by someone else since the preview
        raise Conflict(f"以下准考证号已登记，请重新上传 · Already enrolled since the preview, upload again: "
                       f"{', '.join(taken)}", code="ticket_exists")
    if not valid:
        raise Conflict("没有可导入的考生 · No row can be imported", code="nothing_to_import")
    stage = staging_dir(data_dir, imp.id) / PHOTOS_DIR
    target = photos_dir(data_dir)
    target.mkdir(parents=True, exist_ok=True)
    copied: list[Path] = []
    try:
        for entry in valid:
            photo = stored_photo_path(target, imp.centre_id, entry["ticket_no"], Path(entry["staged"]).suffix)
            shutil.copyfile(stage / entry["staged"], photo)
            copied.append(photo)
            session.add(Candidate(centre_id=imp.centre_id, sitting_id=imp.sitting_id, ticket_no=entry["ticket_no"],
                                  name=entry["name"], id_number=entry["id_number"], photo_path=str(photo),
                                  descriptor=entry["descriptor"]))
        imp.status = ImportStatus.CONFIRMED
        imp.confirmed_at = now
        imp.imported = len(valid)
        session.flush()
    except Exception:
        for path in copied:
            path.unlink(missing_ok=True)
        raise
    audit.append(session, kind="candidates_imported", station_id=None, attempt_id=None, source="staff",
                 payload={"import": imp.id, "sitting": imp.sitting_id, "by": staff.username,
                          "tickets": [e["ticket_no"] for e in valid],
                          "skipped_lines": [e["line"] for e in imp.rows if e["problems"]]})
    return copied


def discard_staging(data_dir: Path, import_id: str) -> None:
    shutil.rmtree(staging_dir(data_dir, import_id), ignore_errors=True)
