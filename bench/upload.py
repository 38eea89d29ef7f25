"""Benchmark of segment uploads from the station to the edge; prints one JSON line on stdout (logs on stderr).

The edge: the real Flask app (``create_app`` with settings in a temporary directory, SQLite
migrated with ``flask_migrate.upgrade``) served by gunicorn (2 workers x 4 threads, as the demo
runs it) in a subprocess on a free loopback port. Its ``max_chunk_bytes`` is set to 256 MiB for
this run, so that the baseline's whole-file PATCH is accepted.

The workload: real Matroska segments (``--megabytes``, 200 MB by default) written by the station's
SegmentRecorder (3 s segments, 1280x720 25 fps libx264 + AAC) from the same generated test clip as
``bench/recording.py``, fed as fast as it encodes instead of in real time; they are cached with
the test media (``--cache-dir``). Real 3 s segments are about 2 MB, less than one 4 MiB chunk.

Reports:
- ``mb_s``: the station's ``SegmentUploader.upload`` (journal + tuspy, 4 MiB chunks with SHA-256
  chunk checksums) sending every segment in seq order, as its upload thread does;
- ``baseline_mb_s``: the same bytes as one tus PATCH per file sent by ``curl`` (each upload created
  first with a POST from ``requests``), to the same server in the same run; ``ratio`` = mb_s /
  baseline_mb_s (goal >= 0.9). MB are 10^6 bytes; times include the POSTs. The two alternate file
  by file, so that load from other work on the machine (``load_avg_1m``, before and after) hits
  both alike;
- the fault run: the uploads again, through an in-process TCP proxy that resets the connection a
  few times per file, after a random number of bytes (seeded), while the uploader is retried by
  calling ``upload`` again with its journal row re-read. ``resent_bytes_max`` is the largest of
  (bytes the proxy forwarded to the server for a file - the file's size), HTTP request headers
  included; ``resent_bytes_per_cut_max`` what one cut cost at most (bytes forwarded by the failed
  attempt that the server did not keep); ``chunk_bytes`` for comparison (goal: a cut costs at most
  one chunk; ``--fault-chunk-kib`` changes the chunk of the fault run only).
Every segment of every run is checked verified, with its SHA-256, in the edge database at the end.

Run: ``.venv/bin/python bench/upload.py --megabytes 200``.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np
import requests
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recording import AUDIO_RATE, FPS, HEIGHT, WIDTH, default_cache_dir, make_test_video, make_test_wav  # noqa: E402

from station.devices import AudioChunk, VideoFrame  # noqa: E402
from station.journal import Journal, JournalSegment  # noqa: E402
from station.recorder import SegmentRecorder  # noqa: E402
from station.uploader import SegmentUploader  # noqa: E402

logger = logging.getLogger("bench.upload")

REPO = Path(__file__).resolve().parents[1]
CHUNK_BYTES = 4 * 1024 * 1024
MAX_CHUNK_BYTES = 256 * 1024 * 1024
SEGMENT_SECONDS = 3.0
CAMERA = "cam0"
TOKEN = "bench-station-token-0123456789abcdef"
STATION = "st-bench"
CUTS_PER_FILE = 3
RETRY_LIMIT = 50
NETWORK_ERRORS = (requests.RequestException, TusCommunicationError, TusUploadFailed, OSError)


# --- segments ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SegmentFile:
    path: Path
    seq: int
    size: int
    sha256: str
    duration: float


def make_segments(cache: Path, megabytes: float) -> list[SegmentFile]:
    """Recorder segments totalling at least ``megabytes`` MB (cached; recorded at encoding speed)."""
    folder = cache / f"upload-segments-{megabytes:g}MB"
    index = folder / "index.json"
    if index.exists():
        rows = json.loads(index.read_text())
        return [SegmentFile(Path(r["path"]), r["seq"], r["size"], r["sha256"], r["duration"]) for r in rows]
    shutil.rmtree(folder, ignore_errors=True)
    video, wav_path = make_test_video(cache), make_test_wav(cache)
    with wave.open(str(wav_path), "rb") as wav:
        tone = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 1)
    target = megabytes * 1e6
    logger.info("recording %.0f MB of segments into %s (unpaced)", megabytes, folder)
    rec = SegmentRecorder(folder / "segments", "bench", CAMERA, fps=FPS, size=(WIDTH, HEIGHT),
                          audio_rate=AUDIO_RATE, audio_channels=1, segment_seconds=SEGMENT_SECONDS)
    rec.start(question=1)
    t0 = time.monotonic()
    pushed = audio_pos = 0
    chunk = 1024

    def recorded_bytes() -> int:
        return sum(s.size for s in rec.segments)

    while recorded_bytes() < target:
        with av.open(str(video)) as container:
            for frame in container.decode(video=0):
                t = t0 + pushed / FPS
                # Audio first, up to past this frame, as a microphone would have delivered it.
                while t0 + audio_pos / AUDIO_RATE < t + 1 / FPS:
                    idx = (np.arange(chunk) + audio_pos) % len(tone)
                    rec.push_audio(AudioChunk(tone[idx], AUDIO_RATE, t0 + audio_pos / AUDIO_RATE))
                    audio_pos += chunk
                rec.push_video(VideoFrame(frame.to_ndarray(format="bgr24"), t, pushed))
                pushed += 1
                while pushed - rec.frames_written > 2 * FPS:  # keep the queue (and memory) short
                    time.sleep(0.005)
                if recorded_bytes() >= target:
                    break
    rec.stop()
    rows = [{"path": str(s.path), "seq": s.seq, "size": s.size, "sha256": s.sha256, "duration": s.duration}
            for s in rec.segments]
    index.write_text(json.dumps(rows))
    return make_segments(cache, megabytes)


# --- the edge under gunicorn ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Edge:
    base: str
    port: int
    settings: Any
    attempts: dict[str, str]  # role -> attempt id


def edge_environment(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMKIOSK_") and k != "DATABASE_URL"}
    env["EXAMKIOSK_EDGE_CONFIG"] = str(config)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def prepare_edge(root: Path, roles: list[str]) -> tuple[Path, Any, dict[str, str]]:
    """Settings file, migrated SQLite database, a station and one attempt per role."""
    from provisioning.demo import write_toml

    config = root / "edge.toml"
    write_toml(config, {
        "secret_key": "bench-secret-key", "database_url": f"sqlite:///{root / 'edge.db'}",
        "data_dir": str(root / "data"), "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "max_chunk_bytes": MAX_CHUNK_BYTES, "testing": False,
        "discovery": {"enabled": False}, "storage": {"directory": str(root / "central")},
    })
    for key in [k for k in os.environ if k.startswith("EXAMKIOSK_") or k == "DATABASE_URL"]:
        del os.environ[key]
    os.environ["EXAMKIOSK_EDGE_CONFIG"] = str(config)

    from flask_migrate import upgrade

    from edge_server import create_app
    from edge_server.config import load_settings
    from edge_server.extensions import db
    from edge_server.models import Attempt, Candidate, Centre, Paper, Question, Sitting
    from edge_server.services.stations import create_station

    settings = load_settings(config)
    app = create_app(settings)
    with app.app_context():
        upgrade(directory=str(REPO / "edge_server" / "migrations"))
    # Alembic's env.py reconfigures logging (and disables existing loggers): put ours back.
    for lg in logging.root.manager.loggerDict.values():
        if isinstance(lg, logging.Logger):
            lg.disabled = False
    setup_logging()
    attempts: dict[str, str] = {}
    with app.app_context():
        db.session.add(Centre(id="c1", name="Bench centre"))
        create_station(db.session, STATION, "c1", token=TOKEN)
        paper = Paper(title="Bench paper")
        paper.questions = [Question(position=1, text="Speak.", seconds=600)]
        db.session.add(paper)
        db.session.flush()
        start = datetime.now(timezone.utc) - timedelta(minutes=5)
        sitting = Sitting(id="sit-bench", centre_id="c1", name="Bench", paper_id=paper.id,
                          waiting_opens_at=start - timedelta(minutes=30), starts_at=start,
                          entry_closes_at=start + timedelta(minutes=3), lot_deadline_at=start - timedelta(minutes=1))
        db.session.add(sitting)
        db.session.flush()
        for i, role in enumerate(roles):
            candidate = Candidate(centre_id="c1", sitting_id=sitting.id, ticket_no=f"2026{i:04d}",
                                  name=f"Candidate {i}", id_number="110101199003074514")
            db.session.add(candidate)
            db.session.flush()
            attempt = Attempt(sitting_id=sitting.id, candidate_id=candidate.id, station_id=STATION, lot=i + 1)
            db.session.add(attempt)
            db.session.flush()
            attempts[role] = attempt.id
        db.session.commit()
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    return config, settings, attempts


@contextlib.contextmanager
def running_edge(root: Path, roles: list[str]) -> Iterator[Edge]:
    config, settings, attempts = prepare_edge(root, roles)
    port = free_port()
    log = open(root / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
         "--timeout", "120", "edge_server:create_app()"],
        env=edge_environment(config), cwd=root, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz", proc)
        logger.info("edge under gunicorn at %s (pid %d)", base, proc.pid)
        yield Edge(base, port, settings, attempts)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, -15):
            logger.warning("gunicorn exited with %s; its log:\n%s", proc.returncode,
                           (root / "gunicorn.log").read_text(errors="replace")[-3000:])


# --- the station's side -----------------------------------------------------------------------------

def journal_for(root: Path, attempt_id: str, segments: list[SegmentFile]) -> Journal:
    journal = Journal(root / f"journal-{attempt_id}.db")
    for seg in segments:
        started = 1_800_000_000.0 + seg.seq * SEGMENT_SECONDS
        journal.add_segment(name=f"{attempt_id}_{CAMERA}_{seg.seq:05d}.mkv", attempt_id=attempt_id, camera=CAMERA,
                            seq=seg.seq, question=1, path=seg.path, started_at=started,
                            ended_at=started + seg.duration, size=seg.size, sha256=seg.sha256)
    return journal


def journal_row(journal: Journal, attempt_id: str, name: str) -> JournalSegment:
    return next(s for s in journal.segments_of(attempt_id) if s.name == name)


def station_uploader(root: Path, edge: Edge, role: str, segments: list[SegmentFile], base: str | None = None,
                     chunk_bytes: int = CHUNK_BYTES) -> tuple[Journal, SegmentUploader]:
    journal = journal_for(root, edge.attempts[role], segments)
    url = base or edge.base
    return journal, SegmentUploader(journal, base_url=lambda: url, token=TOKEN, chunk_bytes=chunk_bytes)


def upload_with_station(journal: Journal, uploader: SegmentUploader, base: str, attempt: str, seg: SegmentFile) -> float:
    """Seconds for the station's SegmentUploader.upload of one segment (its journal row)."""
    row = journal_row(journal, attempt, segment_name(attempt, seg))
    start = time.perf_counter()
    uploader.upload(base, row)
    elapsed = time.perf_counter() - start
    if journal_row(journal, attempt, row.name).status != "verified":
        raise RuntimeError(f"{row.name} not verified after the station upload")
    return elapsed


