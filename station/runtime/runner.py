"""The station runtime: it wires the components, runs the loop and nothing else.

The loop feeds events into ``flow.transition`` with server time, writes every new state through to
the journal (so a reboot resumes) and performs the commands that come back through the handler
table (``station.runtime.handlers``). Components (capture hub, recording, watchers, edge session,
outbox, uploader, status, messages) each have ``start()``/``stop()`` and end on one stop event.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Protocol

from examkiosk_wire.chain import StationKey
from examkiosk_wire.topics import StationCommand
from station import flow
from station.config import StationSettings
from station.flow import Event, FlowState, Screen
from station.link import Clock
from station.link.outbox import EventOutbox
from station.messages import MessageBox
from station.paper import KeyVault, PaperKeeper
from station.runtime.capture import CaptureHub, DeviceStatus
from station.runtime.context import Context
from station.runtime.edge import EdgeSession
from station.runtime.edge_commands import handle_command
from station.runtime.handlers import HANDLERS
from station.runtime.handlers.finish import forget_paper
from station.runtime.handlers.paper import prefetch_paper
from station.runtime.kiosk_port import KioskAdapter
from station.runtime.recorders import Recording
from station.runtime.status import StatusLoop
from station.runtime.timers import FlowTimer, next_instant
from station.runtime.watchdog import LoopWatchdog
from station.runtime.watchers import CameraWatch, FlagWatcher
from station.storage.journal import Journal
from station.storage.uploader import SegmentUploader
from station.voice import VoiceError, build_prompts

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.25
ALIVE_SECONDS = 1.0


class Component(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class _Thread:
    """A component that runs ``target(stop)`` on a thread of its own."""

    def __init__(self, name: str, target: Any, stop: threading.Event):
        self._thread = threading.Thread(target=lambda: target(stop), name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The stop event ends it."""


