"""Benchmark of the edge's sync to central storage on S3; prints one JSON line on stdout (logs on stderr).

The store: a throw-away Ceph RADOS Gateway (``tests/s3server.py``, ``scripts/ceph-rgw-start.sh``;
Debian's ``radosgw``), bluestore on a sparse file in a temporary directory (``--objectstore
memstore`` keeps it in RAM instead), on a free loopback port.

The workload: one recorded attempt of a ``--minutes`` (25) sitting, main camera ``cam0`` and
evidence camera ``cam1``: each camera's 3 s Matroska segments as the station names them
(``<attempt>_<camera>_<seq>.mkv``) and its per-question MP4s (``--questions`` of them, the
sitting split evenly, ``+faststart``), H.264 1280x720 25 fps at ``--mbit`` (2) Mbit/s with AAC
audio. They are cut with ffmpeg's stream copy from a generated 30 s clip per camera (``testsrc2``
with temporal noise, so the encoder needs its bitrate) and cached in ``--cache-dir``.

Reports:
- ``mb_per_s``: the edge's ``S3Storage.put_file`` (what the sync job calls, files one after the
  other in the job's order: segments by camera and seq, then the question files) and the manifest
  last with ``put_bytes``; every object sent with ``Content-MD5`` (per part for multipart:
  ``--threshold-mib`` 16, ``--part-mib`` 8, ``--concurrency`` 4 parts in flight) and confirmed
  with ``HEAD``. MB are 10^6 bytes of object bodies, over the wall time of the whole run;
- ``rclone_mb_per_s``: ``rclone copy`` (Debian's) of the same files to another prefix of the same
  bucket in the same run, configured by environment (``--config /dev/null``), with the same
  concurrency where rclone has a knob: one file at a time (``--transfers 1``), ``--s3-upload-cutoff``,
  ``--s3-chunk-size`` and ``--s3-upload-concurrency`` as ours; rclone also sends Content-MD5 and
  checks each upload with a HEAD. ``ratio_vs_rclone`` = mb_per_s / rclone_mb_per_s (goal >= 1.0).
  With ``--rounds 2`` the two alternate (ours, rclone, rclone, ours) and the times add up;
- ``bytes_sent``, ``bytes_read_back`` and ``readback_fraction`` (goal <= 0.01): what the edge
  read back to confirm its objects (only objects the store cannot vouch for are read back);
- ``resync_s``, ``resync_bytes_sent``: the same sync again (every object already there: a HEAD each);
- ``load_avg_1m`` before and after: both peers meet the same machine, but figures from a busy
  machine are noisy.
Both copies are checked at the end: every key, with its size, under each prefix.

Run: ``.venv/bin/python -m bench.central_sync`` (``--minutes 5`` for a quick run).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.*
from bench.recording import default_cache_dir  # noqa: E402
from edge_server.config import StorageSection  # noqa: E402
from edge_server.storage import S3Storage, open_storage  # noqa: E402
from examkiosk_wire import central  # noqa: E402
from tests.s3server import CephS3, start_ceph_s3  # noqa: E402  (the tests' own gateway)

logger = logging.getLogger("bench.central_sync")

MIB = 1024 * 1024
FPS = 25
SEGMENT_SECONDS = 3
CLIP_SECONDS = 30
CAMERAS = {"cam0": "testsrc2=size=1280x720:rate=25", "cam1": "smptehdbars=size=1280x720:rate=25"}
ATTEMPT = "a-bench-0001"
PREFIX = central.attempt_prefix("bench-centre", "sitting-1", 1, ATTEMPT)


@dataclass(frozen=True)
class MediaFile:
    relative: str  # "segments/<name>" or "questions/<name>": the key under the attempt's prefix
    path: Path
    size: int
    sha256: str


def run(cmd: list[str], timeout: float = 1800) -> None:
    subprocess.run(cmd, check=True, timeout=timeout, stdin=subprocess.DEVNULL)


def make_clip(folder: Path, camera: str, mbit: float) -> Path:
    """A 30 s clip at ``mbit`` Mbit/s, a keyframe every segment (noise: every frame differs)."""
    path = folder / f"clip-{camera}.mkv"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp.mkv")
    rate = f"{mbit:g}M"
    run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{CAMERAS[camera]},noise=alls=24:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(CLIP_SECONDS),
         "-c:v", "libx264", "-preset", "ultrafast", "-b:v", rate, "-minrate", rate, "-maxrate", rate,
         "-bufsize", rate, "-g", str(FPS * SEGMENT_SECONDS), "-keyint_min", str(FPS * SEGMENT_SECONDS),
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", str(tmp)])
    os.replace(tmp, path)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def make_attempt(cache: Path, minutes: float, mbit: float, questions: int) -> tuple[Path, list[MediaFile]]:
    """The attempt's files under ``<folder>/tree`` (cached): segments and question files per camera."""
    folder = cache / f"central-sync-{minutes:g}min-{mbit:g}M-{questions}q"
    index = folder / "index.json"
    tree = folder / "tree"
    if index.exists():
        rows = json.loads(index.read_text())
        return tree, [MediaFile(r["relative"], tree / r["relative"], r["size"], r["sha256"]) for r in rows]
    shutil.rmtree(folder, ignore_errors=True)
    (tree / "segments").mkdir(parents=True)
    (tree / "questions").mkdir()
    seconds = minutes * 60
    logger.info("cutting a %g min attempt at %g Mbit/s per camera into %s", minutes, mbit, folder)
    for camera in CAMERAS:
        clip = make_clip(folder, camera, mbit)
        run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(clip), "-t", str(seconds), "-c", "copy",
             "-f", "segment", "-segment_time", str(SEGMENT_SECONDS), "-segment_start_number", "1",
             "-reset_timestamps", "1", str(tree / "segments" / f"{ATTEMPT}_{camera}_%05d.mkv")])
        each = seconds / questions
        for number in range(1, questions + 1):
            run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-ss", str((number * 6) % CLIP_SECONDS),
                 "-i", str(clip), "-t", f"{each:.3f}", "-c", "copy", "-movflags", "+faststart",
                 str(tree / "questions" / f"{camera}_q{number}.mp4")])
    files = [MediaFile(str(p.relative_to(tree)), p, p.stat().st_size, sha256_of(p))
             for p in sorted((tree / "segments").iterdir()) + sorted((tree / "questions").iterdir())]
    index.write_text(json.dumps([{"relative": f.relative, "size": f.size, "sha256": f.sha256} for f in files]))
    return tree, files


