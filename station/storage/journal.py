"""The station's local journal: SQLite that makes a crash or power cut resumable.

It holds the flow state (written through on every change), when the agent was last alive, the
paper key of a started sitting (sealed, until the attempt ends), and every closed segment with its upload progress, when the edge verified it and when its file was
deleted (the row stays: it is a link of the signed chain). ``synchronous=FULL`` so that a
committed row survives a power cut.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from station.flow import FlowState

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data TEXT NOT NULL,
    saved_at REAL NOT NULL,
    alive_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS segment (
    name TEXT PRIMARY KEY,
    attempt_id TEXT NOT NULL,
    camera TEXT NOT NULL,
    seq INTEGER NOT NULL,
    question INTEGER,
    path TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'closed',   -- closed | verified
    upload_url TEXT,
    uploaded INTEGER NOT NULL DEFAULT 0,
    prev_hash TEXT NOT NULL DEFAULT '',
    entry_hash TEXT NOT NULL DEFAULT '',
    signature TEXT NOT NULL DEFAULT '',
    verified_at REAL,                        -- wall clock when the edge verified it
    deleted_at REAL                          -- wall clock when retention deleted its file
);
CREATE INDEX IF NOT EXISTS segment_attempt ON segment (attempt_id, camera, seq);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempt_id TEXT
);
-- A started sitting's paper key, sealed with the station's own key (station.paper.KeyVault): a
-- station that restarts while the edge is unreachable opens the paper again. Removed when the
-- attempt ends; nothing of a key is written before its sitting starts.
CREATE TABLE IF NOT EXISTS paper_key (
    sitting TEXT PRIMARY KEY,
    attempt_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class JournalSegment:
    name: str
    attempt_id: str
    camera: str
    seq: int
    question: int | None
    path: Path
    started_at: float
    ended_at: float
    size: int
    sha256: str
    status: str
    upload_url: str | None
    uploaded: int
    prev_hash: str = ""
    entry_hash: str = ""
    signature: str = ""
    verified_at: float | None = None
    deleted_at: float | None = None


# Columns added after the first release; a journal from before gets them on open.
_ADDED_COLUMNS = {"verified_at": "REAL", "deleted_at": "REAL"}


class Journal:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._add_columns()

    def _add_columns(self) -> None:
        have = {row[1] for row in self._db.execute("PRAGMA table_info(segment)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE segment ADD COLUMN {name} {kind}")
                if name == "verified_at":
                    # Verified before the column existed: the retention counts from now.
                    self._db.execute("UPDATE segment SET verified_at = ? WHERE status = 'verified'", (time.time(),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- flow state ---------------------------------------------------------------------------
    def load_state(self) -> tuple[FlowState, float] | None:
        with self._lock:
            row = self._db.execute("SELECT data, alive_at FROM state WHERE id = 1").fetchone()
        if row is None:
            return None
        return FlowState.from_dict(json.loads(row[0])), float(row[1])

    def save_state(self, state: FlowState, now: float) -> None:
        data = json.dumps(state.to_dict(), ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT INTO state (id, data, saved_at, alive_at) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at, "
                "alive_at = excluded.alive_at",
                (data, now, now),
            )

    def touch_alive(self, now: float) -> None:
        with self._lock:
            self._db.execute("UPDATE state SET alive_at = ? WHERE id = 1", (now,))

    # --- segments -----------------------------------------------------------------------------
    def add_segment(self, *, name: str, attempt_id: str, camera: str, seq: int, question: int | None, path: Path,
                    started_at: float, ended_at: float, size: int, sha256: str, prev_hash: str = "",
                    entry_hash: str = "", signature: str = "") -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO segment (name, attempt_id, camera, seq, question, path, started_at, ended_at,"
                " size, sha256, prev_hash, entry_hash, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, attempt_id, camera, seq, question, str(path), started_at, ended_at, size, sha256, prev_hash,
                 entry_hash, signature),
            )

    def last_entry(self, attempt_id: str, camera: str) -> str:
        """The chain hash of the camera's latest segment ('' before the first)."""
        with self._lock:
            row = self._db.execute("SELECT entry_hash FROM segment WHERE attempt_id = ? AND camera = ? "
                                   "ORDER BY seq DESC LIMIT 1", (attempt_id, camera)).fetchone()
        return row[0] if row else ""

    def _rows(self, where: str, args: tuple) -> list[JournalSegment]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, attempt_id, camera, seq, question, path, started_at, ended_at, size, sha256, status,"
                " upload_url, uploaded, prev_hash, entry_hash, signature, verified_at, deleted_at"
                f" FROM segment WHERE {where} ORDER BY attempt_id, camera, seq", args
            ).fetchall()
        return [JournalSegment(*r[:5], Path(r[5]), *r[6:]) for r in rows]

    def pending(self) -> list[JournalSegment]:
        return self._rows("status != 'verified'", ())

    def segments_of(self, attempt_id: str) -> list[JournalSegment]:
        return self._rows("attempt_id = ?", (attempt_id,))

    def stored(self) -> list[JournalSegment]:
        """Every segment whose file retention has not deleted yet."""
        return self._rows("deleted_at IS NULL", ())

    def next_seq(self, attempt_id: str, camera: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM segment WHERE attempt_id = ? AND camera = ?",
                                   (attempt_id, camera)).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def set_upload(self, name: str, *, url: str | None = None, uploaded: int | None = None) -> None:
        with self._lock:
            if url is not None:
                self._db.execute("UPDATE segment SET upload_url = ? WHERE name = ?", (url, name))
            if uploaded is not None:
                self._db.execute("UPDATE segment SET uploaded = ? WHERE name = ?", (uploaded, name))

    def mark_verified(self, name: str, at: float | None = None) -> None:
        with self._lock:
            self._db.execute("UPDATE segment SET status = 'verified', uploaded = size,"
                             " verified_at = COALESCE(verified_at, ?) WHERE name = ?",
                             (time.time() if at is None else at, name))

    def mark_deleted(self, name: str, at: float) -> None:
        with self._lock:
            self._db.execute("UPDATE segment SET deleted_at = ? WHERE name = ?", (at, name))

    # --- events not yet delivered to the edge -------------------------------------------------
    def enqueue_event(self, kind: str, payload: dict, attempt_id: str | None) -> None:
        with self._lock:
            self._db.execute("INSERT INTO outbox (kind, payload, attempt_id) VALUES (?, ?, ?)",
                             (kind, json.dumps(payload, ensure_ascii=False), attempt_id))

    def pending_events(self, limit: int = 50) -> list[tuple[int, str, dict, str | None]]:
        with self._lock:
            rows = self._db.execute("SELECT id, kind, payload, attempt_id FROM outbox ORDER BY id LIMIT ?",
                                    (limit,)).fetchall()
        return [(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def event_delivered(self, event_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (event_id,))

    def progress(self, attempt_id: str) -> tuple[int, int, int, int]:
        """(bytes uploaded, bytes total, segments verified, segments total) of an attempt."""
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(uploaded), 0), COALESCE(SUM(size), 0),"
                " COALESCE(SUM(status = 'verified'), 0), COUNT(*) FROM segment WHERE attempt_id = ?",
                (attempt_id,)).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    # --- a started sitting's paper key, sealed (station.paper.KeyVault) -----------------------
    def keep_paper_key(self, sitting: str, attempt_id: str, nonce: bytes, sealed: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT INTO paper_key (sitting, attempt_id, nonce, sealed) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (sitting) DO UPDATE SET attempt_id = excluded.attempt_id, "
                             "nonce = excluded.nonce, sealed = excluded.sealed", (sitting, attempt_id, nonce, sealed))

    def paper_keys(self) -> list[tuple[str, str, bytes, bytes]]:
        """(sitting, attempt, nonce, sealed key) of every kept key."""
        with self._lock:
            return [(r[0], r[1], bytes(r[2]), bytes(r[3])) for r in self._db.execute(
                "SELECT sitting, attempt_id, nonce, sealed FROM paper_key ORDER BY sitting")]

    def drop_paper_keys(self, keep_attempt: str | None = None) -> None:
        """Every kept key, or every key but those of ``keep_attempt``."""
        with self._lock:
            self._db.execute("DELETE FROM paper_key WHERE ? IS NULL OR attempt_id != ?", (keep_attempt, keep_attempt))