def tus_metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def segment_name(attempt: str, seg: SegmentFile) -> str:
    return f"{attempt}_{CAMERA}_{seg.seq:05d}.mkv"


def upload_with_curl(edge: Edge, attempt: str, seg: SegmentFile) -> float:
    """Seconds for one POST (requests) + one whole-file PATCH (curl) of one segment."""
    name = segment_name(attempt, seg)
    start = time.perf_counter()
    resp = requests.post(f"{edge.base}/api/v1/uploads/", headers={
        "Authorization": f"Bearer {TOKEN}", "Tus-Resumable": "1.0.0", "Upload-Length": str(seg.size),
        "Upload-Metadata": tus_metadata(attempt=attempt, name=name, camera=CAMERA, seq=str(seg.seq),
                                        question="1", sha256=seg.sha256)}, timeout=60)
    if resp.status_code != 201:
        raise RuntimeError(f"creating {name}: {resp.status_code} {resp.text}")
    url = requests.compat.urljoin(f"{edge.base}/api/v1/uploads/", resp.headers["Location"])
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH", "--data-binary", f"@{seg.path}",
         "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
         "-H", "Content-Type: application/offset+octet-stream", "-H", f"Authorization: Bearer {TOKEN}",
         "-H", "Expect:", url],  # no 100-continue round trip
        capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if out.stdout.strip() != "204":
        raise RuntimeError(f"curl PATCH of {name}: {out.stdout} {out.stderr}")
    return elapsed