def sync_order(files: list[MediaFile]) -> list[MediaFile]:
    """As the sync job sends them: segments by camera and seq, then the per-question files."""
    return sorted(files, key=lambda f: (not f.relative.startswith("segments/"), f.relative))


def storage_for(server: CephS3, bucket: str, root: Path, args: argparse.Namespace) -> S3Storage:
    section = StorageSection(backend="s3", s3_endpoint_url=server.endpoint, s3_bucket=bucket, s3_region=server.region,
                             s3_access_key=server.access_key,
                             s3_secret_key_file=server.write_secret(root / "s3-secret"),
                             s3_multipart_threshold=args.threshold_mib * MIB, s3_part_size=args.part_mib * MIB,
                             s3_concurrency=args.concurrency)
    storage = open_storage(section)
    assert isinstance(storage, S3Storage)
    return storage


def edge_sync(storage: S3Storage, files: list[MediaFile], prefix: str) -> float:
    """Seconds for the objects and then the manifest, through the sync job's calls."""
    t0 = time.perf_counter()
    for f in sync_order(files):
        storage.put_file(f"{prefix}/{f.relative}", f.path, f.sha256)
    manifest = {"format": central.ATTEMPT_FORMAT, "attempt": ATTEMPT,
                "objects": [{"key": f"{prefix}/{f.relative}", "sha256": f.sha256, "size": f.size} for f in files]}
    storage.put_bytes(central.manifest_key(prefix), json.dumps(manifest, indent=2).encode())
    return time.perf_counter() - t0


def rclone_flags(args: argparse.Namespace) -> list[str]:
    """Ours sends one file at a time, ``--concurrency`` parts of ``--part-mib`` in flight: so does rclone."""
    return ["--transfers", "1", "--s3-upload-concurrency", str(args.concurrency), "--s3-chunk-size",
            f"{args.part_mib}M", "--s3-upload-cutoff", f"{args.threshold_mib}M"]


def rclone_copy(server: CephS3, bucket: str, tree: Path, prefix: str, args: argparse.Namespace) -> float:
    """Seconds for ``rclone copy`` of the same files (environment-configured remote ``central:``)."""
    # No AWS_* at all: rclone 1.60 fails with LoadCustomCABundleError while AWS_CA_BUNDLE is set.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update({"RCLONE_CONFIG_CENTRAL_TYPE": "s3", "RCLONE_CONFIG_CENTRAL_PROVIDER": "Ceph",
                "RCLONE_CONFIG_CENTRAL_ENDPOINT": server.endpoint, "RCLONE_CONFIG_CENTRAL_REGION": server.region,
                "RCLONE_CONFIG_CENTRAL_ACCESS_KEY_ID": server.access_key,
                "RCLONE_CONFIG_CENTRAL_SECRET_ACCESS_KEY": server.secret_key})
    cmd = ["rclone", "--config", "/dev/null", "copy", str(tree), f"central:{bucket}/{prefix}", *rclone_flags(args)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, timeout=3600, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def listed(server: CephS3, bucket: str, prefix: str) -> dict[str, int]:
    client, out, token = server.client(), {}, None
    while True:
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/",
                                      **({"ContinuationToken": token} if token else {}))
        out.update({o["Key"][len(prefix) + 1:]: o["Size"] for o in page.get("Contents", [])})
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def check_copy(server: CephS3, bucket: str, prefix: str, files: list[MediaFile], who: str) -> None:
    have = listed(server, bucket, prefix)
    want = {f.relative: f.size for f in files}
    have.pop(central.MANIFEST_NAME, None)
    if have != want:
        wrong = sorted(k for k in want.keys() | have.keys() if have.get(k) != want.get(k))
        raise RuntimeError(f"{who}: {len(wrong)} objects missing or of the wrong size under {prefix}: {wrong[:5]}")


