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
  baseline_mb_s (goal >= 0.9). MB are 10^6 bytes; times include the POSTs;
- ``tus_server_mb_s``: the same client to the tus project's reference server, ``@tus/server`` 2.x
  with ``@tus/file-store`` 2.x under node (``bench/tus_reference``, started by ``bench/tus_peer.py``
  on a loopback port, tus at the same ``/api/v1/uploads``). Exactly the same client code for both:
  ``SegmentUploader.upload`` of the station (a TusClient at ``{base}/api/v1/uploads/`` with the
  Authorization header, ``Sha256Uploader`` on its requests session, the same 4 MiB chunks, each
  PATCH with ``Upload-Checksum: sha256``, the POST with the segment's ``Upload-Metadata``, the
  station journal written per chunk), its own journal, the same files; only the base URL differs.
  @tus/server ignores the Authorization and Upload-Checksum headers (no checksum extension) and
  does not fsync; our edge checks the token, verifies every chunk's SHA-256, fsyncs every chunk,
  re-hashes the whole file at the end and keeps its state in SQLite. The node server's files are
  checked (size and SHA-256) afterwards, outside the timing. ``ingest_ratio_vs_tus_server`` =
  mb_s / tus_server_mb_s (goal >= 1.0). curl, the station to the edge and the station to node take
  turns file by file (the order rotating), so that load from other work on the machine
  (``load_avg_1m``, before and after) hits them alike;
- ``concurrent50_mb_s`` / ``tus_server_concurrent50_mb_s``: ``--concurrent`` (50) uploads at once,
  one thread each with its own journal, SegmentUploader (own session, own connection) and
  segment (segment k mod n), to the edge and to node, in two rounds (edge, node, node, edge);
  bytes of all rounds over their wall time from the release to the last upload's end;
  ``concurrent50_ratio_vs_tus_server`` = ours / node;
- the fault run: the uploads again, through an in-process TCP proxy (``tests/faults/proxy.py``,
  shared with the fault test) that resets the connection a few times per file, after a random
  number of request-body bytes (seeded), while the uploader is retried by calling ``upload``
  again with its journal row re-read. ``resent_bytes_max`` is the largest of
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
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np
import requests
from flask_migrate import upgrade
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recording import AUDIO_RATE, FPS, HEIGHT, WIDTH, default_cache_dir, make_test_video, make_test_wav  # noqa: E402

from edge_server import create_app  # noqa: E402
from edge_server.config import load_settings  # noqa: E402
from edge_server.extensions import db  # noqa: E402
from edge_server.models import Attempt, Candidate, Centre, Paper, Question, Segment, SegmentStatus, Sitting
from edge_server.services.stations import create_station  # noqa: E402
from provisioning.toml_file import write_toml  # noqa: E402
from station.capture.frames import AudioChunk, VideoFrame  # noqa: E402
from station.recording.pyav import SegmentRecorder  # noqa: E402
from station.storage.journal import Journal  # noqa: E402
from station.storage.uploader import SegmentUploader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.*
from tus_peer import (  # noqa: E402  (after the repository is on the path: it imports tests.services)
    CAMERA,
    CHUNK_BYTES,
    SEGMENT_SECONDS,
    TOKEN,
    SegmentFile,
    TusReference,
    check_on_reference,
    concurrent_uploads,
    describe,
    missing,
    running_tus_reference,
    segment_name,
    upload_with_station,
    uploader_for,
)

from tests.faults.proxy import CuttingProxy  # noqa: E402  (shared with the fault test)
from tests.faults.proxy import upload_through_cuts as upload_through_cuts_of_file  # noqa: E402
from tests.services import free_port, start_edge_web  # noqa: E402

logger = logging.getLogger("bench.upload")

REPO = Path(__file__).resolve().parents[1]
MAX_CHUNK_BYTES = 256 * 1024 * 1024
STATION = "st-bench"
CUTS_PER_FILE = 3
RETRY_LIMIT = 50
NETWORK_ERRORS = (requests.RequestException, TusCommunicationError, TusUploadFailed, OSError)
REF_ATTEMPT = "tus-reference"  # the attempt id the station's metadata names to @tus/server (which ignores it)
CONCURRENT_ROUNDS = ("edge", "tus_server", "tus_server", "edge")  # ABBA: neither always goes first


# --- segments ---------------------------------------------------------------------------------------

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

@dataclass
class Edge:
    base: str
    port: int
    settings: Any
    attempts: dict[str, str]  # role -> attempt id


