"""The exam paper file a centre admin imports, and its validation. Pure: bytes in, paper out.

A paper is one JSON or YAML document::

    title: 结构化面谈            # required, 1-200 characters
    instructions: 每题回答完毕后请说“回答完毕”。   # optional, up to 5000 characters
    questions:                   # required, 1-50 questions, shown in this order
      - text: 请谈谈你对服务基层的理解。   # required, up to 5000 characters: the question's first page
        seconds: 300             # required, whole seconds, 10-7200 (the per-question countdown)
        pages:                   # optional, up to 20 more pages of text, shown after ``text``
          - 材料：……
        images:                  # optional, up to 10 pictures shown with the question
          - figures/chart.png

The upload is either

- the document alone: ``paper.json``, ``paper.yaml`` or ``paper.yml`` (any name ending so), UTF-8;
  a paper without images needs nothing else; or
- a ZIP archive holding exactly one ``paper.json`` / ``paper.yaml`` / ``paper.yml`` at its root and
  every image it names, by its path inside the archive (``figures/chart.png``). Images are PNG,
  JPEG, GIF or WebP (recognised by their content), at most 5 MB each and 20 MB in all.

Keys not listed above are refused (a typo such as ``secs`` would otherwise lose the time limit).
Every problem is reported, each with where it is (``questions[2].seconds: ...``), and nothing is
stored unless the whole file is valid.

The sealed plaintext (what :func:`PaperContent.to_plaintext` returns and the station opens) is
UTF-8 JSON: ``{"format": 1, "title", "instructions", "questions": [{"position", "text",
"seconds", "pages": [...], "images": [{"name", "media_type", "data"}]}]}`` with each image's bytes
inline as base64 in ``data``.
"""
from __future__ import annotations

import base64
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

FORMAT_VERSION = 1
DOCUMENT_NAMES = ("paper.json", "paper.yaml", "paper.yml")
MAX_TITLE = 200
MAX_TEXT = 5000
MAX_QUESTIONS = 50
MAX_PAGES = 20
MAX_IMAGES = 10
MIN_SECONDS, MAX_SECONDS = 10, 7200
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGES_BYTES = 20 * 1024 * 1024

PAPER_KEYS = ("title", "instructions", "questions")
QUESTION_KEYS = ("text", "seconds", "pages", "images")
IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))