def setup_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "urllib3", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="length of the sitting (default 25)")
    parser.add_argument("--mbit", type=float, default=2.0, help="video bitrate per camera (default 2 Mbit/s)")
    parser.add_argument("--questions", type=int, default=5, help="per-question files per camera (default 5)")
    parser.add_argument("--concurrency", type=int, default=4, help="parts in flight (default 4)")
    parser.add_argument("--part-mib", type=int, default=8, help="multipart part size (default 8 MiB)")
    parser.add_argument("--threshold-mib", type=int, default=16, help="multipart from this size (default 16 MiB)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of both peers, alternating (default 1)")
    parser.add_argument("--objectstore", choices=["bluestore", "memstore"], default="bluestore")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="where test media is kept")
    args = parser.parse_args(argv)
    setup_logging()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # unwinds: the gateway stops
    for tool in ("ffmpeg", "rclone"):
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed (scripts/install-bench-peers.sh)")

    tree, files = make_attempt(args.cache_dir, args.minutes, args.mbit, args.questions)
    total = sum(f.size for f in files)
    for f in files:  # both peers read from the page cache
        f.path.read_bytes()
    logger.info("%d files, %.1f MB (%d segments, %d question files)", len(files), total / 1e6,
                sum(f.relative.startswith("segments/") for f in files),
                sum(f.relative.startswith("questions/") for f in files))
    root = Path(tempfile.mkdtemp(prefix="ek-bench-central-"))
    server = None
    try:
        store_bytes = max(4 << 30, (2 * args.rounds + 1) * total * 3 // 2)
        server = start_ceph_s3(root / "ceph", objectstore=args.objectstore, store_bytes=store_bytes)
        bucket = server.bucket("central")
        storage = storage_for(server, bucket, root, args)
        storage.put_bytes("warmup/probe", b"warm")
        load_before = round(os.getloadavg()[0], 2)
        ours_s = rclone_s = 0.0
        sent_before = storage.bytes_sent
        for number in range(args.rounds):
            order = ["ours", "rclone"] if number % 2 == 0 else ["rclone", "ours"]
            for who in order:
                prefix = f"{who}-{number}/{PREFIX}"
                logger.info("round %d: %s", number + 1, who)
                if who == "ours":
                    ours_s += edge_sync(storage, files, prefix)
                else:
                    rclone_s += rclone_copy(server, bucket, tree, prefix, args)
                check_copy(server, bucket, prefix, files, who)
        sent, read_back = storage.bytes_sent - sent_before, storage.bytes_read_back
        resync_s = edge_sync(storage, files, f"ours-0/{PREFIX}")
        load_after = round(os.getloadavg()[0], 2)
        mb_per_s = sent / 1e6 / ours_s
        rclone_mb_per_s = total * args.rounds / 1e6 / rclone_s
        result = {
            "megabytes": round(total / 1e6, 1),
            "objects": len(files) + 1,
            "segments": sum(f.relative.startswith("segments/") for f in files),
            "question_files": sum(f.relative.startswith("questions/") for f in files),
            "minutes": args.minutes,
            "mbit_per_camera": args.mbit,
            "store": f"ceph radosgw ({args.objectstore})",
            "concurrency": args.concurrency,
            "part_mib": args.part_mib,
            "threshold_mib": args.threshold_mib,
            "rounds": args.rounds,
            "mb_per_s": round(mb_per_s, 1),
            "rclone_mb_per_s": round(rclone_mb_per_s, 1),
            "rclone_flags": " ".join(rclone_flags(args)),
            "ratio_vs_rclone": round(mb_per_s / rclone_mb_per_s, 3),
            "bytes_sent": sent,
            "bytes_read_back": read_back,
            "readback_fraction": round(read_back / sent, 6) if sent else 0.0,
            "resync_s": round(resync_s, 2),
            "resync_bytes_sent": storage.bytes_sent - sent_before - sent,
            "load_avg_1m": [load_before, load_after],
        }
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
