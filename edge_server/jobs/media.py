"""Per-question files of an attempt: its verified segments joined without re-encoding.

For every camera and every question (and the waiting room, question ``None``, as ``waiting``) the
segments (Matroska, H.264 + AAC from either recorder) are joined in seq order with ffmpeg's concat
demuxer (``-c copy``: no re-encoding) into ``<data_dir>/joined/<attempt>/<camera>_q<N>.mp4``
(``<camera>_waiting.mp4``): MP4 with ``+faststart`` (the index first), which every browser plays
and seeks in over HTTP range requests, where Matroska is not reliably played. H.264 and AAC go
into MP4 as they are. Each listed segment
gets ``inpoint 0`` so that the AAC encoder's priming (about 21 ms before 0 in every segment) does
not stretch the timeline. Each result is checked with ffprobe: its duration must be within one
segment length of the sum of its segments' ``ended_at - started_at``, and it must hold as many
video packets as its segments.

A segment that is not there (a gap in the seq numbers, an expected segment never uploaded, a
verified segment whose file is gone), not verified, changed since verification or unreadable is
reported precisely: which segment, which question, which seconds of that question, in the result
and as an ``Event`` of kind ``media_problem``. It never fails silently. The job is safe to run
twice: outputs are replaced atomically and an identical problem is logged once.
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from edge_server.jobs.context import app_context
from edge_server.layout import joined_dir, joined_name
from edge_server.models import Attempt, Event, Segment, SegmentStatus
from edge_server.services import attempts as attempt_service
from edge_server.storage import sha256_file

logger = logging.getLogger(__name__)

EVENT_KIND = "media_problem"
FFMPEG_TIMEOUT_S = 900
PROBE_TIMEOUT_S = 120
_SEQ_NAME = re.compile(r"^(?P<camera>.+)_(?P<seq>\d+)\.mkv$")


@dataclass(frozen=True)
class Probe:
    duration: float
    video_packets: int


@dataclass
class _Slot:
    """One seq number of one camera's chain: a usable segment, or why it is not."""

    seq: int
    row: Segment | None
    name: str | None
    question: int | None = None
    at_boundary: bool = False  # a missing segment between two questions ...
    next_question: int | None = None  # ... this one and ``question``
    started_at: float | None = None
    ended_at: float | None = None
    probe: Probe | None = None
    problem: str | None = None  # kind
    detail: str = ""


@dataclass
class _Group:
    camera: str
    question: int | None
    slots: list[_Slot] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "waiting" if self.question is None else f"q{self.question}"


def probe(path: Path) -> Probe:
    """Duration and video packet count of a media file; RuntimeError if ffprobe cannot read it."""
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "format=duration:stream=codec_type,nb_read_packets", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"ffprobe exit {proc.returncode}")
    try:
        data = json.loads(proc.stdout)
        duration = float(data["format"]["duration"])
        packets = sum(int(s.get("nb_read_packets", 0)) for s in data.get("streams", [])
                      if s.get("codec_type") == "video")
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(f"ffprobe gave no duration ({exc})") from exc
    if packets == 0:
        raise RuntimeError("no video packets")
    return Probe(duration=duration, video_packets=packets)


def _concat_line(path: Path) -> str:
    quoted = str(path).replace("'", "'\\''")
    return f"file '{quoted}'\ninpoint 0\n"


