"""The watch-back's temporary films: one folder of the station's data (``<data_dir>/watchback``).

``open`` remuxes an attempt's tracks (``station.playback.remux``) into a fresh sub-folder, once:
asked again for the same attempt and the same segment files, it hands back the films it made.
``clear`` removes every film: when the candidate presses 完成, when the next candidate logs in,
and when the station starts (a film left by a crash goes too). Only one watch-back exists at a time.
"""
from __future__ import annotations

import logging
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from station.playback.errors import WatchbackUnavailable
from station.playback.plan import Plan
from station.playback.remux import RemuxError, remux
from station.playback.view import Film

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    attempt: str
    token: str
    films: tuple[Film, ...]
    key: tuple[tuple[str, tuple[str, ...]], ...]  # the segment files each film was made of


class WatchbackStore:
    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._prepared: Prepared | None = None
        self.clear()

    def open(self, attempt: str, plan: Plan) -> Prepared:
        """The films of ``attempt`` as ``plan`` lays them out, remuxed now unless they already are;
        WatchbackUnavailable (``recording_unreadable``) if a segment cannot be remuxed (a file
        deleted meanwhile, a damaged file): no film is left behind then."""
        key = tuple((t.camera, t.names) for t in plan.tracks)
        with self._lock:
            ready = self._prepared
            if ready is not None and ready.attempt == attempt and ready.key == key:
                return ready
            self._remove()
            token = secrets.token_hex(8)
            folder = self.root / token
            folder.mkdir(parents=True, mode=0o700)
            films = []
            try:
                for track in plan.tracks:
                    made = remux(track.pieces, folder / f"{track.camera}.mp4")
                    films.append(Film(camera=track.camera, path=made.path, seconds=made.seconds, offset=track.offset,
                                      audio=made.audio_codec is not None, missing=track.missing + len(made.skipped)))
            except RemuxError as exc:
                logger.warning("watch-back of attempt %s: %s", attempt, exc)
                shutil.rmtree(folder, ignore_errors=True)
                raise WatchbackUnavailable("recording_unreadable", "the recording could not be prepared", 410) from exc
            self._prepared = Prepared(attempt, token, tuple(films), key)
            logger.info("watch-back of attempt %s ready: %s", attempt,
                        ", ".join(f"{f.camera} {f.seconds:.1f} s" for f in films))
            return self._prepared

    def film(self, attempt: str, camera: str) -> Film | None:
        """The film of ``camera`` prepared for ``attempt`` (None if there is none)."""
        ready = self._prepared
        if ready is None or ready.attempt != attempt:
            return None
        return next((f for f in ready.films if f.camera == camera), None)

    def clear(self) -> None:
        """Remove every film (and whatever else is in the folder)."""
        with self._lock:
            self._remove()

    def _remove(self) -> None:
        if self._prepared is not None:
            logger.info("watch-back of attempt %s removed", self._prepared.attempt)
        self._prepared = None
        if self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
