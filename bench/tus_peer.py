"""The tus project's reference server as a peer of ``bench/upload.py``, and the client both servers get.

``running_tus_reference`` starts ``bench/tus_reference/server.js`` (``@tus/server`` 2.x with
``@tus/file-store`` 2.x, pinned by that folder's package-lock.json; installed by
``scripts/install-bench-peers.sh``) under ``node`` on a free loopback port, storing into a
directory of the bench's temp dir, serving tus at ``/api/v1/uploads`` as our edge does; it is
stopped (SIGTERM, then SIGKILL) when the block ends. It checks no auth, computes no checksum
(the client's ``Upload-Checksum`` header is accepted and ignored) and does not fsync, so
``stored_intact`` checks what it stored afterwards, outside the timing.

The station's side, shared with ``bench/upload.py``: a journal of the segments and the station's
``SegmentUploader`` (``uploader_for``), whose ``upload`` is timed per segment
(``upload_with_station``), to our edge or to the reference server alike: only the base URL
differs. ``concurrent_uploads`` runs one such upload per thread, all released together by a
barrier (``run_concurrently``), and times the wall clock from the release to the last one's end.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from station.storage.journal import Journal, JournalSegment
from station.storage.uploader import SegmentUploader
from tests.services import HOST, free_port, log_tail, stop_process, wait_port

logger = logging.getLogger("bench.tus_peer")

FOLDER = Path(__file__).resolve().parent / "tus_reference"
SERVER_JS = FOLDER / "server.js"
PACKAGES = ("@tus/server", "@tus/file-store")
CHUNK_BYTES = 4 * 1024 * 1024
SEGMENT_SECONDS = 3.0
CAMERA = "cam0"
TOKEN = "bench-station-token-0123456789abcdef"


# --- the reference server ----------------------------------------------------------------------

def missing() -> str | None:
    """Why the reference server cannot start here (None when it can), with what to run."""
    if not shutil.which("node"):
        return "node is not installed (scripts/install-bench-peers.sh installs nodejs and npm)"
    absent = [p for p in PACKAGES if not (FOLDER / "node_modules" / p / "package.json").exists()]
    if absent:
        return f"{', '.join(absent)} missing in {FOLDER}/node_modules (run scripts/install-bench-peers.sh)"
    return None


def describe() -> str:
    """What the peer is: its packages' versions and node's, e.g. for the bench's JSON line."""
    versions = [f"{p} {json.loads((FOLDER / 'node_modules' / p / 'package.json').read_text())['version']}"
                for p in PACKAGES]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return f"{' + '.join(versions)} (FileStore) on node {node}"


@dataclass
class TusReference:
    base: str  # as the station's base URL: tus is at f"{base}/api/v1/uploads/"
    port: int
    directory: Path
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running_tus_reference(root: Path, max_size: int) -> Iterator[TusReference]:
    directory = root / "tus-reference"
    directory.mkdir(parents=True, exist_ok=True)
    log_path = root / "tus-reference.log"
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["node", str(SERVER_JS), str(port), str(directory), str(max_size)],
                                cwd=str(FOLDER), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(HOST, port, proc=proc, logs=[log_path])
        logger.info("@tus/server (node) at http://%s:%d (pid %d)", HOST, port, proc.pid)
        yield TusReference(f"http://{HOST}:{port}", port, directory, proc, log_path)
    finally:
        stop_process(proc)
        if proc.returncode not in (0, -15):
            logger.warning("the tus reference server exited with %s; %s", proc.returncode, log_tail(log_path))


def stored_intact(ref: TusReference, upload_url: str, size: int, sha256: str) -> bool:
    """The file @tus/file-store keeps for the upload has the segment's size and SHA-256."""
    path = ref.directory / upload_url.rstrip("/").rsplit("/", 1)[1]
    if not path.is_file() or path.stat().st_size != size:
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == sha256