def prepare_edge(root: Path, roles: list[str]) -> tuple[Path, Any, dict[str, str]]:
    """Settings file, migrated SQLite database, a station and one attempt per role."""
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
    web = start_edge_web(config, root / "gunicorn.log")
    logger.info("edge under gunicorn at %s (pid %d)", web.url, web.proc.pid)
    try:
        yield Edge(web.url, web.port, settings, attempts)
    finally:
        web.stop()
        if web.proc.returncode not in (0, -15):
            logger.warning("gunicorn exited with %s; its log:\n%s", web.proc.returncode, web.log()[-3000:])


# --- the station's side -----------------------------------------------------------------------------

def station_uploader(root: Path, edge: Edge, role: str, segments: list[SegmentFile], base: str | None = None,
                     chunk_bytes: int = CHUNK_BYTES) -> tuple[Journal, SegmentUploader]:
    return uploader_for(root, edge.attempts[role], segments, base or edge.base, chunk_bytes)


def tus_metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


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


def throughput(edge: Edge, ref: TusReference, root: Path, segments: list[SegmentFile]) -> dict[str, float]:
    """Seconds over all segments of curl to the edge, the station to the edge and the station to
    @tus/server (keys ``curl``, ``station``, ``tus_server``).

    The three take turns file by file, the order rotating by one each file (curl first on file 0,
    the station to the edge on file 1, ...), so that all meet the same machine: other load, page
    cache and disk behave alike for them.
    """
    journal, uploader = station_uploader(root, edge, "station", segments)
    ref_journal, ref_uploader = uploader_for(root / "tus-reference-journals", REF_ATTEMPT, segments, ref.base)
    runs = {
        "curl": lambda seg: upload_with_curl(edge, edge.attempts["curl"], seg),
        "station": lambda seg: upload_with_station(journal, uploader, edge.base, edge.attempts["station"], seg),
        "tus_server": lambda seg: upload_with_station(ref_journal, ref_uploader, ref.base, REF_ATTEMPT, seg),
    }
    order, seconds = list(runs), dict.fromkeys(runs, 0.0)
    try:
        for i, seg in enumerate(segments):
            for name in order[i % 3:] + order[:i % 3]:
                seconds[name] += runs[name](seg)
        check_on_reference(ref, ref_journal, REF_ATTEMPT)
    finally:
        journal.close()
        ref_journal.close()
    return seconds


def concurrent_roles(count: int) -> list[str]:
    return [f"c{r}-{k}" for r, server in enumerate(CONCURRENT_ROUNDS) if server == "edge" for k in range(count)]


def concurrent_runs(edge: Edge, ref: TusReference, root: Path, segments: list[SegmentFile],
                    count: int) -> dict[str, float]:
    """MB/s of ``count`` uploads at once, per server, over the rounds of CONCURRENT_ROUNDS."""
    totals = {"edge": [0.0, 0], "tus_server": [0.0, 0]}
    for r, server in enumerate(CONCURRENT_ROUNDS):
        if server == "edge":
            attempts = [edge.attempts[f"c{r}-{k}"] for k in range(count)]
            seconds, size = concurrent_uploads(root, edge.base, attempts, segments)
        else:
            attempts = [f"{REF_ATTEMPT}-c{r}-{k}" for k in range(count)]
            seconds, size = concurrent_uploads(root, ref.base, attempts, segments, ref)
        logger.info("round %d: %d uploads at once to %s, %.1f MB in %.2f s", r, count, server, size / 1e6, seconds)
        totals[server][0] += seconds
        totals[server][1] += size
    return {server: size / 1e6 / seconds for server, (seconds, size) in totals.items()}


# --- faults -----------------------------------------------------------------------------------------

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
    journal, uploader = station_uploader(root, edge, role, segments, base=proxy.url, chunk_bytes=chunk_bytes)
    rng = random.Random(seed)
    per_file, per_cut, cuts_total, retries_total = [], [], 0, 0
    try:
        for seg in segments:
            report = upload_through_cuts_of_file(
                proxy, uploader, journal, attempt, segment_name(attempt, seg),
                gaps=[rng.randint(1, seg.size) for _ in range(CUTS_PER_FILE)],
                server_offset=lambda url: server_offset(edge, url), retry_limit=RETRY_LIMIT,
                network_errors=NETWORK_ERRORS)
            per_file.append(report.forwarded - seg.size)
            per_cut.extend(report.lost_per_cut)
            cuts_total += report.cuts
            retries_total += report.retries
    finally:
        proxy.close()
        journal.close()
    return {"resent": per_file, "per_cut": per_cut, "cuts": cuts_total, "retries": retries_total}