def throughput(edge: Edge, root: Path, segments: list[SegmentFile]) -> tuple[float, float]:
    """(station seconds, curl seconds) over all segments.

    The two alternate file by file (curl first on even files, the station first on odd ones), so
    that both meet the same machine: other load, page cache and disk behave alike for them.
    """
    journal, uploader = station_uploader(root, edge, "station", segments)
    station_s = curl_s = 0.0
    try:
        for i, seg in enumerate(segments):
            if i % 2 == 0:
                curl_s += upload_with_curl(edge, edge.attempts["curl"], seg)
                station_s += upload_with_station(journal, uploader, edge.base, edge.attempts["station"], seg)
            else:
                station_s += upload_with_station(journal, uploader, edge.base, edge.attempts["station"], seg)
                curl_s += upload_with_curl(edge, edge.attempts["curl"], seg)
    finally:
        journal.close()
    return station_s, curl_s


# --- faults -----------------------------------------------------------------------------------------

class CuttingProxy:
    """A loopback TCP proxy that counts the bytes it forwards to the server and resets connections.

    ``plan(gaps)``: the next cut comes after ``gaps[0]`` more bytes to the server, the one after
    that ``gaps[1]`` bytes later, and so on. A cut forwards the bytes up to that point, then resets
    both sides (SO_LINGER 0), as a dropped link does to an in-flight request.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self.forwarded = 0
        self.cuts = 0
        self._gaps: list[int] = []
        self._next_cut: int | None = None
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def plan(self, gaps: list[int]) -> None:
        with self._lock:
            self.forwarded = 0
            self.cuts = 0
            self._gaps = list(gaps)
            self._next_cut = self._gaps.pop(0) if self._gaps else None

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            conn = _Link(client, upstream)
            threading.Thread(target=self._to_server, args=(conn,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(conn,), daemon=True).start()

    def _to_server(self, conn: _Link) -> None:
        try:
            while True:
                data = conn.client.recv(1 << 16)
                if not data:
                    if not conn.cut:
                        conn.upstream.shutdown(socket.SHUT_WR)
                    return
                with self._lock:
                    cut = self._next_cut is not None and self.forwarded + len(data) >= self._next_cut
                    if cut:
                        data = data[: self._next_cut - self.forwarded]
                        self.cuts += 1
                        self._next_cut = self._next_cut + self._gaps.pop(0) if self._gaps else None
                    self.forwarded += len(data)
                if data:
                    conn.upstream.sendall(data)
                if cut:
                    conn.reset()
                    return
        except OSError:
            conn.reset()

    def _to_client(self, conn: _Link) -> None:
        try:
            while True:
                data = conn.upstream.recv(1 << 16)
                if not data:
                    if not conn.cut:
                        conn.client.shutdown(socket.SHUT_WR)
                    return
                conn.client.sendall(data)
        except OSError:
            conn.reset()


class _Link:
    """One proxied connection; ``reset()`` drops both sides with a TCP RST."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.cut = False
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            if self.cut:
                return
            self.cut = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # SHUT_RD wakes the other pump's recv (a close alone would not) without sending a FIN;
            # the close then sends the RST once that recv has let go of the socket.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
            with contextlib.suppress(OSError):
                sock.close()


