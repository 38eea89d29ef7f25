"""What a watch-back plays and shows, from the journal's segments of one attempt (pure: no I/O).

Each camera's segments whose files are still on disk become one :class:`Track`: the segments in
sequence order, each placed at its server-time start (so a gap, e.g. a restart, stays a gap and
the cameras stay in sync). A track's file starts at its first segment; ``offset`` is how much
later than the main camera's that is. Chapters are the main camera's questions (the waiting room
first, then question 1, 2, ...), at their place in the main camera's file. The figures come from
every journaled segment, whether its file is left or not: seconds recorded (main camera, while
answering) against the seconds the sitting gives its questions.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from station.flow import Schedule, TimingMode
from station.playback.errors import WatchbackUnavailable

MAIN = "main"  # the camera with the microphone; the others are evidence cameras


class Segment(Protocol):
    """A journaled segment, as the plan needs it (``station.storage.journal.JournalSegment``)."""

    name: str
    camera: str
    seq: int
    question: int | None
    path: Path
    started_at: float
    ended_at: float


@dataclass(frozen=True)
class Piece:
    """One segment file, placed ``at`` seconds into its camera's file."""

    path: Path
    at: float
    seconds: float


@dataclass(frozen=True)
class Track:
    """One camera's file: its pieces, how much later than the main camera's file it starts, the
    seconds its pieces cover and how many of its segments have no file any more."""

    camera: str
    pieces: tuple[Piece, ...]
    offset: float
    seconds: float
    missing: int

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.path.name for p in self.pieces)


@dataclass(frozen=True)
class Chapter:
    """A question (None: the waiting room) at ``at`` seconds into the main camera's file, with the
    seconds recorded for it and, when the sitting times each question, the seconds it had."""

    question: int | None
    at: float
    seconds: float
    expected: float | None


@dataclass(frozen=True)
class Plan:
    tracks: tuple[Track, ...]  # the main camera first
    chapters: tuple[Chapter, ...]
    recorded_seconds: float  # main camera, questions 1.. (the waiting room not counted)
    waiting_seconds: float  # main camera, in the waiting room
    expected_seconds: float | None  # the sitting's answering time
    segments: int  # journaled segments, all cameras
    missing: int  # of them, without a file


def _seconds(segment: Segment) -> float:
    return max(0.0, segment.ended_at - segment.started_at)


def expected_seconds(schedule: Schedule | None) -> float | None:
    """The answering time the sitting gives: its questions' seconds, or the whole session's."""
    if schedule is None:
        return None
    return float(schedule.ends_at - schedule.starts_at)


def _track(camera: str, segments: Sequence[Segment], present: Collection[str], origin: float | None) -> Track | None:
    kept = [s for s in segments if s.name in present]
    if not kept:
        return None
    start = kept[0].started_at
    pieces = tuple(Piece(s.path, round(s.started_at - start, 3), round(_seconds(s), 3)) for s in kept)
    return Track(camera=camera, pieces=pieces, offset=round(start - (start if origin is None else origin), 3),
                 seconds=round(sum(p.seconds for p in pieces), 3), missing=len(segments) - len(kept))


def _chapters(main: Sequence[Segment], origin: float, schedule: Schedule | None) -> tuple[Chapter, ...]:
    starts: dict[int | None, float] = {}
    seconds: dict[int | None, float] = {}
    for s in main:
        starts.setdefault(s.question, s.started_at)
        seconds[s.question] = seconds.get(s.question, 0.0) + _seconds(s)
    per_question = schedule is not None and schedule.timing_mode == TimingMode.PER_QUESTION
    chapters = []
    for question, start in starts.items():
        expected = None
        if per_question and question is not None and 1 <= question <= schedule.questions:
            expected = float(schedule.question_seconds[question - 1])
        chapters.append(Chapter(question, round(max(0.0, start - origin), 3), round(seconds[question], 3), expected))
    return tuple(sorted(chapters, key=lambda c: c.at))


def plan(segments: Sequence[Segment], present: Collection[str], schedule: Schedule | None) -> Plan:
    """The watch-back of an attempt from its journaled ``segments``; ``present`` names those whose
    file is still on disk. WatchbackUnavailable when there is no segment (``no_recording``) or no
    file of the main camera is left (``recording_deleted``)."""
    if not segments:
        raise WatchbackUnavailable("no_recording", "this attempt has no recording on this station", 404)
    by_camera: dict[str, list[Segment]] = {}
    for s in sorted(segments, key=lambda s: (s.camera, s.seq)):
        by_camera.setdefault(s.camera, []).append(s)
    main_segments = by_camera.get(MAIN, [])
    main = _track(MAIN, main_segments, present, None)
    if main is None:
        raise WatchbackUnavailable("recording_deleted", "the recording's files were deleted on this station", 410)
    origin = next(s.started_at for s in main_segments if s.name in present)
    others = (_track(c, by_camera[c], present, origin) for c in sorted(by_camera) if c != MAIN)
    return Plan(
        tracks=(main, *(t for t in others if t is not None)),
        chapters=_chapters(main_segments, origin, schedule),
        recorded_seconds=round(sum(_seconds(s) for s in main_segments if s.question is not None), 3),
        waiting_seconds=round(sum(_seconds(s) for s in main_segments if s.question is None), 3),
        expected_seconds=expected_seconds(schedule),
        segments=len(segments),
        missing=sum(1 for s in segments if s.name not in present),
    )
