"""The status loop, every second: the retained MQTT status, a camera snapshot for the dashboard,
the API polls that back up MQTT pushes (a review's decision, a move), and the disk watch."""
from __future__ import annotations

import logging
import shutil
import threading
import time

from examkiosk_wire.topics import StationStatus
from examkiosk_wire.version import package_version
from station.config import config_digest
from station.flow import (
    BEFORE_ENTRY,
    RECORDING_SCREENS,
    FlowState,
    Screen,
    disk_bytes_needed,
    recording_bytes_needed,
    time_left,
)
from station.link import EdgeRejected, EdgeUnavailable
from station.runtime.context import Context
from station.vision.snapshot import snapshot_jpeg

logger = logging.getLogger(__name__)

# Screens with a candidate at this station whom the seat map may move to another one.
MOVABLE_SCREENS = BEFORE_ENTRY | RECORDING_SCREENS | {Screen.RESUME}


def status_of(ctx: Context, digest: str) -> StationStatus:
    """The station's status as the dashboard shows it."""
    state, now = ctx.state, ctx.clock.now()
    left = time_left(state, now)
    usage = shutil.disk_usage(ctx.settings.data_dir)
    uncertainty = ctx.clock.uncertainty
    return StationStatus(
        station=ctx.settings.station_id, online=True, state=str(state.screen), lot=state.lot,
        question=state.question or None, time_left=None if left is None else round(left, 1),
        mic_level=round(ctx.capture.status.mic_level, 3), backlog=len(ctx.journal.pending()),
        disk_free_mb=int(usage.free / 1e6), clock_offset_ms=round(ctx.clock.offset * 1000, 1),
        clock_uncertainty_ms=None if uncertainty is None else round(uncertainty * 1000, 1),
        version=package_version(), config=digest, ts=now, flags=ctx.shown.active_flags,
    )


class StatusLoop:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._disk_alerted: str | None = None
        self._config_digest = config_digest(ctx.settings)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The stop event ends the loop."""

    def _run(self) -> None:
        ctx = self.ctx
        ticks = 0
        every = ctx.settings.monitor.snapshot_seconds
        next_snapshot = time.monotonic()
        while not ctx.stop.wait(1.0):
            ticks += 1
            try:
                if every and time.monotonic() >= next_snapshot:
                    next_snapshot = time.monotonic() + every
                    self.send_snapshot()
                publisher = ctx.edge.publisher
                if publisher is not None:
                    publisher.publish_status(status_of(ctx, self._config_digest))
                self.poll(ticks, ctx.state)
                self.watch_disk(ctx.state)
            except Exception:  # one failed round must not end the status for good
                logger.exception("status round failed")

    def poll(self, ticks: int, state: FlowState) -> None:
        client, mqtt_up = self.ctx.edge.client, self.ctx.edge.mqtt_up
        if client is None or not state.attempt_id:
            return
        # The review's decision is pushed over MQTT; the API is asked as well, every
        # 10 s while the broker is up (a push lost in a reconnect), every second while not.
        if state.screen == Screen.MANUAL_REVIEW and (not mqtt_up or ticks % 10 == 0):
            try:
                review = client.review(state.attempt_id)
            except (EdgeUnavailable, EdgeRejected) as exc:
                logger.debug("review poll: %s", exc)
            else:
                if review.status in ("approved", "rejected"):
                    self.ctx.post("review_result", {"status": review.status, "reason": review.reason or ""})
        # A move to another station is pushed too; the API is asked every 10 s (every 3 s without the broker).
        if state.screen in MOVABLE_SCREENS and ticks % (10 if mqtt_up else 3) == 0:
            try:
                moved_to = client.attempt(state.attempt_id).moved_to
            except (EdgeUnavailable, EdgeRejected) as exc:
                logger.debug("move poll: %s", exc)
                return
            if moved_to:
                self.ctx.post("moved", {"to": str(moved_to)})

    def watch_disk(self, state: FlowState) -> None:
        """While recording: alert staff once if the rest of the exam may not fit on the disk."""
        if not state.recording or state.schedule is None or self._disk_alerted == state.attempt_id:
            return
        remaining = max(state.schedule.ends_at - self.ctx.clock.now(), 0)
        needed = disk_bytes_needed(self.ctx.settings.recording.bitrate_kbps, remaining)
        free = shutil.disk_usage(self.ctx.settings.data_dir).free
        if free < needed:
            self._disk_alerted = state.attempt_id
            logger.warning("disk low during recording: %d MB free, %d MB needed", free // 10**6, needed // 10**6)
            self.ctx.report("disk_low", {"free": free, "needed": needed, "during": "recording"})

    def send_snapshot(self) -> None:
        """The latest camera frame, small, for the proctors' dashboard (only while the camera delivers)."""
        publisher, devices = self.ctx.edge.publisher, self.ctx.capture.status
        frame = devices.frame
        if publisher is None or not publisher.connected or frame is None or not devices.camera_ok():
            return
        try:
            publisher.publish_snapshot(snapshot_jpeg(frame.image))
        except ValueError as exc:
            logger.debug("no snapshot: %s", exc)


def disk_check(ctx: Context) -> dict[str, int]:
    """Free space against what the attempt may record (see flow.recording_bytes_needed)."""
    free = shutil.disk_usage(ctx.settings.data_dir).free
    sch = ctx.state.schedule
    needed = 0 if sch is None else recording_bytes_needed(sch, ctx.settings.recording.bitrate_kbps, ctx.clock.now())
    return {"disk_free": free, "disk_needed": needed}
