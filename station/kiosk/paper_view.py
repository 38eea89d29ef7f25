"""What the kiosk shows of the opened paper (F8, F21), and which of its images it may serve. Pure.

The station opens the sealed paper at the start and keeps it in memory only (``KioskView.paper``, the
plaintext documented in ``edge_server/services/paper_format.py``). A question's ``text`` is its
first page and ``pages`` the pages after it; its ``images`` carry their bytes inline as base64. The
kiosk page gets the pages as text and each image as a URL (``/paper/q/<n>/image/<i>``) that the
kiosk's own server answers from that memory: only while the candidate is answering, and only for
the current question or one already answered. Nothing of the paper is written to disk in the clear.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any, Mapping

# What the kiosk serves; the edge admits only these at import (paper_format.IMAGE_TYPES).
SERVED_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


class NotServed(Exception):
    """The image is not served now; ``status`` is the HTTP answer (404 nothing open, 403 not reached)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def image_url(position: int, index: int) -> str:
    return f"/paper/q/{position}/image/{index}"


def find_question(paper: Mapping[str, Any] | None, position: int) -> Mapping[str, Any] | None:
    if not paper:
        return None
    return next((q for q in paper.get("questions", []) if q.get("position") == position), None)


def question_view(paper: Mapping[str, Any] | None, position: int) -> dict[str, Any]:
    """The answering screen's paper part: title, instructions, the question's pages and image URLs."""
    question = find_question(paper, position)
    if question is None:
        return {"title": (paper or {}).get("title"), "instructions": (paper or {}).get("instructions"),
                "text": None, "pages": [], "images": []}
    pages = [question["text"], *question.get("pages", [])]
    return {
        "title": paper.get("title"), "instructions": paper.get("instructions"),
        "position": position,
        "text": question["text"],
        "pages": pages,
        "images": [{"url": image_url(position, index), "name": image.get("name", "")}
                   for index, image in enumerate(question.get("images", []), start=1)],
    }


def served_image(paper: Mapping[str, Any] | None, answering: bool, current: int, answered: Iterable[int],
                 position: int, index: int) -> tuple[str, bytes]:
    """``(media_type, data)`` of question ``position``'s image ``index`` (1-based), or :class:`NotServed`.

    Before the start (no paper open) and once the candidate is no longer answering nothing is
    served (404); a question the candidate has not reached is refused (403)."""
    if not paper or not answering:
        raise NotServed(404, "no paper is open")
    question = find_question(paper, position)
    if question is None:
        raise NotServed(404, "no such question")
    if position != current and position not in set(answered):
        raise NotServed(403, "this question has not been reached")
    images = question.get("images", [])
    if not 1 <= index <= len(images):
        raise NotServed(404, "no such image")
    image = images[index - 1]
    media_type = image.get("media_type")
    if media_type not in SERVED_TYPES:
        raise NotServed(404, "not an image the kiosk shows")
    try:
        data = base64.b64decode(image.get("data", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NotServed(404, "the image in the paper is damaged") from exc
    return media_type, data
