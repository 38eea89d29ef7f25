"""What the kiosk reads of a watch-back: the films to play, the chapters, the check's figures."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from station.playback.plan import Chapter


@dataclass(frozen=True)
class Film:
    """One camera's remuxed MP4: ``offset`` seconds later than the main camera's film it starts."""

    camera: str
    path: Path
    seconds: float
    offset: float
    audio: bool
    missing: int  # segments of this camera whose file retention deleted


@dataclass(frozen=True)
class Figures:
    """What the check found: seconds recorded while answering (main camera) against the sitting's
    answering time, the waiting room's seconds, the microphone's loudest level while recording
    (0..1 as ``station.capture.audio.level``; None when the station does not know it, e.g. after a
    restart), the segments the edge verified out of those it expected, and how many segments this
    station journaled (and of them, how many have no file left)."""

    recorded_seconds: float
    expected_seconds: float | None
    waiting_seconds: float
    loudest_level: float | None
    verified: int
    expected_segments: int
    segments: int
    missing: int


@dataclass(frozen=True)
class Watchback:
    attempt: str
    token: str  # names this preparation of the films (the page's URLs carry it)
    films: tuple[Film, ...]  # the main camera first
    chapters: tuple[Chapter, ...]
    figures: Figures
