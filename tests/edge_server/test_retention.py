"""Retention on the edge: nothing goes before central storage confirmed it by checksum read back,
then only after ``[retention] keep_hours``; the daemon's scheduler runs the sweep."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from edge_server import retention
from edge_server.config import ConfigError, EdgeSettings, load_settings
from edge_server.daemon.scheduler import Scheduler
from edge_server.extensions import db
from edge_server.models import Attempt, Segment, SegmentStatus, SyncStatus
from edge_server.storage import DirectoryStorage
from tests.edge_server.conftest import clean_environment, make_settings
from tests.edge_server.helpers import make_attempt, make_candidate, make_sitting, make_station

T = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)  # when the sync confirmed the copy
HOUR = timedelta(hours=1)


def edge_file(name: str, *, verified: bool = True, synced_at: datetime | None = T) -> retention.EdgeFile:
    return retention.EdgeFile(Path(f"/edge/{name}"), f"c1/s1/lot-001/segments/{name}", "ab" * 32, verified,
                              synced_at)


def test_policy_unverified_or_unconfirmed_never_due():
    unverified = edge_file("uploading.mkv", verified=False)
    unconfirmed = edge_file("not-synced.mkv", synced_at=None)
    confirmed = edge_file("synced.mkv")
    files = [unverified, unconfirmed, confirmed]
    for now in (T, T + 168 * HOUR, T + timedelta(days=3650)):
        for keep in (timedelta(0), 168 * HOUR):
            assert unverified not in retention.due(files, now, keep)
            assert unconfirmed not in retention.due(files, now, keep)
    assert retention.due(files, T + 168 * HOUR - timedelta(seconds=1), 168 * HOUR) == []
    assert retention.due(files, T + 168 * HOUR, 168 * HOUR) == [confirmed]
    assert retention.due(files, T, timedelta(0)) == [confirmed]


def test_policy_confirmation_is_an_equal_checksum_read_back():
    assert retention.confirmed("ab" * 32, "ab" * 32)
    assert not retention.confirmed("ab" * 32, None)  # central storage does not have it
    assert not retention.confirmed("ab" * 32, "cd" * 32)  # it holds other bytes
    assert not retention.confirmed(None, None) and not retention.confirmed("", "")


# --- the sweep on a real database and a real directory storage ---------------------------------

@dataclass
class Recorded:
    attempt_id: str
    prefix: str
    files: dict[str, Path]  # everything on the edge: segments and the joined question file
    keys: dict[str, str]


def record_attempt(app, settings: EdgeSettings, segments: int = 3) -> Recorded:
    """A finished attempt: verified segments in recordings/, one per-question file in joined/."""
    from edge_server.layout import attempt_prefix

    with app.app_context():
        station, _ = make_station(db.session, "c1")
        sitting = make_sitting(db.session, "c1", starts_in=-900)
        attempt = make_attempt(db.session, make_candidate(db.session, sitting), station, lot=1)
        files, keys = {}, {}
        for seq in range(segments):
            name = f"{attempt.id}_main_{seq:05d}.mkv"
            data = os.urandom(5000 + seq)
            path = settings.recordings_dir / attempt.id / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            db.session.add(Segment(attempt_id=attempt.id, station_id=station.id, name=name, seq=seq, question=1,
                                   length=len(data), offset=len(data), sha256_declared=digest, sha256_actual=digest,
                                   status=SegmentStatus.VERIFIED, verified_at=T - HOUR))
            files[name], keys[name] = path, f"{attempt_prefix(attempt)}/segments/{name}"
        joined = settings.data_dir / "joined" / attempt.id / "main_q1.mp4"
        joined.parent.mkdir(parents=True)
        joined.write_bytes(os.urandom(7000))
        files[joined.name], keys[joined.name] = joined, f"{attempt_prefix(attempt)}/questions/{joined.name}"
        db.session.commit()
        return Recorded(attempt.id, attempt_prefix(attempt), files, keys)


def set_sync(app, attempt_id: str, status: SyncStatus, synced_at: datetime | None) -> None:
    with app.app_context():
        attempt = db.session.get(Attempt, attempt_id)
        attempt.sync_status, attempt.synced_at = status, synced_at
        db.session.commit()


def sweep(app, settings: EdgeSettings, now: datetime, **kwargs) -> dict[str, int]:
    with app.app_context():
        try:
            return retention.sweep(db.session, settings, DirectoryStorage(settings.storage.directory), now, **kwargs)
        finally:
            db.session.remove()


def on_edge(rec: Recorded) -> set[str]:
    return {name for name, path in rec.files.items() if path.exists()}


def test_sweep_deletes_only_what_central_storage_confirmed_after_the_retention(app, settings: EdgeSettings):
    rec = record_attempt(app, settings)
    central = DirectoryStorage(settings.storage.directory)
    part = settings.uploads_dir / "unfinished.part"  # an upload still under way
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"half a segment")
    everything = set(rec.files)
    ten_years = T + timedelta(days=3650)

    # Not synced: nothing goes, however old.
    for status in (SyncStatus.NONE, SyncStatus.QUEUED, SyncStatus.FAILED):
        set_sync(app, rec.attempt_id, status, None)
        assert sweep(app, settings, ten_years) == {"deleted": 0, "unconfirmed": 0}
    assert on_edge(rec) == everything

    # The sync says done, but central storage does not hold the objects (lost, another bucket...).
    set_sync(app, rec.attempt_id, SyncStatus.SYNCED, T)
    assert sweep(app, settings, ten_years) == {"deleted": 0, "unconfirmed": len(everything)}
    assert on_edge(rec) == everything

    # Central storage holds all of them, one with other bytes.
    wrong = sorted(rec.files)[1]
    for name, path in rec.files.items():
        if name == wrong:
            central.put_bytes(rec.keys[name], b"not the segment")
        else:
            central.put_file(rec.keys[name], path, hashlib.sha256(path.read_bytes()).hexdigest())
    keep = settings.retention.keep_hours * HOUR
    assert keep == 168 * HOUR  # the default: a week
    assert sweep(app, settings, T + keep - timedelta(seconds=1)) == {"deleted": 0, "unconfirmed": 0}
    assert on_edge(rec) == everything
    # Its sync running again: its confirmation does not count while it runs.
    assert sweep(app, settings, T + keep, syncing=lambda a: a == rec.attempt_id) == {"deleted": 0, "unconfirmed": 0}

    assert sweep(app, settings, T + keep) == {"deleted": len(everything) - 1, "unconfirmed": 1}
    assert on_edge(rec) == {wrong}
    assert part.exists()
    with app.app_context():
        attempt = db.session.get(Attempt, rec.attempt_id)
        assert retention.removed_by_retention(db.session, settings, attempt)


def test_a_segment_verified_after_the_sync_is_kept(app, settings: EdgeSettings):
    rec = record_attempt(app, settings, segments=2)
    late = sorted(n for n in rec.files if n.endswith(".mkv") and "_main_" in n)[-1]
    with app.app_context():
        seg = db.session.query(Segment).filter_by(name=late).one()
        seg.verified_at = T + HOUR
        db.session.commit()
    central = DirectoryStorage(settings.storage.directory)
    for name, path in rec.files.items():
        central.put_file(rec.keys[name], path, hashlib.sha256(path.read_bytes()).hexdigest())
    set_sync(app, rec.attempt_id, SyncStatus.SYNCED, T)
    assert sweep(app, settings, T + timedelta(days=3650))["deleted"] == len(rec.files) - 1
    assert on_edge(rec) == {late}


def test_scheduler_sweeps_at_its_interval(app, db_url: str, tmp_path: Path):
    settings = make_settings(db_url, tmp_path / "data", retention={"keep_hours": 0, "sweep_seconds": 600})
    rec = record_attempt(app, settings, segments=1)
    central = DirectoryStorage(settings.storage.directory)
    for name, path in rec.files.items():
        central.put_file(rec.keys[name], path, hashlib.sha256(path.read_bytes()).hexdigest())
    set_sync(app, rec.attempt_id, SyncStatus.SYNCED, T)
    scheduler = Scheduler(settings, app, enqueue=lambda s, a: None, job_state=lambda a: None)

    assert scheduler.run_once(T + HOUR)["retention"] == len(rec.files)
    assert on_edge(rec) == set()
    # The next sweep waits for sweep_seconds; the others chores run every round.
    assert scheduler.run_once(T + 2 * HOUR)["retention"] == 0


# --- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("table, key", [("keep_hour = 1", "retention.keep_hour"),
                                        ("keep_hours = -1", "retention.keep_hours"),
                                        ("sweep_seconds = 0", "retention.sweep_seconds")])
def test_retention_config_typo_names_the_key(tmp_path: Path, table: str, key: str):
    path = tmp_path / "edge.toml"
    path.write_text(f'secret_key = "s"\n\n[retention]\n{table}\n')
    with clean_environment(), pytest.raises(ConfigError) as err:
        load_settings(path)
    assert f"  {key}:" in str(err.value)
