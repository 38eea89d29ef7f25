"""Fault harness: the real station agents against the real edge stack, with faults injected.

A ``Kiosk`` drives one station through its kiosk's own HTTP interface (the same `/api/event`
the page uses); ``KillPoint`` says when in the exam a station gets ``kill -9``.
"""
from __future__ import annotations

import random
import sqlite3
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import requests

from provisioning.toml_file import write_toml
from tests.services import START_TIMEOUT, Log, explain


class Kiosk:
    """One station's kiosk; ``logs`` (its process's log, say) are shown when a wait runs out."""

    def __init__(self, url: str, logs: Iterable[Log] = ()):
        self.url = url.rstrip("/")
        self.logs = list(logs)

    def state(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/api/state", timeout=5).json()

    def send(self, name: str, **payload: Any) -> None:
        r = requests.post(f"{self.url}/api/event", json={"name": name, "payload": payload}, timeout=5)
        assert r.status_code == 202, r.text

    def wait(self, predicate: Callable[[dict], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                state = self.state()
                if predicate(state):
                    return state
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(explain(f"{self.url}: {what} did not happen in {timeout:.0f} s; last state {state}",
                                     self.logs))

    def wait_screen(self, screen: str, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        return self.wait(lambda s: s["screen"] == screen, timeout, f"screen {screen}")

    def enter_waiting_room(self, ticket: str, until: tuple[str, ...] = ("waiting",)) -> dict[str, Any]:
        """Identify → face → read ×3 → lot → devices → confirm: as a candidate would.

        A candidate who confirms after the start goes straight to the paper: ``until=("answering",)``.
        """
        self.wait(lambda s: s["screen"] == "identify" and s["server_ok"], START_TIMEOUT, "edge found")
        self.send("identify", ticket_no=ticket)
        self.wait_screen("face_login")
        self.send("face_capture")
        self.wait_screen("read_flow")
        for screen in ("read_flow", "read_pledge", "read_notice"):
            self.wait_screen(screen)
            self.send("accept", read_to_end=True)
        self.wait(lambda s: s["screen"] in ("draw_lot", "device_check"), START_TIMEOUT, "lot screen")
        if self.state()["screen"] == "draw_lot":
            self.send("draw_lot")
        self.wait_screen("device_check")
        self.wait(lambda s: s["camera_ok"] and s["mic_ok"], START_TIMEOUT, "devices working")
        self.send("devices_ok")
        self.wait_screen("info_confirm")
        self.send("confirm_info")
        return self.wait(lambda s: s["screen"] in until, START_TIMEOUT, f"screen {' or '.join(until)}")


@dataclass(frozen=True)
class KillPoint:
    """When to pull the plug: ``offset`` seconds from a moment of the sitting (server time)."""

    name: str
    anchor: str          # "start" or "end" of answering
    offset: float
    after_rotation: bool = False  # wait for a segment to close, then kill at once

    def due(self, starts_at: float, ends_at: float) -> float:
        return (starts_at if self.anchor == "start" else ends_at) + self.offset


def kill_points(question_seconds: float) -> list[KillPoint]:
    """Twenty moments spread over the flow."""
    q = question_seconds
    return [
        KillPoint("waiting_early", "start", -14), KillPoint("waiting_late", "start", -4),
        KillPoint("waiting_rotation", "start", -9, after_rotation=True),
        KillPoint("at_start", "start", 0.3),
        KillPoint("q1_early", "start", 2.5), KillPoint("q1_mid", "start", q / 2),
        KillPoint("q1_rotation", "start", q / 2 - 2, after_rotation=True), KillPoint("q1_late", "start", q - 2.5),
        KillPoint("boundary_before", "start", q - 0.3), KillPoint("boundary_after", "start", q + 0.3),
        KillPoint("q2_early", "start", q + 2.5), KillPoint("q2_mid", "start", 1.5 * q),
        KillPoint("q2_rotation", "start", 1.5 * q - 2, after_rotation=True), KillPoint("q2_late", "start", 2 * q - 3),
        KillPoint("last_second", "end", -0.8), KillPoint("at_end", "end", 0.0),
        KillPoint("upload_start", "end", 0.15), KillPoint("upload_later", "end", 0.6),
        KillPoint("waiting_mid", "start", -8), KillPoint("q2_rotation_late", "start", 2 * q - 5, after_rotation=True),
    ]


def configure(path: Path, **tables: dict[str, Any]) -> None:
    """Add or change keys of tables in a TOML file the demo wrote (``retention={"keep_hours": 0}``)."""
    values = tomllib.loads(path.read_text())
    for name, table in tables.items():
        values.setdefault(name, {}).update(table)
    write_toml(path, values)


def choose(points: list[KillPoint], count: int, seed: int) -> list[KillPoint]:
    return random.Random(seed).sample(points, count)


def closed_segments(journal: Path, attempt: str) -> int:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM segment WHERE attempt_id = ?", (attempt,)).fetchone()[0]
    finally:
        db.close()


def journal_segments(journal: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT name, sha256, status FROM segment ORDER BY camera, seq").fetchall()
    finally:
        db.close()
