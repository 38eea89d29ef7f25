"""Benchmark of the regional indexer; prints one JSON line on stdout (logs on stderr).

The workload: ``--centres`` (100) x ``--per-centre`` (100) = 10,000 synthetic attempt manifests,
valid for ``examkiosk_wire.central.parse_attempt_manifest``, each listing ``--segments`` (2) segments
per camera (main, evidence) with a chain signed by a real station key, two per-question files and
a face-login frame, plus one ``sitting.json`` per centre. Only the documents are written (the
indexer never reads media). The store: a directory under a temporary directory, and with
``--backend s3`` (or ``both``) a fresh bucket of a throw-away Ceph RADOS Gateway that the bench
starts itself (``tests/s3server.py``; Debian's ``radosgw``). The database: a fresh SQLite file
(``--database-url`` for PostgreSQL), migrated with the region's Alembic migrations.

Reports, per backend:
- ``manifests_per_s``: one full index pass over every centre (goal >= 200), and the same for
  ``peer_manifests_per_s``: a plain loop of ``list`` + ``get`` + ``json.loads`` over the same store in
  the same run (the floor any indexer pays for reading), and ``ratio_vs_peer``;
- ``rescan_s``: a second pass with nothing changed (listing and ETag comparison only);
- ``landing_to_ui_s``: a new manifest written, then an index pass and the attempts page fetched over
  HTTP until it lists the new attempt (the time a regional admin waits, less the daemon's interval).

Run: ``.venv/bin/python -m bench.region_ingest`` (``--per-centre 10`` for a quick run).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flask_migrate import upgrade
from werkzeug.serving import make_server

from examkiosk_wire import central
from examkiosk_wire.chain import GENESIS, ChainEntry, StationKey
from region_server import create_app
from region_server.auth import settings as settings_of
from region_server.config import load_settings
from region_server.extensions import db
from region_server.indexer import index_once
from region_server.models import Role
from region_server.store import open_store, store_for
from region_server.users import create_user

logger = logging.getLogger("bench.region_ingest")
PASSWORD = "bench password 1"


def manifest_bytes(centre: str, sitting: str, lot: int, station: StationKey, segments: int) -> bytes:
    attempt = f"{centre}-{lot:04d}"
    prefix = central.attempt_prefix(centre, sitting, lot, attempt)
    objects = []
    for camera in ("main", "evidence"):
        prev = GENESIS
        for seq in range(segments):
            name = f"{attempt}_{camera}_{seq:05d}.mkv"
            sha = f"{(lot * 7 + seq) % 16:x}" * 64
            entry = ChainEntry(attempt=attempt, camera=camera, seq=seq, name=name, question=1,
                               started_at=1000.0 + 3 * seq, ended_at=1003.0 + 3 * seq, size=1_500_000, sha256=sha,
                               prev=prev)
            digest = entry.digest()
            objects.append({"key": central.segment_key(prefix, name), "sha256": sha, "size": 1_500_000,
                            "camera": camera, "seq": seq, "question": 1, "started_at": entry.started_at,
                            "ended_at": entry.ended_at, "chain": {"prev": prev, "entry": digest,
                                                                  "sig": station.sign(digest)}})
            prev = digest
    questions = [{"key": central.question_key(prefix, f"{camera}_q1.mp4"), "sha256": "a" * 64, "size": 9_000_000,
                  "camera": camera, "question": 1, "duration": 120.0, "offset": 1000.0} for camera in ("main", "evidence")]
    document = central.AttemptManifest.model_validate({
        "format": central.ATTEMPT_FORMAT, "centre": centre, "sitting": sitting, "attempt": attempt, "lot": lot,
        "station": "st-01", "finished_at": "2026-12-01T09:30:00+00:00", "end_reason": "completed",
        "station_public_key": station.public_b64, "objects": objects, "questions": questions,
        "flags": [{"kind": "looking_away", "started_at": 1010.0, "ended_at": 1012.0}],
        "face_login": {"tries": [{"try": 1, "key": central.face_try_key(prefix, 1), "sha256": "b" * 64,
                                  "matched": True, "distance": 0.3}]}})
    return central.dump(document)


def sitting_bytes(centre: str, sitting: str, lots: int) -> bytes:
    return central.dump(central.SittingManifest(
        format=central.SITTING_FORMAT, centre=centre, sitting=sitting, name="Morning", expected=lots,
        lots=[central.LotState(lot=lot, attempt=f"{centre}-{lot:04d}", started=True, finished=True,
                               complete_at_edge=True, synced=True) for lot in range(1, lots + 1)]))


class Writer:
    """Puts documents into the store under test (a directory, or the bucket through boto3)."""

    def __init__(self, storage: dict[str, Any], client: Any = None):
        self.storage, self.client = storage, client

    def put(self, key: str, data: bytes) -> None:
        if self.client is not None:
            self.client.put_object(Bucket=self.storage["s3_bucket"], Key=key, Body=data)
            return
        path = Path(self.storage["directory"]) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_workload(writer: Writer, centres: int, per_centre: int, segments: int, station: StationKey) -> int:
    jobs = []
    for c in range(centres):
        centre = f"c{c:03d}"
        jobs.append((central.sitting_manifest_key(centre, "am"), sitting_bytes(centre, "am", per_centre)))
        for lot in range(1, per_centre + 1):
            jobs.append((central.manifest_key(central.attempt_prefix(centre, "am", lot, f"{centre}-{lot:04d}")),
                         manifest_bytes(centre, "am", lot, station, segments)))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda job: writer.put(*job), jobs))
    return len(jobs)


def peer_pass(storage: dict[str, Any]) -> tuple[int, float]:
    """The floor: list every centre, get every manifest, json.loads it."""
    store = open_store(load_settings(Path("/nonexistent"), secret_key="x", storage=storage).storage)
    start = time.perf_counter()
    n = 0
    for centre in store.centres():
        for item in store.list(centre + "/"):
            if central.kind_of_key(item.key) == "attempt":
                json.loads(store.get(item.key))
                n += 1
    return n, time.perf_counter() - start


def run_backend(name: str, storage: dict[str, Any], writer: Writer, args: argparse.Namespace, work: Path,
                station: StationKey) -> dict[str, Any]:
    t0 = time.perf_counter()
    documents = write_workload(writer, args.centres, args.per_centre, args.segments, station)
    write_s = time.perf_counter() - t0
    url = args.database_url or f"sqlite:///{work / f'region-{name}.db'}"
    settings = load_settings(Path("/nonexistent"), secret_key="bench", database_url=url, storage=storage,
                             data_dir=work / "data", index={"commit_every": args.commit_every})
    app = create_app(settings)
    with app.app_context():
        upgrade(directory=str(Path(__file__).resolve().parents[1] / "region_server" / "migrations"))
        create_user(db.session, "admin", PASSWORD, Role.REGIONAL_ADMIN)
        db.session.commit()

    peer_n, peer_s = peer_pass(storage)
    with app.app_context():
        start = time.perf_counter()
        report = index_once(db.session, store_for(app), settings_of(app).index)
        index_s = time.perf_counter() - start
        start = time.perf_counter()
        again = index_once(db.session, store_for(app), settings_of(app).index)
        rescan_s = time.perf_counter() - start
        db.session.remove()
    assert len(report.attempts) == args.centres * args.per_centre and report.problems == 0, report
    assert again.attempts == []

    landing = run_landing(app, writer, args, station)
    manifests = len(report.attempts)
    return {"backend": name, "manifests": manifests, "documents_written": documents, "write_s": round(write_s, 2),
            "index_s": round(index_s, 2), "manifests_per_s": round(manifests / index_s, 1),
            "peer_manifests_per_s": round(peer_n / peer_s, 1), "ratio_vs_peer": round((manifests / index_s) /
                                                                                     (peer_n / peer_s), 3),
            "rescan_s": round(rescan_s, 2), "landing_to_ui_s": round(landing, 3)}


def run_landing(app, writer: Writer, args: argparse.Namespace, station: StationKey) -> float:
    """A new manifest lands; an index pass runs and the attempts page is fetched until it shows it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        page = opener.open(f"{base}/login").read().decode()
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        body = f"username=admin&password={PASSWORD.replace(' ', '+')}&csrf_token={token}".encode()
        opener.open(urllib.request.Request(f"{base}/login", data=body))
        lot = args.per_centre + 1
        prefix = central.attempt_prefix("c000", "am", lot, f"c000-{lot:04d}")
        start = time.perf_counter()
        writer.put(central.manifest_key(prefix), manifest_bytes("c000", "am", lot, station, args.segments))
        while True:
            with app.app_context():
                index_once(db.session, store_for(app), settings_of(app).index)
                db.session.remove()
            html = opener.open(f"{base}/region/attempts?centre=c000").read().decode()
            if f'data-prefix="{prefix}"' in html:
                return time.perf_counter() - start
            if time.perf_counter() - start > 300:
                raise TimeoutError(f"{prefix} never showed on the attempts page")
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.region_ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--centres", type=int, default=100)
    parser.add_argument("--per-centre", type=int, default=100)
    parser.add_argument("--segments", type=int, default=2, help="segments per camera in each manifest")
    parser.add_argument("--backend", choices=["directory", "s3", "both"], default="both")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--commit-every", type=int, default=500)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for key in list(os.environ):
        if key.startswith("EXAMKIOSK_REGION_"):
            del os.environ[key]
    results: dict[str, Any] = {"bench": "region_ingest", "centres": args.centres, "per_centre": args.per_centre}
    with tempfile.TemporaryDirectory(prefix="region-ingest-") as tmp:
        work = Path(tmp)
        station = StationKey.load_or_create(work / "station.pem")
        runs = []
        if args.backend in ("directory", "both"):
            storage = {"backend": "directory", "directory": str(work / "central")}
            runs.append(run_backend("directory", storage, Writer(storage), args, work, station))
        if args.backend in ("s3", "both"):
            from tests.s3server import start_ceph_s3  # optional: only the S3 run needs the test gateway

            ceph = start_ceph_s3(work / "ceph")
            try:
                bucket = ceph.bucket()
                storage = {"backend": "s3", "s3_endpoint_url": ceph.endpoint, "s3_bucket": bucket,
                           "s3_region": ceph.region, "s3_access_key": ceph.access_key,
                           "s3_secret_key_file": str(ceph.write_secret(work / "s3-secret"))}
                runs.append(run_backend("s3", storage, Writer(storage, ceph.client()), args, work, station))
            finally:
                ceph.stop()
        first = runs[0]
        results.update({k: first[k] for k in ("manifests_per_s", "peer_manifests_per_s", "ratio_vs_peer",
                                              "landing_to_ui_s")})
        results["runs"] = runs
        results["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
