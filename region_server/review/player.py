"""The player page's content for one attempt and question, for staff and for markers alike.

The caller says how to link (``question_url``, ``media_url``) and what to call the attempt
(``heading``): staff see the centre, sitting and lot, a marker only the lot. Everything else on the
page comes from ``timeline`` and carries no name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from examkiosk_wire.central import AttemptManifest
from region_server.models import Attempt
from region_server.review import timeline
from region_server.review.timeline import FlagMark, QuestionView


@dataclass(frozen=True)
class Chapter:
    number: int
    label: str
    url: str
    current: bool


@dataclass(frozen=True)
class PlayerPage:
    heading: str
    view: QuestionView
    chapters: list[Chapter]
    main_url: str | None
    evidence_url: str | None
    evidence_camera: str | None

    @property
    def marks(self) -> list[FlagMark]:
        return self.view.marks


def manifest_of(attempt: Attempt) -> AttemptManifest:
    """The attempt's manifest as the indexer stored it (already parsed and checked once)."""
    return AttemptManifest.model_validate(attempt.manifest)


def _file_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def player_page(manifest: AttemptManifest, number: int | None, *, heading: str,
                question_url: Callable[[int], str], media_url: Callable[[str], str]) -> PlayerPage | None:
    """The page of question ``number`` (None: the first), or None when the attempt has no such question."""
    views = timeline.questions(manifest)
    if not views:
        return None
    view = views[0] if number is None else next((v for v in views if v.number == number), None)
    if view is None:
        return None
    chapters = [Chapter(v.number, v.label, question_url(v.number), v.number == view.number) for v in views]
    return PlayerPage(
        heading=heading, view=view, chapters=chapters,
        main_url=media_url(_file_name(view.main.key)) if view.main else None,
        evidence_url=media_url(_file_name(view.evidence.key)) if view.evidence else None,
        evidence_camera=view.evidence.camera if view.evidence else None,
    )


def first_question(manifest: AttemptManifest) -> int | None:
    views = timeline.questions(manifest)
    return views[0].number if views else None