class PaperFormatError(Exception):
    """The file is not a valid paper; ``problems`` holds one clear message per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PaperImage:
    name: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class PaperQuestion:
    position: int
    text: str
    seconds: int
    pages: tuple[str, ...] = ()
    images: tuple[PaperImage, ...] = ()


@dataclass(frozen=True)
class PaperContent:
    title: str
    instructions: str
    questions: tuple[PaperQuestion, ...] = field(default_factory=tuple)

    @property
    def question_seconds(self) -> list[int]:
        return [q.seconds for q in self.questions]

    def to_plaintext(self) -> bytes:
        return json.dumps({
            "format": FORMAT_VERSION, "title": self.title, "instructions": self.instructions,
            "questions": [{
                "position": q.position, "text": q.text, "seconds": q.seconds, "pages": list(q.pages),
                "images": [{"name": i.name, "media_type": i.media_type, "data": base64.b64encode(i.data).decode()}
                           for i in q.images],
            } for q in self.questions],
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def image_type(data: bytes) -> str | None:
    for magic, media_type in IMAGE_TYPES:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def parse_paper_file(filename: str, data: bytes) -> PaperContent:
    """The paper in an uploaded file (JSON, YAML, or a ZIP of either with its images)."""
    name = (filename or "").lower()
    if not data:
        raise PaperFormatError(["the file is empty"])
    if name.endswith(".zip") or data.startswith(b"PK\x03\x04"):
        return _parse_zip(data)
    if name.endswith(".json"):
        return _validate(_load_json(data), images={})
    if name.endswith((".yaml", ".yml")):
        return _validate(_load_yaml(data), images={})
    raise PaperFormatError([f"{filename or 'the file'}: not a paper file; upload a .json, .yaml/.yml or .zip file"])


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PaperFormatError([f"{where}: not UTF-8 text (byte {exc.start})"]) from exc


def _load_json(data: bytes, where: str = "the file") -> Any:
    try:
        return json.loads(_text(data, where))
    except json.JSONDecodeError as exc:
        raise PaperFormatError([f"{where} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"]) from exc


def _load_yaml(data: bytes, where: str = "the file") -> Any:
    import yaml

    try:
        return yaml.safe_load(_text(data, where))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1} column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PaperFormatError([f"{where} is not valid YAML:{at} {problem}"]) from exc


def _parse_zip(data: bytes) -> PaperContent:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise PaperFormatError(["the file is not a readable ZIP archive"]) from exc
    with archive:
        members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
        documents = [n for n in members if n in DOCUMENT_NAMES]
        if len(documents) != 1:
            found = ", ".join(documents) if documents else "none"
            raise PaperFormatError([f"the ZIP archive must hold exactly one of {', '.join(DOCUMENT_NAMES)} at its "
                                    f"root (found: {found})"])
        document = documents[0]
        raw = archive.read(document)
        doc = _load_json(raw, document) if document.endswith(".json") else _load_yaml(raw, document)
        total = sum(info.file_size for n, info in members.items() if n != document)
        if total > MAX_IMAGES_BYTES:
            raise PaperFormatError([f"the images add up to {total} bytes; at most {MAX_IMAGES_BYTES} are allowed"])

        def read(path: str) -> bytes | None:
            info = members.get(path)
            if info is None or info.file_size > MAX_IMAGE_BYTES:
                return None
            return archive.read(info)

        return _validate(doc, images={n: i.file_size for n, i in members.items() if n != document}, read=read)


def _validate(doc: Any, *, images: dict[str, int], read=None) -> PaperContent:
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise PaperFormatError(["the paper must be a mapping with title, instructions and questions"])
    for key in doc:
        if key not in PAPER_KEYS:
            problems.append(f"unknown key {key!r} (allowed: {', '.join(PAPER_KEYS)})")
    title = doc.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append("title: required, a non-empty text")
    elif len(title) > MAX_TITLE:
        problems.append(f"title: {len(title)} characters; at most {MAX_TITLE}")
    instructions = doc.get("instructions", "")
    if instructions is None:
        instructions = ""
    if not isinstance(instructions, str):
        problems.append("instructions: must be text")
    elif len(instructions) > MAX_TEXT:
        problems.append(f"instructions: {len(instructions)} characters; at most {MAX_TEXT}")
    raw_questions = doc.get("questions")
    questions: list[PaperQuestion] = []
    if not isinstance(raw_questions, list) or not raw_questions:
        problems.append("questions: required, a list of at least one question")
        raw_questions = []
    elif len(raw_questions) > MAX_QUESTIONS:
        problems.append(f"questions: {len(raw_questions)} questions; at most {MAX_QUESTIONS}")
    for index, raw in enumerate(raw_questions, start=1):
        question = _question(raw, index, problems, images, read)
        if question is not None:
            questions.append(question)
    if problems:
        raise PaperFormatError(problems)
    return PaperContent(title=title.strip(), instructions=instructions, questions=tuple(questions))


def _question(raw: Any, index: int, problems: list[str], images: dict[str, int], read) -> PaperQuestion | None:
    where = f"questions[{index}]"
    before = len(problems)
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping with text and seconds")
        return None
    for key in raw:
        if key not in QUESTION_KEYS:
            problems.append(f"{where}: unknown key {key!r} (allowed: {', '.join(QUESTION_KEYS)})")
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where}.text: required, a non-empty text")
    elif len(text) > MAX_TEXT:
        problems.append(f"{where}.text: {len(text)} characters; at most {MAX_TEXT}")
    seconds = raw.get("seconds")
    if "seconds" not in raw:
        problems.append(f"{where}.seconds: required, whole seconds from {MIN_SECONDS} to {MAX_SECONDS}")
    elif isinstance(seconds, bool) or not isinstance(seconds, int) or not MIN_SECONDS <= seconds <= MAX_SECONDS:
        problems.append(f"{where}.seconds: {seconds!r} is not whole seconds from {MIN_SECONDS} to {MAX_SECONDS}")
    pages = raw.get("pages") or []
    if not isinstance(pages, list):
        problems.append(f"{where}.pages: must be a list of texts")
        pages = []
    elif len(pages) > MAX_PAGES:
        problems.append(f"{where}.pages: {len(pages)} pages; at most {MAX_PAGES}")
    for p, page in enumerate(pages, start=1):
        if not isinstance(page, str) or not page.strip():
            problems.append(f"{where}.pages[{p}]: must be a non-empty text")
        elif len(page) > MAX_TEXT:
            problems.append(f"{where}.pages[{p}]: {len(page)} characters; at most {MAX_TEXT}")
    names = raw.get("images") or []
    loaded: list[PaperImage] = []
    if not isinstance(names, list):
        problems.append(f"{where}.images: must be a list of file names")
        names = []
    elif len(names) > MAX_IMAGES:
        problems.append(f"{where}.images: {len(names)} images; at most {MAX_IMAGES}")
    for i, name in enumerate(names, start=1):
        at = f"{where}.images[{i}]"
        if not isinstance(name, str) or not name:
            problems.append(f"{at}: must be a file name inside the ZIP archive")
            continue
        path = str(PurePosixPath(name))
        if read is None:
            problems.append(f"{at}: {name!r}: images come in a ZIP archive with the paper; upload a .zip")
            continue
        if path not in images:
            problems.append(f"{at}: {name!r} is not in the ZIP archive")
            continue
        if images[path] > MAX_IMAGE_BYTES:
            problems.append(f"{at}: {name!r} is {images[path]} bytes; at most {MAX_IMAGE_BYTES}")
            continue
        data = read(path)
        media_type = image_type(data or b"")
        if media_type is None:
            problems.append(f"{at}: {name!r} is not a PNG, JPEG, GIF or WebP image")
            continue
        loaded.append(PaperImage(PurePosixPath(path).name, media_type, data))
    if len(problems) > before:
        return None
    return PaperQuestion(position=index, text=text, seconds=seconds, pages=tuple(pages), images=tuple(loaded))
