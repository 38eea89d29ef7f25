"""Attempts as an edge leaves them in central storage, written straight into a directory or an S3 bucket.

``write_attempt`` puts real objects (segments, per-question files, a face frame) and a manifest whose
segments carry a chain signed with a real station key (``examkiosk_wire.chain``), in the layout of
``examkiosk_wire.central``; the manifest goes last, as the edge writes it.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from examkiosk_wire import central
from examkiosk_wire.chain import GENESIS, ChainEntry, StationKey


class Writer(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def read(self, key: str) -> bytes: ...


class DirWriter:
    """Writes into a directory as the edge's directory backend does."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def delete(self, key: str) -> None:
        (self.root / key).unlink()

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


class S3Writer:
    """Writes into a bucket with the SHA-256 as user metadata, as the edge's S3 backend does."""

    def __init__(self, client: Any, bucket: str):
        self.client, self.bucket = client, bucket

    def put(self, key: str, data: bytes, *, sha256_meta: bool = True) -> None:
        meta = {central.SHA256_META: hashlib.sha256(data).hexdigest()} if sha256_meta else {}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=meta)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def small_jpeg(label: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """A real JPEG (a flat colour from the label), so a browser can show it."""
    digest = hashlib.sha256(label.encode()).digest()
    out = io.BytesIO()
    Image.new("RGB", size, tuple(digest[:3])).save(out, format="JPEG", quality=80)
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_media(label: str, size: int = 2048) -> bytes:
    """Distinct bytes per label (tests need content, not playable video)."""
    seed = hashlib.sha256(label.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


@dataclass
class WrittenAttempt:
    manifest: central.AttemptManifest
    key: str  # the manifest's key
    segments: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)


def signed_segments(attempt: str, prefix: str, station: StationKey, cameras: tuple[str, ...] = ("main", "evidence"),
                    per_camera: int = 3, size: int = 2048, start: float = 1_000_000.0) -> tuple[list[dict], dict]:
    """Segment entries with a valid signed chain per camera, and their bytes by key."""
    objects, data = [], {}
    for camera in cameras:
        prev = GENESIS
        for seq in range(per_camera):
            name = f"{camera}_{seq:05d}.mkv"
            body = fake_media(f"{attempt}/{name}", size)
            started, ended = start + seq * 10.0, start + seq * 10.0 + 10.0
            entry = ChainEntry(attempt=attempt, camera=camera, seq=seq, name=name, question=seq // 2 + 1,
                               started_at=started, ended_at=ended, size=len(body), sha256=sha(body), prev=prev)
            digest = entry.digest()
            key = central.segment_key(prefix, name)
            objects.append({"key": key, "sha256": sha(body), "size": len(body), "camera": camera, "seq": seq,
                            "question": seq // 2 + 1, "started_at": started, "ended_at": ended,
                            "chain": {"prev": prev, "entry": digest, "sig": station.sign(digest)}})
            data[key] = body
            prev = digest
    return objects, data


def attempt_document(centre: str, sitting: str, lot: int | None, attempt: str, station: StationKey, *,
                     per_camera: int = 3, size: int = 2048, with_media: bool = True) -> tuple[dict, dict]:
    """A manifest document (a dict, as JSON) and every object's bytes by key."""
    prefix = central.attempt_prefix(centre, sitting, lot, attempt)
    objects, data = signed_segments(attempt, prefix, station, per_camera=per_camera, size=size)
    questions, tries = [], []
    if with_media:
        for camera in ("main", "evidence"):
            key = central.question_key(prefix, f"{camera}_q1.mp4")
            body = fake_media(key, size * 2)
            data[key] = body
            questions.append({"key": key, "sha256": sha(body), "size": len(body), "camera": camera, "question": 1,
                              "duration": 20.0, "expected_duration": 20.0, "segments": [], "complete": True,
                              "offset": 1_000_000.0})
        key = central.face_try_key(prefix, 1)
        body = small_jpeg(key)
        data[key] = body
        tries.append({"try": 1, "at": "2026-12-01T09:00:00+00:00", "distance": 0.35, "matched": True,
                      "sha256": sha(body), "key": key})
    document = {
        "format": central.ATTEMPT_FORMAT, "centre": centre, "sitting": sitting, "attempt": attempt, "lot": lot,
        "kind": "formal", "scoring": True, "station": "st-01", "finished_at": "2026-12-01T09:30:00+00:00",
        "end_reason": "completed", "started_at": 1_000_000.0, "station_public_key": station.public_b64,
        "flags": [{"kind": "looking_away", "started_at": 1_000_012.0, "ended_at": 1_000_015.0}],
        "objects": objects, "questions": questions, "media_problems": [],
        "messages": [{"at": "2026-12-01T09:10:00+00:00", "from": "candidate", "text": "help"}],
        "face_login": {"tries": tries, "reviews": []},
    }
    return document, data


def write_attempt(writer: Writer, centre: str, sitting: str, lot: int | None, attempt: str, station: StationKey,
                  **kwargs: Any) -> WrittenAttempt:
    """Every object, then the manifest (last, the commit marker)."""
    document, data = attempt_document(centre, sitting, lot, attempt, station, **kwargs)
    for key, body in data.items():
        writer.put(key, body)
    manifest = central.AttemptManifest.model_validate(document)
    key = central.manifest_key(manifest.prefix)
    writer.put(key, central.dump(manifest))
    return WrittenAttempt(manifest, key, [o["key"] for o in document["objects"]],
                          [q["key"] for q in document["questions"]],
                          [t["key"] for t in document["face_login"]["tries"]])


def write_sitting(writer: Writer, centre: str, sitting: str, lots: list[dict], *, expected: int | None = None,
                  absent: int = 0, tickets: dict[int, str] | None = None) -> str:
    """``sitting.json`` (and ``lots.json`` when ``tickets`` is given); returns the sitting manifest's key."""
    document = central.SittingManifest(format=central.SITTING_FORMAT, centre=centre, sitting=sitting,
                                       name=f"Sitting {sitting}", timing_mode="per_question", starts_at=1_000_000.0,
                                       ends_at=1_003_600.0, question_seconds=[120, 120],
                                       expected=expected if expected is not None else len(lots) + absent,
                                       absent=absent, lots=[central.LotState(**lot) for lot in lots],
                                       written_at="2026-12-01T10:00:00+00:00")
    key = central.sitting_manifest_key(centre, sitting)
    writer.put(key, central.dump(document))
    if tickets is not None:
        lot_map = central.LotMap(format=central.LOTS_FORMAT, centre=centre, sitting=sitting,
                                 lots={str(lot): ticket for lot, ticket in tickets.items()})
        writer.put(central.lots_key(centre, sitting), central.dump(lot_map))
    return key