def server_offset(edge: Edge, upload_url: str | None) -> int:
    """The upload's offset, asked of the server directly (not through the proxy)."""
    if not upload_url:
        return 0
    path = upload_url.split("/api/v1/uploads/", 1)[1]
    resp = requests.head(f"{edge.base}/api/v1/uploads/{path}",
                         headers={"Authorization": f"Bearer {TOKEN}", "Tus-Resumable": "1.0.0"}, timeout=30)
    return int(resp.headers["Upload-Offset"]) if resp.status_code == 200 else 0


def upload_through_cuts(edge: Edge, root: Path, role: str, segments: list[SegmentFile], seed: int,
                        chunk_bytes: int) -> dict:
    attempt = edge.attempts[role]
    proxy = CuttingProxy(edge.port)
    via = f"http://127.0.0.1:{proxy.port}"
    journal, uploader = station_uploader(root, edge, role, segments, base=via, chunk_bytes=chunk_bytes)
    rng = random.Random(seed)
    per_file, per_cut, cuts_total, retries_total = [], [], 0, 0
    try:
        for seg in segments:
            name = segment_name(attempt, seg)
            proxy.plan([rng.randint(1, seg.size) for _ in range(CUTS_PER_FILE)])
            for _ in range(RETRY_LIMIT):
                row = journal_row(journal, attempt, name)  # re-read: the upload URL and offset are journaled
                if row.status == "verified":
                    break
                before_bytes, before_offset = proxy.forwarded, server_offset(edge, row.upload_url)
                try:
                    uploader.upload(via, row)
                except NETWORK_ERRORS as exc:
                    retries_total += 1
                    row = journal_row(journal, attempt, name)
                    kept = server_offset(edge, row.upload_url) - before_offset
                    per_cut.append(proxy.forwarded - before_bytes - max(kept, 0))
                    logger.debug("%s: cut (%s); retrying", name, type(exc).__name__)
            else:
                raise RuntimeError(f"{name} not verified after {RETRY_LIMIT} attempts")
            per_file.append(proxy.forwarded - seg.size)
            cuts_total += proxy.cuts
    finally:
        proxy.close()
        journal.close()
    return {"resent": per_file, "per_cut": per_cut, "cuts": cuts_total, "retries": retries_total}


