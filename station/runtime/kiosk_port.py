"""The runtime's side of the kiosk port (``station.kiosk.port``): it builds the immutable
``KioskView`` the kiosk reads and takes the kiosk's few calls into the flow, the flag watcher and
the help messages, and prepares a mock attempt's watch-back (``station.playback``) from the journal."""
from __future__ import annotations

import threading
from typing import Any

from station.flow import Event, Screen
from station.kiosk.port import KioskView
from station.playback.errors import WatchbackUnavailable
from station.playback.plan import plan
from station.playback.store import WatchbackStore
from station.playback.view import Figures, Film, Watchback
from station.runtime.context import Context
from station.runtime.status import disk_check
from station.runtime.watchers import FlagWatcher
from station.vision.snapshot import snapshot_jpeg

PREVIEW_QUALITY = 70
# Screens that show the upload's progress.
UPLOAD_SCREENS = frozenset({Screen.UPLOADING, Screen.DONE, Screen.ANSWERING, Screen.WAITING, Screen.MOVED})
# The candidate's actions that end a watch-back: 完成 (it returns to the login screen), and the
# next candidate's login. Its films are removed then.
WATCHBACK_ENDS = frozenset({"next_candidate", "identify"})


class KioskAdapter:
    """Implements ``station.kiosk.port.KioskPort`` for the runtime."""

    def __init__(self, ctx: Context, flags: FlagWatcher):
        self.ctx = ctx
        self._flags = flags
        # The films of a watch-back; any left from before this start are removed now.
        self._films = WatchbackStore(ctx.settings.data_dir / "watchback")
        self._version = 0  # bumped by the runner at each change the kiosk shows (``changed``)
        self._change = threading.Condition()

    def changed(self) -> None:
        """The flow state or what is shown moved on: the kiosk's streams send a snapshot now."""
        with self._change:
            self._version += 1
            self._change.notify_all()

    def wait_changed(self, seen: int, timeout: float) -> int:
        with self._change:
            self._change.wait_for(lambda: self._version != seen, timeout)
            return self._version

    def kiosk_view(self) -> KioskView:
        ctx = self.ctx
        state, devices, shown = ctx.state, ctx.capture.status, ctx.shown
        sch = state.schedule
        upload = None
        if state.attempt_id and state.screen in UPLOAD_SCREENS:
            upload = ctx.journal.progress(state.attempt_id)
        capture = ctx.capture
        return KioskView(
            state=state, now=ctx.clock.now(), station_id=ctx.settings.station_id, voice=ctx.settings.kiosk.voice,
            voice_dir=ctx.settings.data_dir / "voice", server_ok=bool(ctx.edge.link_ok),
            mic_level=devices.mic_level, camera_ok=devices.camera_ok(), mic_ok=devices.mic_ok(),
            backlog=len(ctx.journal.pending()),
            messages=ctx.messages.view(state.attempt_id, sch.sitting if sch else None),
            live_guidance=shown.live_guidance, live_challenge=shown.live_challenge, last_cue=shown.last_cue,
            paper=shown.paper, upload=upload, recording_problem=tuple(ctx.recording.waiting()),
            camera=str(capture.camera) if capture.camera else None,
            microphone=str(capture.audio) if capture.audio else None,
        )

    def post(self, name: str, payload: dict[str, Any]) -> None:
        if name in WATCHBACK_ENDS:
            self._films.clear()
        if name == "devices_ok":
            # The station decides whether its devices work, not the page.
            devices = self.ctx.capture.status
            payload = {"camera_ok": devices.camera_ok(), "mic_ok": devices.mic_ok()}
        if name == "confirm_info":
            payload = disk_check(self.ctx)
        self.ctx.events.put(Event(name, payload))

    def focus(self, visible: bool) -> None:
        self._flags.page_focus(visible)

    def preview_jpeg(self, width: int) -> bytes | None:
        frame = self.ctx.capture.status.frame
        if frame is None:
            return None
        return snapshot_jpeg(frame.image, width=width, quality=PREVIEW_QUALITY)

    def ask_help(self, reason: Any, text: Any) -> int:
        return self.ctx.messages.ask(reason, text, self.ctx.state.attempt_id).local_id

    def acknowledge(self, message_id: int) -> bool:
        return self.ctx.messages.acknowledge(message_id, self.ctx.state.attempt_id)

    def mark_seen(self, upto: int) -> None:
        self.ctx.messages.mark_seen(upto)

    # --- the watch-back of a mock attempt (回看) ------------------------------------------------
    def _watchable(self) -> str:
        """The attempt that may be watched back now: a mock one, over and uploaded (DONE)."""
        state = self.ctx.state
        if state.schedule is not None and not state.schedule.mock:
            raise WatchbackUnavailable("not_mock", "a formal attempt is never played back", 403)
        if state.screen != Screen.DONE or state.attempt_id is None:
            raise WatchbackUnavailable("not_done", "there is no finished mock attempt to watch back", 409)
        return state.attempt_id

    def watchback(self) -> Watchback:
        ctx = self.ctx
        attempt = self._watchable()
        segments = ctx.journal.segments_of(attempt)
        present = {s.name for s in segments if s.deleted_at is None and s.path.is_file()}
        laid = plan(segments, present, ctx.state.schedule)
        ready = self._films.open(attempt, laid)
        check = ctx.shown.upload_check
        if check is not None and check[0] == attempt:
            verified, expected = check[1], check[2]
        else:  # not heard since the agent started: what the journal has of the edge's verifications
            _, _, verified, expected = ctx.journal.progress(attempt)
        figures = Figures(recorded_seconds=laid.recorded_seconds, expected_seconds=laid.expected_seconds,
                          waiting_seconds=laid.waiting_seconds, loudest_level=ctx.recording.loudest(attempt),
                          verified=verified, expected_segments=expected, segments=laid.segments,
                          missing=laid.missing)
        return Watchback(attempt=attempt, token=ready.token, films=ready.films, chapters=laid.chapters,
                         figures=figures)

    def watchback_film(self, camera: str) -> Film:
        film = self._films.film(self._watchable(), camera)
        if film is None or not film.path.is_file():
            raise WatchbackUnavailable("not_prepared", "no such film of this watch-back", 404)
        return film