class Runtime:
    def __init__(self, settings: StationSettings):
        self.settings = settings
        self.stop_event = threading.Event()
        ctx = self.ctx = Context(settings, clock=Clock(), journal=Journal(settings.journal_path),
                                 key=StationKey.load_or_create(settings.data_dir / "station_key.pem"),
                                 stop=self.stop_event)
        ctx.edge = EdgeSession(settings, clock=ctx.clock, key=ctx.key, stop=self.stop_event,
                               on_command=self.command, on_connected=lambda: ctx.uploader.wake())
        ctx.outbox = EventOutbox(ctx.journal, now=ctx.clock.now, stop=self.stop_event,
                                 publisher=lambda: ctx.edge.publisher, client=lambda: ctx.edge.client)
        ctx.uploader = SegmentUploader(
            ctx.journal, base_url=lambda: ctx.edge.client.base_url if ctx.edge.client else None,
            token=settings.edge.token, chunk_bytes=settings.upload_chunk_bytes, on_link=ctx.edge.set_link,
            keep_seconds=settings.retention.keep_hours * 3600, fingerprint=settings.edge.fingerprint or None)
        ctx.recording = Recording(settings, journal=ctx.journal, key=ctx.key, clock=ctx.clock.now,
                                  seq_from=lambda: ctx.state.seq_from, wake_uploader=ctx.uploader.wake,
                                  report=ctx.report)
        ctx.capture = CaptureHub(settings, stop=self.stop_event, sink=ctx.recording, report=ctx.report)
        # The sealed paper: ciphertext fetched ahead and cached, key in memory only until the start,
        # then sealed in the journal until the attempt ends (station/paper.py).
        ctx.papers = PaperKeeper(settings.data_dir / "papers", client=lambda: ctx.edge.client,
                                 vault=KeyVault(ctx.journal, ctx.key))
        # Help chat and broadcasts (station/messages.py): beside the flow, not in it.
        ctx.messages = MessageBox(client=lambda: ctx.edge.client, now=ctx.clock.now,
                                  mqtt_up=lambda: ctx.edge.mqtt_up)
        self.flags = FlagWatcher(settings, stop=self.stop_event, devices=ctx.capture.status,
                                 state=lambda: ctx.state, now=ctx.clock.now, journal=ctx.journal,
                                 recording_seq=ctx.recording.next_seq, report=ctx.report,
                                 flags=lambda active: setattr(ctx.shown, "active_flags", active))
        camera_watch = CameraWatch(stop=self.stop_event, devices=ctx.capture.status, state=lambda: ctx.state,
                                   online=lambda: ctx.edge.client is not None, post=ctx.post,
                                   guidance=lambda code: setattr(ctx.shown, "live_guidance", code))
        self.kiosk = KioskAdapter(ctx, self.flags)
        self.watchdog = LoopWatchdog(self.stop_event)
        # The start, question boundaries and the end at their instant (station/runtime/timers.py).
        self.timer = FlowTimer(ctx.clock, ctx.events.put, self.stop_event)
        # In start order; stopped in reverse.
        self.components: list[Component] = [
            self.watchdog, self.timer, ctx.capture, ctx.recording, ctx.edge, StatusLoop(ctx), camera_watch, self.flags,
            ctx.outbox, _Thread("messages", ctx.messages.run, self.stop_event), ctx.uploader,
        ]
        if settings.kiosk.voice:
            self.components.append(_Thread("voice", self._build_voice, self.stop_event))
        self._started: list[Component] = []

    # --- what tests and the kiosk port look at ------------------------------------------------
    @property
    def state(self) -> FlowState:
        return self.ctx.state

    @state.setter
    def state(self, value: FlowState) -> None:
        self.ctx.state = value

    @property
    def events(self) -> queue.Queue[Event]:
        return self.ctx.events

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def devices(self) -> DeviceStatus:
        return self.ctx.capture.status

    @property
    def messages(self) -> MessageBox:
        return self.ctx.messages

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        restored = self.ctx.journal.load_state()
        if restored is not None:
            state, alive_at = restored
            self.ctx.state = state
            logger.info("journal restored screen %s (last alive %.0f)", state.screen, alive_at)
            self.post("restored", {"last_alive": alive_at})
        # The journal is the truth: sealed segments it lacks are journaled before anything records.
        self.ctx.recording.recover(self.ctx.state.attempt_id)
        self.ctx.papers.restore(self.ctx.state.attempt_id)  # a started paper opens without the edge
        if self.ctx.state.screen == Screen.WAITING and self.ctx.state.schedule is not None:
            # Restarted in the waiting room: open the paper in memory ahead of the start again.
            self.ctx.submit(prefetch_paper, self.ctx, self.ctx.state.schedule.sitting)
        for component in self.components:
            component.start()
            self._started.append(component)

    def stop(self) -> None:
        self.stop_event.set()
        for component in reversed(self._started):
            try:
                component.stop()
            except Exception:  # one component must not keep the others running
                logger.exception("stopping %s failed", type(component).__name__)
        self.ctx.shutdown()
        self.ctx.journal.close()

    def run(self) -> None:
        """The loop: one event at a time, with a tick at least every TICK_SECONDS."""
        last_tick = 0.0
        last_alive = 0.0
        while not self.stop_event.is_set():
            self.watchdog.beat()
            try:
                self.apply(self.ctx.events.get(timeout=TICK_SECONDS))
            except queue.Empty:
                pass
            mono = time.monotonic()
            if mono - last_tick >= TICK_SECONDS:
                last_tick = mono
                self.apply(Event("tick"))
            if mono - last_alive >= ALIVE_SECONDS:
                last_alive = mono
                self.ctx.journal.touch_alive(self.ctx.clock.now())

    def post(self, name: str, payload: dict[str, Any] | None = None) -> None:
        self.ctx.post(name, payload)

    def apply(self, event: Event) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        if event.name == "tick" and "at" in event.payload:
            now = max(now, float(event.payload["at"]))  # the timer's instant, never a hair before it
        old = ctx.state
        new, commands = flow.transition(old, event, now)
        if new != old:
            if new.screen != old.screen:
                logger.info("screen %s -> %s (%s)", old.screen, new.screen, event.name)
            ctx.journal.save_state(new, now)
            ctx.state = new
            if old.attempt_id is not None and new.attempt_id != old.attempt_id:
                forget_paper(ctx)  # the attempt is over here: its paper key must not outlive it
            if new.screen != old.screen:
                # The candidate sees a new screen (the first question at the start) before the
                # commands' journal writes: each is an fsync, and every station pays them alike.
                self.kiosk.changed()
        for command in commands:
            try:
                self.execute(command)
            except Exception:
                logger.exception("command %s failed", command)
        self.timer.arm(next_instant(ctx.state))
        if new != old or event.name != "tick":
            self.kiosk.changed()  # the kiosk's stream shows it now, not at its next poll

    def execute(self, command: flow.Command) -> None:
        HANDLERS[type(command)](self.ctx, command)

    def command(self, command: StationCommand) -> None:
        """A command from the edge over MQTT (station.runtime.edge_commands)."""
        handle_command(self.ctx, command)

    def _build_voice(self, stop: threading.Event) -> None:
        """Mandarin prompts made offline with espeak-ng (once; cached by text)."""
        try:
            build_prompts(self.settings.data_dir / "voice")
        except VoiceError as exc:
            logger.warning("voice prompts unavailable: %s", exc)