def verified_on_edge(edge: Edge, role: str) -> tuple[int, int]:
    """(segments verified, bytes verified) of the role's attempt, read from the edge database."""
    from edge_server import create_app
    from edge_server.extensions import db
    from edge_server.models import Segment, SegmentStatus

    app = create_app(edge.settings)
    with app.app_context():
        rows = db.session.scalars(db.select(Segment).where(Segment.attempt_id == edge.attempts[role])).all()
        done = [r for r in rows if r.status == SegmentStatus.VERIFIED and r.sha256_actual == r.sha256_declared]
        result = len(done), sum(r.length for r in done)
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    return result


def setup_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("station.uploader", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=200.0, help="segment bytes to upload (default 200 MB)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the cut points")
    parser.add_argument("--fault-chunk-kib", type=int, default=CHUNK_BYTES >> 10,
                        help="chunk size of the fault run (default 4096; smaller makes a segment several chunks)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="where test media is kept")
    args = parser.parse_args(argv)
    setup_logging()
    # SIGTERM unwinds like Ctrl-C, so the gunicorn child is stopped and the temp dir removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    for tool in ("curl", "ffmpeg"):
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed (apt-get install {tool})")

    segments = make_segments(args.cache_dir, args.megabytes)
    load_before = round(os.getloadavg()[0], 2)  # other work on this machine skews every figure
    total = sum(s.size for s in segments)
    logger.info("%d segments, %.1f MB", len(segments), total / 1e6)
    root = Path(tempfile.mkdtemp(prefix="ek-bench-upload-"))
    roles = ["warmup", "curl", "station", "faults"]
    try:
        with running_edge(root, roles) as edge:
            for seg in segments[:2]:  # workers warm, imports done
                upload_with_curl(edge, edge.attempts["warmup"], seg)
            logger.info("station uploader (%d MiB chunks) and curl (one PATCH per file), alternating",
                        CHUNK_BYTES >> 20)
            station_s, curl_s = throughput(edge, root, segments)
            logger.info("fault run: %d cuts planned per file through a resetting proxy", CUTS_PER_FILE)
            faults = upload_through_cuts(edge, root, "faults", segments, args.seed, args.fault_chunk_kib << 10)
            checks = {role: verified_on_edge(edge, role) for role in ("curl", "station", "faults")}
        for role, (count, size) in checks.items():
            if (count, size) != (len(segments), total):
                raise RuntimeError(f"{role}: {count} segments / {size} bytes verified on the edge, "
                                   f"expected {len(segments)} / {total}")
        mb_s, baseline = total / 1e6 / station_s, total / 1e6 / curl_s
        result = {
            "megabytes": round(total / 1e6, 1),
            "segments": len(segments),
            "segment_bytes_mean": round(total / len(segments)),
            "server": "gunicorn gthread 2x4",
            "mb_s": round(mb_s, 1),
            "baseline_mb_s": round(baseline, 1),
            "ratio": round(mb_s / baseline, 3),
            "chunk_bytes": args.fault_chunk_kib << 10,
            "cuts": faults["cuts"],
            "retries": faults["retries"],
            "resent_bytes_max": max(faults["resent"]),
            "resent_bytes_per_cut_max": max(faults["per_cut"], default=0),
            "verified_after_faults": checks["faults"][0],
            "load_avg_1m": [load_before, round(os.getloadavg()[0], 2)],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