def run_concurrently(jobs: list[Callable[[], object]], timeout: float = 600.0) -> float:
    """Seconds from releasing all ``jobs`` at once (one thread each) to the end of the last one.

    The first exception of a job is raised here once every thread has ended."""
    barrier = threading.Barrier(len(jobs) + 1)
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,), name=f"concurrent-{i}", daemon=True)
               for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    elapsed = time.perf_counter() - start
    if any(t.is_alive() for t in threads):
        raise TimeoutError(f"{sum(t.is_alive() for t in threads)} of {len(jobs)} concurrent uploads "
                           f"still running after {timeout:g} s")
    if errors:
        raise errors[0]
    return elapsed


# --- the station's client, the same code to either server ---------------------------------------

@dataclass(frozen=True)
class SegmentFile:
    path: Path
    seq: int
    size: int
    sha256: str
    duration: float


def segment_name(attempt: str, seg: SegmentFile) -> str:
    return f"{attempt}_{CAMERA}_{seg.seq:05d}.mkv"


def journal_for(root: Path, attempt_id: str, segments: list[SegmentFile]) -> Journal:
    root.mkdir(parents=True, exist_ok=True)
    journal = Journal(root / f"journal-{attempt_id}.db")
    for seg in segments:
        started = 1_800_000_000.0 + seg.seq * SEGMENT_SECONDS
        journal.add_segment(name=f"{attempt_id}_{CAMERA}_{seg.seq:05d}.mkv", attempt_id=attempt_id, camera=CAMERA,
                            seq=seg.seq, question=1, path=seg.path, started_at=started,
                            ended_at=started + seg.duration, size=seg.size, sha256=seg.sha256)
    return journal


def journal_row(journal: Journal, attempt_id: str, name: str) -> JournalSegment:
    return next(s for s in journal.segments_of(attempt_id) if s.name == name)


def uploader_for(root: Path, attempt: str, segments: list[SegmentFile], base: str,
                 chunk_bytes: int = CHUNK_BYTES) -> tuple[Journal, SegmentUploader]:
    """The station's journal (the segments in it) and SegmentUploader, to whichever tus server ``base`` is."""
    journal = journal_for(root, attempt, segments)
    return journal, SegmentUploader(journal, base_url=lambda: base, token=TOKEN, chunk_bytes=chunk_bytes)


def upload_with_station(journal: Journal, uploader: SegmentUploader, base: str, attempt: str, seg: SegmentFile) -> float:
    """Seconds for the station's SegmentUploader.upload of one segment (its journal row)."""
    row = journal_row(journal, attempt, segment_name(attempt, seg))
    start = time.perf_counter()
    uploader.upload(base, row)
    elapsed = time.perf_counter() - start
    if journal_row(journal, attempt, row.name).status != "verified":
        raise RuntimeError(f"{row.name} not verified after the station upload")
    return elapsed


def check_on_reference(ref: TusReference, journal: Journal, attempt: str) -> None:
    """Every segment the journal has as uploaded to @tus/server is stored there whole and intact."""
    for row in journal.segments_of(attempt):
        if row.status != "verified" or not row.upload_url or not stored_intact(ref, row.upload_url, row.size,
                                                                               row.sha256):
            raise RuntimeError(f"{row.name}: not stored intact by @tus/server ({row.upload_url})")


def concurrent_uploads(root: Path, base: str, attempts: list[str], segments: list[SegmentFile],
                       ref: TusReference | None = None) -> tuple[float, int]:
    """(wall seconds, bytes) of one upload per attempt, all at once, to ``base``: thread k has its
    own journal, SegmentUploader (own session) and segment k mod n. With ``ref``, its files are
    checked afterwards (the edge's rows are checked at the end with the others)."""
    picks = [segments[k % len(segments)] for k in range(len(attempts))]
    pairs = [uploader_for(root / "concurrent", attempt, [seg], base) for attempt, seg in zip(attempts, picks, strict=True)]
    try:
        seconds = run_concurrently([partial(upload_with_station, journal, uploader, base, attempt, seg)
                                    for (journal, uploader), attempt, seg in zip(pairs, attempts, picks, strict=True)])
        if ref is not None:
            for (journal, _), attempt in zip(pairs, attempts, strict=True):
                check_on_reference(ref, journal, attempt)
    finally:
        for journal, _ in pairs:
            journal.close()
    return seconds, sum(seg.size for seg in picks)
