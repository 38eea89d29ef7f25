"""What every recorder is to the agent: the ``Recorder`` base, the closed segment it reports, its error.

A recorder records one camera (and, for the main camera, its microphone) of one attempt into
short, self-contained Matroska segments named ``{attempt_id}_{camera}_{seq:05d}.mkv``. The agent
starts it at a question, feeds it frames and audio, cuts it at each question boundary and stops
it; each sealed segment is reported through ``on_closed`` as a :class:`SegmentInfo`. The PyAV
recorder (``station.recording.pyav``) and the picamera2 one (``station.recording.picamera``)
implement it.

A segment is written as ``<name>.part``; :func:`seal` fsyncs and hashes it, renames it to its
final name and fsyncs the directory before the segment is reported, so a crash costs at most the
one open ``.part`` file. An existing segment file is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from station.capture.frames import AudioChunk, VideoFrame

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".mkv"
PART_SUFFIX = ".part"
# Beside a sealed segment that ``on_closed`` failed for: its SegmentInfo, to journal it from later.
INFO_SUFFIX = ".json"


class RecorderError(Exception):
    """The encoder thread failed; the recording is incomplete."""


class SegmentNotJournaled(RecorderError):
    """A segment is sealed on disk but ``on_closed`` failed for it (it was not journaled or signed).

    The recorder keeps recording; the segment's :class:`SegmentInfo` is written beside its file
    (:func:`info_path`) so it can be journaled from the file later, and the failure goes to
    ``Recorder.on_failed``."""

    def __init__(self, info: "SegmentInfo", cause: BaseException):
        super().__init__(f"segment {info.name} is sealed but was not journaled: {cause}")
        self.info = info
        self.cause = cause


@dataclass(frozen=True)
class CutAt:
    """A scheduled boundary: ``mono`` on the capture clock (``time.monotonic()``), ``server`` the same
    instant in server time (the new segment's recorded start)."""

    mono: float
    server: float


@dataclass(frozen=True)
class SegmentInfo:
    name: str
    path: Path
    attempt_id: str
    camera: str
    seq: int
    question: int | None
    started_at: float  # server time of the first frame
    ended_at: float  # server time where the next segment starts (or the last frame ends)
    frames: int
    audio_samples: int  # per channel, including silence filled into gaps
    size: int
    sha256: str

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at


def segment_name(attempt_id: str, camera: str, seq: int) -> str:
    return f"{attempt_id}_{camera}_{seq:05d}{SEGMENT_SUFFIX}"


def info_path(segment: Path) -> Path:
    """Where the SegmentInfo of a sealed segment that ``on_closed`` failed for is kept."""
    return segment.with_name(segment.name + INFO_SUFFIX)


def write_info(info: SegmentInfo) -> Path:
    """Keep ``info`` beside its segment file (written atomically); the path written."""
    path = info_path(info.path)
    tmp = path.with_name(path.name + ".tmp")
    data = {f: getattr(info, f) for f in SegmentInfo.__dataclass_fields__}
    tmp.write_text(json.dumps(dict(data, path=str(info.path))))
    os.replace(tmp, path)
    return path


def read_info(path: Path) -> SegmentInfo:
    """The SegmentInfo kept by :func:`write_info` at ``path`` (ValueError/KeyError if unreadable)."""
    data = json.loads(path.read_text())
    return SegmentInfo(**dict(data, path=Path(data["path"])))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
        os.fsync(fh.fileno())
    return size, digest.hexdigest()


def seal(part: Path, path: Path) -> tuple[int, str]:
    """Make a closed ``.part`` file final: fsync and hash it, rename it to ``path``, fsync the folder."""
    size, sha = _fsync_and_hash(part)
    os.replace(part, path)
    _fsync_dir(path.parent)
    return size, sha


class Recorder(ABC):
    """Records one camera of one attempt into segments; the interface the agent drives.

    Subclasses encode; this base keeps what they share: the sequence numbers (an existing
    segment file is skipped, never overwritten), the list of closed segments and their report
    to ``on_closed``.
    """

    def __init__(
        self,
        out_dir: Path,
        attempt_id: str,
        camera: str,
        *,
        fps: float,
        segment_seconds: float,
        first_seq: int,
        clock: Callable[[], float],
        on_closed: Callable[[SegmentInfo], None],
    ) -> None:
        self.out_dir = Path(out_dir)
        self.attempt_id = attempt_id
        self.camera = camera
        self.fps = float(fps)
        self.segment_seconds = float(segment_seconds)
        self.clock = clock
        self.on_closed = on_closed
        # Told of every sealed segment that on_closed failed for (SegmentNotJournaled); set by the owner.
        self.on_failed: Callable[[SegmentNotJournaled], None] | None = None
        self._unjournaled: list[SegmentInfo] = []
        self._next_seq = first_seq
        self._segments: list[SegmentInfo] = []
        self._lock = threading.Lock()

    @property
    def seq(self) -> int:
        """The sequence number the next new segment will get."""
        return self._next_seq

    @property
    def segments(self) -> list[SegmentInfo]:
        """The segments closed so far, oldest first."""
        with self._lock:
            return list(self._segments)

    @property
    def unjournaled(self) -> list[SegmentInfo]:
        """The sealed segments that on_closed failed for, oldest first."""
        with self._lock:
            return list(self._unjournaled)

    @abstractmethod
    def start(self, question: int | None = None) -> None:
        """Start recording; the first segment is tagged ``question``."""

    @abstractmethod
    def push_video(self, frame: VideoFrame) -> None:
        """Hand over a captured frame; never blocks. Raises RecorderError once the encoder failed."""

    @abstractmethod
    def push_audio(self, chunk: AudioChunk) -> None:
        """Hand over a captured audio chunk; never blocks."""

    @abstractmethod
    def cut(self, question: int | None, at: CutAt | None = None) -> None:
        """Question boundary: a new segment tagged ``question`` starts at the next frame (or keyframe);
        with ``at``, at the first frame captured at or after that instant, recorded as starting at it."""

    @abstractmethod
    def stop(self) -> SegmentInfo | None:
        """Close the open segment and end the encoder; the last closed segment. Raises RecorderError."""

    # --- for the subclasses -------------------------------------------------------------------

    def _free_seq(self) -> int:
        """The next free sequence number (a segment file already there is kept and skipped).

        It stays :attr:`seq` until the subclass moves ``_next_seq`` past it."""
        while (self.out_dir / segment_name(self.attempt_id, self.camera, self._next_seq)).exists():
            logger.warning(
                "segment %s already exists; keeping it and moving on",
                segment_name(self.attempt_id, self.camera, self._next_seq),
            )
            self._next_seq += 1
        return self._next_seq

    def _closed(self, info: SegmentInfo) -> None:
        """A sealed segment: note it and report it through ``on_closed``."""
        with self._lock:
            self._segments.append(info)
        logger.info(
            "segment %s closed: %d frames, %.2f s, %d bytes", info.name, info.frames, info.duration, info.size
        )
        try:
            self.on_closed(info)
        except Exception as exc:
            # Never only logged: the segment is on disk but not journaled, so it would never be
            # uploaded. Keep its info beside the file, and tell the owner (it reports and retries).
            failure = SegmentNotJournaled(info, exc)
            logger.error("%s; it is retried from the file", failure, exc_info=True)
            try:
                write_info(info)
            except OSError:
                logger.exception("could not keep the info of %s beside it", info.name)
            with self._lock:
                self._unjournaled.append(info)
            if self.on_failed is not None:
                try:
                    self.on_failed(failure)
                except Exception:
                    logger.exception("on_failed callback failed for %s", info.name)

