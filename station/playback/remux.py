"""One camera's Matroska segments copied into one MP4 that a browser plays (PyAV, no re-encoding).

The H.264 and AAC packets are copied as they are (stream copy) into an MP4 written with
``+faststart`` (the index before the media, so the player starts and seeks at once). Each
segment's packets are shifted to the segment's place in the file (``Piece.at``). Video keeps the
segment's millisecond timestamps; audio is placed by counting AAC frames from the segment's start
(Matroska rounds them to milliseconds), and the encoder's priming frame before 0 that every
segment starts with is left out, so the audio neither drifts nor overlaps at the joins. A segment
whose video differs from the first one's (codec or size) cannot be joined and is skipped. The file
is written as ``<name>.part`` and renamed when complete.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from station.playback.plan import Piece

logger = logging.getLogger(__name__)

AAC_FRAME = 1024  # samples per AAC frame when the stream does not say


class RemuxError(Exception):
    """The segments could not be read or the MP4 could not be written."""


@dataclass(frozen=True)
class Remuxed:
    path: Path
    seconds: float  # where the last packet ends
    video_codec: str
    audio_codec: str | None  # None: no audio in any segment (an evidence camera)
    skipped: tuple[str, ...]  # segments that could not be joined


def _has_audio(path: Path) -> bool:
    with av.open(str(path)) as src:
        if not src.streams.audio:
            return False
        return any(p.size for p in src.demux(src.streams.audio[0]))


def _video_key(stream: Any) -> tuple[str, int, int]:
    ctx = stream.codec_context
    return ctx.name, ctx.width, ctx.height


class _Writer:
    """The MP4 being written: its streams, and where each stream's timestamps stand."""

    def __init__(self, dst: Any, video: Any, audio: Any | None):
        self.dst = dst
        self.video_in_key = _video_key(video)
        self.codecs = (video.codec_context.name, audio.codec_context.name if audio is not None else None)
        self.video = dst.add_stream_from_template(video)
        self.audio = dst.add_stream_from_template(audio) if audio is not None else None
        if self.audio is not None:
            self.rate = audio.codec_context.sample_rate
            self.frame = audio.codec_context.frame_size or AAC_FRAME
            self.audio.time_base = Fraction(1, self.rate)
        self.last_video = -1  # ms
        self.last_audio = -1  # samples
        self.end = 0.0

    def add(self, src: Any, piece: Piece) -> None:
        video = src.streams.video[0]
        audio = src.streams.audio[0] if src.streams.audio and self.audio is not None else None
        shift_ms = round(piece.at * 1000)
        # At the segment's own place: the previous segment's last frame (padded to a whole frame)
        # may overlap it by part of a frame; pushing this one later instead would add up to a drift.
        audio_at = max(self.last_audio + 1, round(piece.at * self.rate)) if audio is not None else 0
        for packet in src.demux(*(s for s in (video, audio) if s is not None)):
            if packet.dts is None or not packet.size:
                continue  # a demuxer's flush packet
            if packet.stream is video:
                self._video(packet, shift_ms)
            elif packet.pts is not None and packet.pts >= 0:
                audio_at = self._audio(packet, audio_at)

    def _video(self, packet: Any, shift_ms: int) -> None:
        scale = packet.time_base * 1000  # to milliseconds
        dts = round((packet.dts * scale)) + shift_ms
        pts = round((packet.pts if packet.pts is not None else packet.dts) * scale) + shift_ms
        if dts <= self.last_video:
            dts = self.last_video + 1
        pts = max(pts, dts)
        duration = round(packet.duration * scale) if packet.duration else 0
        packet.time_base = Fraction(1, 1000)
        packet.dts, packet.pts, packet.duration = dts, pts, duration
        packet.stream = self.video
        self.dst.mux(packet)
        self.last_video = dts
        self.end = max(self.end, (pts + duration) / 1000)

    def _audio(self, packet: Any, at: int) -> int:
        packet.time_base = Fraction(1, self.rate)
        packet.dts = packet.pts = at
        packet.duration = self.frame
        packet.stream = self.audio
        self.dst.mux(packet)
        self.last_audio = at
        self.end = max(self.end, (at + self.frame) / self.rate)
        return at + self.frame


def remux(pieces: Sequence[Piece], out: Path) -> Remuxed:
    """Copy ``pieces`` (one camera's segments, in order) into the MP4 ``out``; RemuxError if a file
    cannot be read or the MP4 cannot be written (nothing is left at ``out`` then)."""
    if not pieces:
        raise RemuxError("no segment to remux")
    part = out.with_name(out.name + ".part")
    skipped: list[str] = []
    try:
        with_audio = next((p for p in pieces if _has_audio(p.path)), None)
        with av.open(str(pieces[0].path)) as first, av.open(str(part), "w", format="mp4",
                                                            container_options={"movflags": "+faststart"}) as dst:
            audio_template = None
            audio_src = av.open(str(with_audio.path)) if with_audio is not None else None
            try:
                if audio_src is not None:
                    audio_template = audio_src.streams.audio[0]
                writer = _Writer(dst, first.streams.video[0], audio_template)
            finally:
                if audio_src is not None:
                    audio_src.close()
            for piece in pieces:
                with av.open(str(piece.path)) as src:
                    if not src.streams.video or _video_key(src.streams.video[0]) != writer.video_in_key:
                        logger.warning("watch-back: segment %s differs from the first one, left out", piece.path.name)
                        skipped.append(piece.path.name)
                        continue
                    writer.add(src, piece)
            video_codec, audio_codec = writer.codecs
            seconds = writer.end
        os.replace(part, out)
    except (av.FFmpegError, OSError, IndexError) as exc:
        part.unlink(missing_ok=True)
        raise RemuxError(f"cannot remux {pieces[0].path.name}...: {exc}") from exc
    return Remuxed(path=out, seconds=round(seconds, 3), video_codec=video_codec, audio_codec=audio_codec,
                   skipped=tuple(skipped))
