"""The kiosk's port: what the kiosk app reads (one immutable :class:`KioskView`, built by the
runtime for each request) and the few things it may ask of the station (:class:`KioskPort`).
The kiosk never sees the runtime itself."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

from station.flow import FlowState
from station.playback.view import Film, Watchback


@dataclass(frozen=True)
class KioskView:
    """The station as the kiosk shows it, at one moment."""

    state: FlowState
    now: float  # server time
    station_id: str
    voice: bool  # the station's own config (the centre's choice comes with the attempt: ``state.voice``)
    voice_dir: Path
    server_ok: bool
    mic_level: float
    camera_ok: bool
    mic_ok: bool
    backlog: int  # segments not yet verified by the edge
    messages: Mapping[str, Any]  # the help thread and broadcasts (MessageBox.view)
    live_guidance: str | None = None
    live_challenge: str | None = None
    last_cue: tuple[str, float] | None = None  # voice cue and its wall time
    paper: Mapping[str, Any] | None = None  # the opened paper, in memory only
    upload: tuple[int, int, int, int] | None = None  # bytes done, bytes total, verified, segments
    recording_problem: tuple[str, ...] = ()  # sealed segments not journaled yet (staff were told)
    camera: str | None = None  # the open devices, by name
    microphone: str | None = None


class KioskPort(Protocol):
    """What the kiosk app may ask of the station."""

    def kiosk_view(self) -> KioskView:
        """The station now, as one immutable snapshot."""

    def wait_changed(self, seen: int, timeout: float) -> int:
        """Block until the station changed after version ``seen`` (or ``timeout`` seconds passed);
        the version now. The kiosk's stream sends a snapshot at each change."""

    def post(self, name: str, payload: dict[str, Any]) -> None:
        """A candidate's action into the flow (the station fills in what it decides itself)."""

    def focus(self, visible: bool) -> None:
        """The page lost or regained focus/visibility."""

    def preview_jpeg(self, width: int) -> bytes | None:
        """The camera's latest frame as JPEG, at most ``width`` wide (None without one; ValueError if
        it cannot be encoded)."""

    def ask_help(self, reason: Any, text: Any) -> int:
        """Queue a help request for the current attempt; its local id (MessageError if refused)."""

    def acknowledge(self, message_id: int) -> bool:
        """The candidate acknowledged a broadcast; False if there is no such broadcast."""

    def mark_seen(self, upto: int) -> None:
        """The candidate has seen the replies up to ``upto``."""

    def watchback(self) -> Watchback:
        """The current attempt's recording to watch back (回看), its films remuxed on the station;
        WatchbackUnavailable (``station.playback.errors``) unless it is a mock attempt whose upload
        is done, or when its files are gone."""

    def watchback_film(self, camera: str) -> Film:
        """The film of ``camera`` that :meth:`watchback` prepared for the current attempt
        (WatchbackUnavailable if the attempt may not be watched back or nothing was prepared)."""
