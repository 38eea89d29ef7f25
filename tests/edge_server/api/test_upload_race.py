"""PATCHes racing the one that completes an upload, over real sockets: a verified upload is immutable.

Ten requests at once against one upload whose first half is on the edge: three fast PATCHes of
the right second half (one completes the upload), fast ones at offset 0 and at the end, and four
slow ones whose headers are on the wire before the upload completes and whose bodies arrive
after (at offset 0 and at the then-current offset, with the same and with other bytes). Once it
is verified, nothing changes the file or the segment's row, every later PATCH is a 409
``upload_complete``, and no part or lock file is left. Once in the threaded werkzeug server (SQLite
and PostgreSQL), once under gunicorn with two workers (the lock is between processes too).
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from edge_server import create_app
from edge_server.config import load_settings
from edge_server.extensions import db
from edge_server.models import Segment, SegmentStatus
from provisioning.toml_file import write_toml
from tests.edge_server.conftest import SECRET_KEY, clean_environment, dispose_app, run_migrations
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station
from tests.services import free_port, start_edge_web

SIZE = 200_000
HALF = SIZE // 2
DEADLINE_S = 60.0  # for any one wait below, on a loaded 2-core machine
# The deliberate slowness: a slow sender waits this long after its first bytes, so that the edge has
# taken up its request (authenticated it, found the upload) before the upload completes.
SLOW_PAUSE_S = 0.5


@dataclass
class Target:
    base: str
    token: str
    attempt: str
    uploads_dir: Path
    recordings_dir: Path
    segment: Callable[[str], Segment | None]  # a detached copy of the segment's row, by name


@dataclass
class Outcome:
    who: str
    status: int
    code: str | None
    finished_at: float = field(default_factory=time.monotonic)


def _detached(app, name: str) -> Segment | None:
    with app.app_context():
        seg = db.session.scalar(select(Segment).where(Segment.name == name))
        if seg is not None:
            db.session.expunge(seg)
        return seg


@pytest.fixture
def werkzeug_edge(app, settings, live_server) -> Target:
    with app.app_context():
        station, token = make_station(db.session, "c1", "st-race")
        sitting = make_sitting(db.session, "c1", starts_in=-60)
        attempt = make_attempt(db.session, make_candidate(db.session, sitting), station).id
        db.session.commit()
    return Target(live_server, token, attempt, settings.uploads_dir, settings.recordings_dir,
                  lambda name: _detached(app, name))


@pytest.fixture
def gunicorn_edge(tmp_path: Path) -> Iterator[Target]:
    """The edge under gunicorn, two workers of eight threads: however the ten requests fall on the
    workers, the four slow ones leave each worker a thread for the fast ones."""
    config = tmp_path / "edge.toml"
    database_url = f"sqlite:///{tmp_path / 'edge.db'}"
    write_toml(config, {"secret_key": SECRET_KEY, "database_url": database_url, "data_dir": str(tmp_path / "data"),
                        "redis_url": f"redis://127.0.0.1:{free_port()}/0", "discovery": {"enabled": False},
                        "storage": {"directory": str(tmp_path / "central")}})
    run_migrations(database_url, tmp_path / "data")
    with clean_environment():
        settings = load_settings(config)
    app = create_app(settings)
    try:
        with app.app_context():
            station, token = make_station(db.session, "c1", "st-race")
            sitting = make_sitting(db.session, "c1", starts_in=-60)
            attempt = make_attempt(db.session, make_candidate(db.session, sitting), station).id
            db.session.commit()
        web = start_edge_web(config, tmp_path / "gunicorn.log", workers=2, threads=8)
        try:
            yield Target(web.url, token, attempt, settings.uploads_dir, settings.recordings_dir,
                         lambda name: _detached(app, name))
        finally:
            web.stop()
    finally:
        dispose_app(app)


def _headers(token: str, offset: int, chunk: bytes) -> dict[str, str]:
    return {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}", "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream", "Content-Length": str(len(chunk)),
            "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(chunk).digest()).decode()}


def _code(status: int, body: bytes) -> str | None:
    if status == 204:
        return None
    try:
        return json.loads(body)["code"]
    except (ValueError, KeyError):
        return f"not JSON: {body[:200]!r}"


def _wait(event: threading.Event, what: str) -> None:
    if not event.wait(DEADLINE_S):
        raise AssertionError(f"waited {DEADLINE_S:.0f} s for {what}")


def _create(target: Target, data: bytes) -> str:
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    {"attempt": target.attempt, "name": "race.mkv",
                     "sha256": hashlib.sha256(data).hexdigest()}.items())
    resp = requests.post(f"{target.base}/api/v1/uploads/", timeout=DEADLINE_S, headers={
        "Tus-Resumable": "1.0.0", "Authorization": f"Bearer {target.token}", "Upload-Length": str(len(data)),
        "Upload-Metadata": meta})
    assert resp.status_code == 201, resp.text
    return requests.compat.urljoin(f"{target.base}/api/v1/uploads/", resp.headers["Location"])


def _fast(target: Target, url: str, who: str, offset: int, chunk: bytes, start: threading.Barrier,
          outcomes: list[Outcome]) -> None:
    start.wait(DEADLINE_S)
    resp = requests.patch(url, data=chunk, headers=_headers(target.token, offset, chunk), timeout=DEADLINE_S)
    outcomes.append(Outcome(who, resp.status_code, _code(resp.status_code, resp.content)))


def _slow(target: Target, url: str, who: str, offset: int, chunk: bytes, on_the_wire: threading.Event,
          go_on: threading.Event, outcomes: list[Outcome]) -> None:
    """A PATCH whose headers and first bytes go out now and whose last bytes go out after ``go_on``."""
    def body() -> Iterator[bytes]:
        yield chunk[:1000]
        time.sleep(SLOW_PAUSE_S)  # the deliberate slow sender
        on_the_wire.set()
        _wait(go_on, "the fast PATCHes to be answered")
        yield chunk[1000:]

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE_S)
    try:
        conn.request("PATCH", parts.path, body=body(), headers=_headers(target.token, offset, chunk))
        resp = conn.getresponse()
        outcomes.append(Outcome(who, resp.status, _code(resp.status, resp.read())))
    finally:
        conn.close()


def race(target: Target) -> None:
    data = os.urandom(SIZE)
    other = os.urandom(SIZE)
    url = _create(target, data)
    first = requests.patch(url, data=data[:HALF], headers=_headers(target.token, 0, data[:HALF]),
                           timeout=DEADLINE_S)
    assert first.status_code == 204, first.text

    outcomes: list[Outcome] = []
    errors: list[BaseException] = []
    fast_done = threading.Event()

    def run(fn: Callable[..., None], *args) -> threading.Thread:
        def guarded() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # reported by the test, not lost in the thread
                errors.append(exc)
        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        return thread

    slow = {  # who: (offset, bytes)
        "slow at 0, other bytes": (0, other[:HALF]),
        "slow at 0, the same bytes": (0, data),
        "slow at the current offset, the same bytes": (HALF, data[HALF:]),
        "slow at the current offset, other bytes": (HALF, other[HALF:]),
    }
    wired = {who: threading.Event() for who in slow}
    threads = [run(_slow, target, url, who, offset, chunk, wired[who], fast_done, outcomes)
               for who, (offset, chunk) in slow.items()]
    for who, event in wired.items():
        _wait(event, f"the first bytes of the PATCH {who!r} to be sent")

    fast = {
        "fast at the current offset, the same bytes #1": (HALF, data[HALF:]),
        "fast at the current offset, the same bytes #2": (HALF, data[HALF:]),
        "fast at the current offset, the same bytes #3": (HALF, data[HALF:]),
        "fast at 0, other bytes": (0, other[:HALF]),
        "fast at 0, the same bytes": (0, data),
        "fast at the end": (SIZE, b"x"),
    }
    start = threading.Barrier(len(fast))
    fast_threads = [run(_fast, target, url, who, offset, chunk, start, outcomes)
                    for who, (offset, chunk) in fast.items()]
    for thread in fast_threads:
        thread.join(DEADLINE_S)
    assert not any(t.is_alive() for t in fast_threads), f"waited {DEADLINE_S:.0f} s for the fast PATCHes"
    assert not errors, errors

    verified = target.segment("race.mkv")
    stored = target.recordings_dir / target.attempt / "race.mkv"
    assert verified is not None and verified.status == SegmentStatus.VERIFIED, outcomes
    inode = stored.stat().st_ino

    fast_done.set()  # now the slow bodies end
    for thread in threads:
        thread.join(DEADLINE_S)
    assert not any(t.is_alive() for t in threads), f"waited {DEADLINE_S:.0f} s for the slow PATCHes"
    assert not errors, errors
    late = requests.patch(url, data=other, headers=_headers(target.token, 0, other), timeout=DEADLINE_S)
    outcomes.append(Outcome("late at 0, other bytes", late.status_code, _code(late.status_code, late.content)))

    by_who = {o.who: o for o in outcomes}
    assert len(by_who) == len(slow) + len(fast) + 1, outcomes
    assert all(o.status < 500 for o in outcomes), outcomes
    completed = [o for o in outcomes if o.status == 204]
    assert len(completed) == 1 and completed[0].who.startswith("fast at the current offset"), outcomes
    for o in outcomes:
        if o.status == 204:
            continue
        allowed = {"upload_complete"} if o.who.startswith(("slow", "late")) else {"upload_complete",
                                                                                  "offset_mismatch"}
        assert o.status == 409 and o.code in allowed, o

    after = target.segment("race.mkv")
    assert after is not None and after.status == SegmentStatus.VERIFIED
    assert (after.verified_at, after.sha256_actual, after.offset) == (verified.verified_at, hashlib.sha256(data)
                                                                      .hexdigest(), SIZE)
    assert stored.read_bytes() == data and stored.stat().st_ino == inode
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == after.sha256_declared
    left = sorted(p.name for p in target.uploads_dir.iterdir()) if target.uploads_dir.exists() else []
    assert left == [], f"left in uploads/: {left}"
    head = requests.head(url, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {target.token}"},
                         timeout=DEADLINE_S)
    assert head.headers["Upload-Offset"] == str(SIZE) and head.headers["Upload-Status"] == "verified"


def test_a_verified_upload_is_immutable_under_racing_patches(werkzeug_edge):
    race(werkzeug_edge)


def test_a_verified_upload_is_immutable_under_racing_patches_across_gunicorn_workers(gunicorn_edge):
    race(gunicorn_edge)
