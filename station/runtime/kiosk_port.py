"""The runtime's side of the kiosk port (``station.kiosk.port``): it builds the immutable
``KioskView`` the kiosk reads and takes the kiosk's few calls into the flow, the flag watcher and
the help messages."""
from __future__ import annotations

from typing import Any

from station.flow import Event, Screen
from station.kiosk.port import KioskView
from station.runtime.context import Context
from station.runtime.status import disk_check
from station.runtime.watchers import FlagWatcher
from station.vision.snapshot import snapshot_jpeg

PREVIEW_QUALITY = 70
# Screens that show the upload's progress.
UPLOAD_SCREENS = frozenset({Screen.UPLOADING, Screen.DONE, Screen.ANSWERING, Screen.WAITING, Screen.MOVED})


class KioskAdapter:
    """Implements ``station.kiosk.port.KioskPort`` for the runtime."""

    def __init__(self, ctx: Context, flags: FlagWatcher):
        self.ctx = ctx
        self._flags = flags

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