def concat(paths: list[Path], out: Path) -> None:
    """Join ``paths`` into the MP4 ``out`` without re-encoding; ``out`` appears only when complete.

    ``+faststart`` moves the index before the media (a player starts and seeks without reading to
    the end); ``+bitexact`` leaves out the muxer's version string and dates, so a second run writes
    the same bytes.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    listing = out.with_name(f".{out.stem}.txt")
    part = out.with_name(out.name + ".part")
    listing.write_text("".join(_concat_line(p) for p in paths))
    try:
        proc = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
             "-map", "0", "-c", "copy", "-fflags", "+bitexact", "-movflags", "+faststart", "-f", "mp4",
             str(part)],
            capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip()[-500:] or f"ffmpeg exit {proc.returncode}")
        with open(part, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(part, out)
    finally:
        listing.unlink(missing_ok=True)
        part.unlink(missing_ok=True)


def _parse_expected(attempt: Attempt) -> tuple[dict[str, set[int]], list[str]]:
    """Expected segment names as {camera: {seq}}; names that do not follow the pattern apart."""
    by_camera: dict[str, set[int]] = {}
    unparsed: list[str] = []
    prefix = f"{attempt.id}_"
    for name in attempt.expected_segments or []:
        match = _SEQ_NAME.match(name[len(prefix):]) if name.startswith(prefix) else None
        if match is None:
            unparsed.append(name)
            continue
        by_camera.setdefault(match["camera"], set()).add(int(match["seq"]))
    return by_camera, unparsed


def _check_row(slot: _Slot, row: Segment, recordings_dir: Path) -> None:
    if row.status != SegmentStatus.VERIFIED:
        slot.problem = "not_verified"
        slot.detail = f"segment is {row.status} on the edge, not verified"
        return
    path = recordings_dir / row.attempt_id / row.name
    if not path.is_file():
        slot.problem = "file_missing"
        slot.detail = f"verified segment file {path} is missing"
        return
    if row.sha256_actual and sha256_file(path) != row.sha256_actual:
        slot.problem = "checksum_mismatch"
        slot.detail = "segment file no longer matches its verified SHA-256"
        return
    try:
        slot.probe = probe(path)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        slot.problem = "unreadable"
        slot.detail = f"ffprobe cannot read the segment: {exc}"


def _chain(attempt_id: str, camera: str, rows: list[Segment], expected: set[int],
           recordings_dir: Path) -> list[_Slot]:
    """Every seq from 0 to the last known one, each usable or with its problem."""
    by_seq: dict[int, Segment] = {}
    for row in rows:
        kept = by_seq.get(row.seq)
        if kept is None or (kept.status != SegmentStatus.VERIFIED and row.status == SegmentStatus.VERIFIED):
            by_seq[row.seq] = row
    last = max([*by_seq, *expected], default=-1)
    slots: list[_Slot] = []
    for seq in range(last + 1):
        row = by_seq.get(seq)
        if row is None:
            # Named as the station names its segments (station.recording.base.segment_name).
            slots.append(_Slot(seq=seq, row=None, name=f"{attempt_id}_{camera}_{seq:05d}.mkv", problem="missing",
                               detail="no segment with this seq number reached the edge"))
            continue
        slot = _Slot(seq=seq, row=row, name=row.name, question=row.question,
                     started_at=row.started_at, ended_at=row.ended_at)
        _check_row(slot, row, recordings_dir)
        slots.append(slot)
    # A missing seq takes its question and time span from its neighbours.
    for i, slot in enumerate(slots):
        if slot.row is not None:
            continue
        prev = next((s for s in reversed(slots[:i]) if s.row is not None), None)
        after = next((s for s in slots[i + 1:] if s.row is not None), None)
        if prev is not None:
            slot.question = prev.question
            slot.started_at = prev.ended_at
            if after is not None and after.question != prev.question:
                slot.at_boundary, slot.next_question = True, after.question
        elif after is not None:
            slot.question = after.question
        if after is not None:
            slot.ended_at = after.started_at
    return slots


def _groups(camera: str, slots: list[_Slot]) -> list[_Group]:
    groups: dict[int | None, _Group] = {}
    for slot in slots:
        groups.setdefault(slot.question, _Group(camera, slot.question)).slots.append(slot)
    return sorted(groups.values(), key=lambda g: (g.question is not None, g.question or 0))


def _question_starts(slots: list[_Slot]) -> dict[int | None, float]:
    starts: dict[int | None, float] = {}
    for slot in slots:
        if slot.row is not None and slot.started_at is not None:
            q = slot.question
            starts[q] = min(starts.get(q, slot.started_at), slot.started_at)
    return starts


def _seconds(slot: _Slot, origin: float | None) -> list[float | None] | None:
    if origin is None or (slot.started_at is None and slot.ended_at is None):
        return None
    return [None if t is None else round(t - origin, 3) for t in (slot.started_at, slot.ended_at)]


def _slot_problem(camera: str, slot: _Slot, starts: dict[int | None, float]) -> dict[str, Any]:
    problem: dict[str, Any] = {
        "kind": slot.problem,
        "camera": camera,
        "question": slot.question,
        "seq": slot.seq,
        "segment": slot.name,
        # Seconds from the start of the question's recording, and the same span in server time.
        "seconds": _seconds(slot, starts.get(slot.question)),
        "server_time": [slot.started_at, slot.ended_at],
        "detail": slot.detail,
    }
    if slot.at_boundary:
        # It ends one question or starts the next: its seconds count from the earlier one's start.
        problem["next_question"] = slot.next_question
        problem["detail"] += f"; it lies between question {slot.question} and question {slot.next_question}"
    return problem


def _join_group(group: _Group, out_dir: Path, recordings_dir: Path, attempt_id: str,
                problems: list[dict[str, Any]]) -> dict[str, Any] | None:
    usable = [s for s in group.slots if s.problem is None]
    out = out_dir / joined_name(group.camera, group.question)
    base = {"camera": group.camera, "question": group.question}
    if not usable:
        out.unlink(missing_ok=True)  # never leave an older, different join behind
        problems.append({**base, "kind": "nothing_to_join", "seq": None, "segment": None, "seconds": None,
                         "server_time": None, "detail": f"no usable segment for {group.label}"})
        return None
    spans = [s.ended_at - s.started_at for s in usable if s.started_at is not None and s.ended_at is not None]
    timed = len(spans) == len(usable)  # stations always send both; without them there is nothing to check
    expected, tolerance = (sum(spans), max(spans)) if timed else (None, None)
    expected_frames = sum(s.probe.video_packets for s in usable if s.probe is not None)
    try:
        concat([recordings_dir / attempt_id / s.name for s in usable if s.name], out)
        result = probe(out)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        out.unlink(missing_ok=True)
        problems.append({**base, "kind": "join_failed", "seq": None, "segment": None, "seconds": None,
                         "server_time": None, "detail": f"joining {len(usable)} segments failed: {exc}"})
        return None
    entry = {
        **base,
        "path": str(out),
        "duration": round(result.duration, 3),
        "expected": None if expected is None else round(expected, 3),
        "frames": result.video_packets,
        "expected_frames": expected_frames,
        "segments": [s.seq for s in usable],
        "segment_names": [s.name for s in usable],
        "complete": len(usable) == len(group.slots),
        "sha256": sha256_file(out),
        "size": out.stat().st_size,
        # Server time of the file's first frame: a flag at server time t is at t - offset in the file.
        "offset": usable[0].started_at,
    }
    if expected is not None and tolerance is not None and abs(result.duration - expected) > tolerance:
        problems.append({**base, "kind": "duration_mismatch", "seq": None, "segment": None, "seconds": None,
                         "server_time": None,
                         "detail": f"{out.name} lasts {result.duration:.3f} s; its segments cover {expected:.3f} s"})
    if result.video_packets != expected_frames:
        problems.append({**base, "kind": "frames_mismatch", "seq": None, "segment": None, "seconds": None,
                         "server_time": None,
                         "detail": f"{out.name} holds {result.video_packets} frames; its segments {expected_frames}"})
    return entry


def _log_problems(db: Any, attempt: Attempt, problems: list[dict[str, Any]]) -> None:
    """One media_problem event per problem; one already logged by an earlier run is not repeated."""
    seen = {json.dumps(e.payload, sort_keys=True) for e in db.session.scalars(
        select(Event).where(Event.attempt_id == attempt.id, Event.kind == EVENT_KIND))}
    for problem in problems:
        key = json.dumps(problem, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        attempt_service.log_event(db.session, kind=EVENT_KIND, station_id=attempt.station_id,
                                  attempt_id=attempt.id, payload=problem, source="job")


def join_questions(attempt_id: str) -> dict[str, Any]:
    """Join an attempt's verified segments per camera and question; report every problem."""
    with app_context() as (app, db, settings):
        attempt = db.session.get(Attempt, attempt_id)
        if attempt is None:
            raise LookupError(f"attempt {attempt_id} does not exist")
        rows = db.session.scalars(
            select(Segment).where(Segment.attempt_id == attempt.id).order_by(Segment.camera, Segment.seq)
        ).all()
        expected, unparsed = _parse_expected(attempt)
        known = {r.name for r in rows}
        problems: list[dict[str, Any]] = []
        for name in unparsed:
            if name not in known:
                problems.append({"kind": "missing", "camera": None, "question": None, "seq": None, "segment": name,
                                 "seconds": None, "server_time": None,
                                 "detail": "an expected segment never reached the edge"})
        cameras = sorted({r.camera for r in rows} | set(expected))
        out_dir = joined_dir(settings.data_dir, attempt.id)
        files: list[dict[str, Any]] = []
        for camera in cameras:
            slots = _chain(attempt.id, camera, [r for r in rows if r.camera == camera],
                           expected.get(camera, set()), settings.recordings_dir)
            starts = _question_starts(slots)
            problems.extend(_slot_problem(camera, s, starts) for s in slots if s.problem is not None)
            for group in _groups(camera, slots):
                entry = _join_group(group, out_dir, settings.recordings_dir, attempt.id, problems)
                if entry is not None:
                    files.append(entry)
        for problem in problems:
            logger.warning("attempt %s media problem: %s", attempt.id, problem)
        _log_problems(db, attempt, problems)
        db.session.commit()
        logger.info("attempt %s: %d per-question files, %d problems", attempt.id, len(files), len(problems))
        return {"attempt": attempt.id, "complete": attempt.upload_complete_at is not None, "files": files,
                "problems": problems}
