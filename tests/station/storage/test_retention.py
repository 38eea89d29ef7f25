"""Retention on the station: a segment file goes only after the edge verified it, then after keep_hours."""
from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from station.config import ConfigError, load_settings
from station.storage import retention
from station.storage.journal import Journal, JournalSegment

HOUR = 3600.0
T0 = 1_800_000_000.0  # when the edge verified the verified ones


def row(name: str, *, status: str = "closed", verified_at: float | None = None,
        deleted_at: float | None = None) -> JournalSegment:
    return JournalSegment(name=name, attempt_id="a1", camera="main", seq=0, question=1, path=Path(f"/x/{name}"),
                          started_at=0.0, ended_at=3.0, size=10, sha256="0" * 64, status=status, upload_url=None,
                          uploaded=0, verified_at=verified_at, deleted_at=deleted_at)


def test_policy_unverified_never_due_verified_only_after_keep():
    unverified = row("closed.mkv")
    uploading = replace(row("half.mkv"), upload_url="http://edge/u/1", uploaded=5)
    verified = row("verified.mkv", status="verified", verified_at=T0)
    gone = row("gone.mkv", status="verified", verified_at=T0, deleted_at=T0 + 1)
    segments = [unverified, uploading, verified, gone]

    # Whatever the age and the retention, an unverified segment is kept; nothing is deleted twice.
    for now in (T0, T0 + 24 * HOUR, T0 + 10 * 365 * 24 * HOUR):
        for keep in (0, 24 * HOUR):
            assert unverified not in retention.due(segments, now, keep)
            assert uploading not in retention.due(segments, now, keep)
            assert gone not in retention.due(segments, now, keep)
    # A verified one only once the retention has passed since the edge verified it.
    assert retention.due(segments, T0 + 24 * HOUR - 1, 24 * HOUR) == []
    assert retention.due(segments, T0 + 24 * HOUR, 24 * HOUR) == [verified]
    # keep 0: as soon as the edge verified it.
    assert retention.due(segments, T0, 0) == [verified]


def make_journal(tmp_path: Path, names: list[str]) -> Journal:
    journal = Journal(tmp_path / "journal.db")
    for seq, name in enumerate(names):
        path = tmp_path / "segments" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"segment %d" % seq)
        journal.add_segment(name=name, attempt_id="a1", camera="main", seq=seq, question=1, path=path,
                            started_at=3.0 * seq, ended_at=3.0 * seq + 3, size=9, sha256="0" * 64)
    return journal


def test_sweep_deletes_verified_files_after_keep_and_keeps_the_rows(tmp_path: Path):
    names = [f"a1_main_{i:05d}.mkv" for i in range(4)]
    journal = make_journal(tmp_path, names)
    journal.mark_verified(names[0], at=T0)
    journal.mark_verified(names[1], at=T0 + HOUR)
    journal.set_upload(names[2], url="http://edge/api/v1/uploads/x", uploaded=4)  # half uploaded
    files = {n: tmp_path / "segments" / n for n in names}

    assert retention.sweep(journal, T0 + 2 * HOUR - 1, 2 * HOUR) == []
    assert all(p.exists() for p in files.values())

    assert retention.sweep(journal, T0 + 2 * HOUR, 2 * HOUR) == [names[0]]
    assert not files[names[0]].exists() and files[names[1]].exists()
    assert retention.sweep(journal, T0 + 3 * HOUR, 2 * HOUR) == [names[1]]

    # Ten years on, the unverified ones are still there; every row stays in the journal (the chain).
    assert retention.sweep(journal, T0 + 10 * 365 * 24 * HOUR, 0) == []
    assert files[names[2]].exists() and files[names[3]].exists()
    rows = {s.name: s for s in journal.segments_of("a1")}
    assert sorted(rows) == names
    assert rows[names[0]].deleted_at == T0 + 2 * HOUR and rows[names[1]].deleted_at == T0 + 3 * HOUR
    assert rows[names[2]].deleted_at is None and rows[names[2]].status == "closed"
    assert [s.name for s in journal.pending()] == names[2:]
    assert journal.progress("a1") == (18 + 4, 36, 2, 4)
    journal.close()


def test_verified_again_keeps_the_first_time(tmp_path: Path):
    journal = make_journal(tmp_path, ["a1_main_00000.mkv"])
    journal.mark_verified("a1_main_00000.mkv", at=T0)
    journal.mark_verified("a1_main_00000.mkv", at=T0 + 5 * HOUR)
    assert journal.segments_of("a1")[0].verified_at == T0
    journal.close()


def test_a_journal_from_before_retention_gets_the_columns(tmp_path: Path):
    path = tmp_path / "journal.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE segment (name TEXT PRIMARY KEY, attempt_id TEXT NOT NULL, camera TEXT NOT NULL,
            seq INTEGER NOT NULL, question INTEGER, path TEXT NOT NULL, started_at REAL NOT NULL,
            ended_at REAL NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'closed', upload_url TEXT, uploaded INTEGER NOT NULL DEFAULT 0,
            prev_hash TEXT NOT NULL DEFAULT '', entry_hash TEXT NOT NULL DEFAULT '',
            signature TEXT NOT NULL DEFAULT '');
        INSERT INTO segment (name, attempt_id, camera, seq, path, started_at, ended_at, size, sha256, status)
            VALUES ('old.mkv', 'a1', 'main', 0, '/x/old.mkv', 0, 3, 9, 'ab', 'verified'),
                   ('new.mkv', 'a1', 'main', 1, '/x/new.mkv', 3, 6, 9, 'cd', 'closed');
    """)
    db.close()
    import time

    before = time.time()
    journal = Journal(path)
    rows = {s.name: s for s in journal.segments_of("a1")}
    # Verified before the upgrade: the retention counts from the upgrade, not from never.
    assert rows["old.mkv"].verified_at is not None and rows["old.mkv"].verified_at >= before
    assert rows["new.mkv"].verified_at is None and rows["new.mkv"].deleted_at is None
    assert retention.due(journal.stored(), before, keep_seconds=HOUR) == []
    journal.close()


# --- configuration ------------------------------------------------------------------------------

def station_toml(tmp_path: Path, retention_table: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(f'station_id = "st-01"\ncentre = "c1"\n\n[edge]\ntoken = "t"\n\n[retention]\n{retention_table}\n')
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for key in list(os.environ):
        if key.startswith("EXAMKIOSK_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_retention_config_default_value_and_override(tmp_path: Path, clean_env: pytest.MonkeyPatch):
    assert load_settings(station_toml(tmp_path, "")).retention.keep_hours == 24
    assert load_settings(station_toml(tmp_path, "keep_hours = 0")).retention.keep_hours == 0
    clean_env.setenv("EXAMKIOSK_RETENTION__KEEP_HOURS", "2.5")
    assert load_settings(station_toml(tmp_path, "keep_hours = 0")).retention.keep_hours == 2.5


@pytest.mark.parametrize("table, key", [("keep_hour = 1", "retention.keep_hour"),
                                        ("keep_hours = -1", "retention.keep_hours"),
                                        ('keep_hours = "a day"', "retention.keep_hours")])
def test_retention_config_typo_names_the_key(tmp_path: Path, clean_env: pytest.MonkeyPatch, table: str, key: str):
    with pytest.raises(ConfigError) as err:
        load_settings(station_toml(tmp_path, table))
    assert f"  {key}:" in str(err.value)