def verified_on_edge(edge: Edge, roles: list[str]) -> dict[str, tuple[int, int]]:
    """(segments verified, bytes verified) of each role's attempt, read from the edge database."""
    app = create_app(edge.settings)
    result = {}
    with app.app_context():
        for role in roles:
            rows = db.session.scalars(db.select(Segment).where(Segment.attempt_id == edge.attempts[role])).all()
            done = [r for r in rows if r.status == SegmentStatus.VERIFIED and r.sha256_actual == r.sha256_declared]
            result[role] = len(done), sum(r.length for r in done)
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    return result


def setup_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("station.storage.uploader", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=200.0, help="segment bytes to upload (default 200 MB)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the cut points")
    parser.add_argument("--fault-chunk-kib", type=int, default=CHUNK_BYTES >> 10,
                        help="chunk size of the fault run (default 4096; smaller makes a segment several chunks)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="where test media is kept")
    parser.add_argument("--concurrent", type=int, default=50, help="uploads at once in the concurrent run (50)")
    args = parser.parse_args(argv)
    setup_logging()
    # SIGTERM unwinds like Ctrl-C, so the gunicorn child is stopped and the temp dir removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    for tool in ("curl", "ffmpeg"):
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed (apt-get install {tool})")
    if reason := missing():
        parser.error(f"the @tus/server peer cannot start: {reason}")

    segments = make_segments(args.cache_dir, args.megabytes)
    load_before = round(os.getloadavg()[0], 2)  # other work on this machine skews every figure
    total = sum(s.size for s in segments)
    logger.info("%d segments, %.1f MB", len(segments), total / 1e6)
    root = Path(tempfile.mkdtemp(prefix="ek-bench-upload-"))
    n = args.concurrent
    expected = {role: (len(segments), total) for role in ("curl", "station", "faults")}
    expected |= {role: (1, segments[int(role.rsplit("-", 1)[1]) % len(segments)].size)
                 for role in concurrent_roles(n)}
    try:
        with running_edge(root, ["warmup", *expected]) as edge, \
                running_tus_reference(root, edge.settings.max_upload_bytes) as ref:
            warm_journal, warm_uploader = uploader_for(root / "tus-reference-journals", "warmup", segments[:2], ref.base)
            for seg in segments[:2]:  # workers warm, imports done (node's too)
                upload_with_curl(edge, edge.attempts["warmup"], seg)
                upload_with_station(warm_journal, warm_uploader, ref.base, "warmup", seg)
            warm_journal.close()
            logger.info("station uploader (%d MiB chunks) to the edge and to @tus/server, and curl (one PATCH "
                        "per file) to the edge, taking turns", CHUNK_BYTES >> 20)
            seconds = throughput(edge, ref, root, segments)
            logger.info("%d uploads at once, rounds %s", n, ", ".join(CONCURRENT_ROUNDS))
            concurrent = concurrent_runs(edge, ref, root, segments, n)
            logger.info("fault run: %d cuts planned per file through a resetting proxy", CUTS_PER_FILE)
            faults = upload_through_cuts(edge, root, "faults", segments, args.seed, args.fault_chunk_kib << 10)
            checks = verified_on_edge(edge, list(expected))
        for role, (count, size) in checks.items():
            if (count, size) != expected[role]:
                raise RuntimeError(f"{role}: {count} segments / {size} bytes verified on the edge, "
                                   f"expected {expected[role][0]} / {expected[role][1]}")
        mb_s, baseline = total / 1e6 / seconds["station"], total / 1e6 / seconds["curl"]
        tus_mb_s = total / 1e6 / seconds["tus_server"]
        result = {
            "megabytes": round(total / 1e6, 1),
            "segments": len(segments),
            "segment_bytes_mean": round(total / len(segments)),
            "server": "gunicorn gthread 2x4",
            "mb_s": round(mb_s, 1),
            "baseline_mb_s": round(baseline, 1),
            "ratio": round(mb_s / baseline, 3),
            "tus_server": describe(),
            "tus_server_mb_s": round(tus_mb_s, 1),
            "ingest_ratio_vs_tus_server": round(mb_s / tus_mb_s, 3),
            "concurrent_uploads": n,
            f"concurrent{n}_mb_s": round(concurrent["edge"], 1),
            f"tus_server_concurrent{n}_mb_s": round(concurrent["tus_server"], 1),
            f"concurrent{n}_ratio_vs_tus_server": round(concurrent["edge"] / concurrent["tus_server"], 3),
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
