"""Candidate lists as uploaded: the CSV, the ZIP of photos, and each row's problems. Pure.

The CSV is UTF-8, with or without a byte-order mark, comma separated, with a header row naming
the columns ``ticket_no`` (准考证号), ``name`` (姓名) and ``id_number`` (身份证号) in any order;
other columns are ignored. The ZIP holds one photo per candidate named by ticket number
(``20240001.jpg``, ``.jpeg`` or ``.png``, in any folder of the ZIP). An entry whose name is
absolute or climbs out with ``..`` makes the whole ZIP unusable: nothing of it is used.
"""
from __future__ import annotations

import csv
import io
import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from edge_server.errors import EdgeError
from edge_server.services.id_numbers import id_number_problem

COLUMNS = ("ticket_no", "name", "id_number")
HEADER_ALIASES = {"准考证号": "ticket_no", "姓名": "name", "身份证号": "id_number"}
TICKET_NO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # as examkiosk_wire.tickets.TICKET_NO_PATTERN
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_ROWS = 5000
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_ZIP_ENTRIES = 10000
MAX_NAME = 100

MESSAGES = {
    "missing_field": "缺少{detail} · Missing {detail}",
    "bad_ticket": "准考证号格式不正确 · Bad ticket number (letters, digits, - and _, at most 32)",
    "duplicate_ticket": "准考证号重复（第 {detail} 行）· Duplicate ticket number (also on line {detail})",
    "ticket_exists": "准考证号已登记 · Ticket number already enrolled at this centre",
    "bad_id_number": "身份证号无效 · Bad ID number: {detail}",
    "name_too_long": f"姓名过长 · Name longer than {MAX_NAME} characters",
    "bad_name": "姓名含控制字符 · The name holds control characters (a NUL, a line break, ...)",
    "missing_photo": "ZIP 中没有照片 · No photo in the ZIP",
    "two_photos": "ZIP 中有多张照片 · More than one photo for this ticket number",
    "no_face": "照片中未检测到人脸 · No face found in the photo",
    "several_faces": "照片中有多张人脸 · More than one face in the photo",
    "photo_unreadable": "照片无法读取 · The photo cannot be read",
}
ID_PROBLEMS = {"length": "须为 18 位 · must be 18 characters", "characters": "含非法字符 · bad characters",
               "birth_date": "出生日期无效 · bad birth date", "checksum": "校验位错误 · checksum"}


class RosterError(EdgeError):
    """The upload as a whole cannot be used (the message says why)."""

    code = "bad_upload"


def problem(code: str, detail: str = "") -> dict[str, str]:
    return {"code": code, "text": MESSAGES[code].format(detail=detail)}


@dataclass
class Row:
    line: int  # line number in the CSV (the header is line 1)
    ticket_no: str
    name: str
    id_number: str
    photo: str | None = None  # the ZIP entry's name
    problems: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "ticket_no": self.ticket_no, "name": self.name, "id_number": self.id_number,
                "photo": self.photo, "problems": self.problems, "analysed": False, "descriptor": None}


def parse_csv(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """``(line, {column: value})`` for every non-empty row; RosterError if the file cannot be read."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RosterError(f"CSV 不是 UTF-8 编码 · The CSV is not UTF-8 (byte {exc.start})") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise RosterError("CSV 是空的 · The CSV is empty")
        names = [HEADER_ALIASES.get(h.strip(), h.strip().lower()) for h in header]
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise RosterError(f"CSV 缺少列 · The CSV lacks the column(s): {', '.join(missing)} "
                              f"(header: {', '.join(h.strip() for h in header)})")
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise RosterError(f"CSV 行数超过 {MAX_ROWS} · More than {MAX_ROWS} rows")
            record = {c: (values[names.index(c)].strip() if names.index(c) < len(values) else "") for c in COLUMNS}
            rows.append((reader.line_num, record))
    except csv.Error as exc:
        raise RosterError(f"CSV 格式错误 · The CSV cannot be read (line {reader.line_num}): {exc}") from exc
    if not rows:
        raise RosterError("CSV 没有考生 · The CSV has no candidates")
    return rows


def unsafe_entry(name: str) -> bool:
    """True for a ZIP entry name that is absolute or climbs out of the folder it is extracted to."""
    normal = name.replace("\\", "/")
    return (normal.startswith("/") or re.match(r"^[A-Za-z]:", normal) is not None or "\x00" in normal
            or ".." in PurePosixPath(normal).parts)


def photo_entries(archive: zipfile.ZipFile) -> dict[str, list[zipfile.ZipInfo]]:
    """ZIP entries of photos by ticket number; RosterError for an unsafe or oversized entry."""
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise RosterError(f"ZIP 文件过多 · More than {MAX_ZIP_ENTRIES} entries in the ZIP")
    photos: dict[str, list[zipfile.ZipInfo]] = {}
    for info in infos:
        if unsafe_entry(info.filename):
            raise RosterError(f"ZIP 中的文件名不安全，已拒绝整个 ZIP · Unsafe file name in the ZIP, the ZIP is "
                              f"refused: {info.filename!r}", code="unsafe_zip_entry")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise RosterError(f"ZIP 中有符号链接 · The ZIP holds a symbolic link: {info.filename!r}",
                              code="unsafe_zip_entry")
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if info.is_dir() or path.name.startswith(".") or "__MACOSX" in path.parts:
            continue
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            continue
        if info.file_size > MAX_PHOTO_BYTES:
            raise RosterError(f"照片过大 · Photo larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MB: {info.filename!r}")
        photos.setdefault(path.stem, []).append(info)
    return photos


def check_rows(records: list[tuple[int, dict[str, str]]], photos: dict[str, list[Any]],
               enrolled: set[str]) -> list[Row]:
    """Each CSV row with every problem found without looking at the photos' content."""
    lines: dict[str, list[int]] = {}
    for line, record in records:
        lines.setdefault(record["ticket_no"], []).append(line)
    rows: list[Row] = []
    for line, record in records:
        row = Row(line=line, ticket_no=record["ticket_no"], name=record["name"],
                  id_number=record["id_number"].upper())
        for column, label in (("ticket_no", "准考证号 ticket number"), ("name", "姓名 name"),
                              ("id_number", "身份证号 ID number")):
            if not record[column]:
                row.problems.append(problem("missing_field", label))
        if row.ticket_no:
            if not TICKET_NO.fullmatch(row.ticket_no):
                row.problems.append(problem("bad_ticket"))
            elif len(lines[row.ticket_no]) > 1:  # every copy: which one is right is for a person to say
                others = ", ".join(str(n) for n in lines[row.ticket_no] if n != line)
                row.problems.append(problem("duplicate_ticket", others))
            elif row.ticket_no in enrolled:
                row.problems.append(problem("ticket_exists"))
        if len(row.name) > MAX_NAME:
            row.problems.append(problem("name_too_long"))
        if any(unicodedata.category(ch) == "Cc" for ch in row.name):
            row.problems.append(problem("bad_name"))
        if row.id_number:
            why = id_number_problem(row.id_number)
            if why:
                row.problems.append(problem("bad_id_number", ID_PROBLEMS[why]))
        entries = photos.get(row.ticket_no, []) if row.ticket_no else []
        if not entries:
            row.problems.append(problem("missing_photo"))
        elif len(entries) > 1:
            row.problems.append(problem("two_photos"))
        else:
            row.photo = entries[0].filename
        rows.append(row)
    return rows
