"""Typed settings of the station agent, from ``/etc/examkiosk/station.toml`` + ``EXAMKIOSK_*`` overrides."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from examkiosk_wire.pinning import normalise_fingerprint

DEFAULT_CONFIG_PATH = Path("/etc/examkiosk/station.toml")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EdgeSection(Section):
    # Empty: find the edge by zeroconf.
    api: str = ""
    # SHA-256 of the edge's TLS certificate the station was enrolled with (hex, colons allowed):
    # a server announcing or presenting another is refused.
    fingerprint: str = ""
    token: str
    discovery_timeout: float = Field(10.0, gt=0)
    discovery_interfaces: list[str] = []

    @field_validator("fingerprint")
    @classmethod
    def _sha256_hex(cls, value: str) -> str:
        return normalise_fingerprint(value) if value else ""


class MqttSection(Section):
    # Empty host: take host, port and TLS from the edge's zeroconf announcement.
    host: str = ""
    port: int = Field(0, ge=0, le=65535)
    # With a host: ``port`` is the broker's TLS listener, pinned to ``edge.fingerprint``.
    tls: bool = False
    username: str = ""
    password: str = ""

    @model_validator(mode="after")
    def _password_needed(self) -> "MqttSection":
        if self.username and not self.password:
            raise ValueError("mqtt.password is required when mqtt.username is set")
        return self


class CameraSection(Section):
    kind: Literal["file", "opencv", "picamera2"] = "opencv"
    source: str = "0"
    width: int = Field(640, ge=160, le=3840)
    height: int = Field(480, ge=120, le=2160)
    fps: float = Field(25.0, gt=0, le=60)


class AudioSection(Section):
    kind: Literal["file", "pyaudio"] = "pyaudio"
    source: str = ""
    rate: int = Field(48000, ge=8000, le=96000)
    channels: int = Field(1, ge=1, le=2)


class RecordingSection(Section):
    segment_seconds: float = Field(3.0, ge=1.0, le=30.0)
    # Bitrate the disk guard plans with (640x480 H.264 ultrafast + AAC measures about 1.4 Mbit/s).
    bitrate_kbps: int = Field(2500, ge=100, le=100_000)
    # A picamera2 camera records on the Pi's H.264 hardware encoder (station.pi_recorder);
    # false sends its frames through libx264 like every other camera.
    hardware_encoder: bool = True


class FaceSection(Section):
    # The edge's per-centre threshold wins when the edge sends one with the attempt.
    threshold: float = Field(0.6, gt=0.0, lt=1.5)
    frames: int = Field(3, ge=1, le=10)
    # The active head-turn challenge (station.liveness) after a matching face. Only a station
    # whose camera cannot turn a head (a video file of still photos, as in the demo) turns it off.
    liveness: bool = True
    challenge_seconds: float = Field(4.0, ge=2.0, le=15.0)


class MonitorSection(Section):
    # Frames sampled per second while answering (the monitor drops samples when the CPU is short).
    fps: float = Field(2.0, gt=0, le=10)
    no_face_seconds: float = Field(5.0, gt=0)
    silence_seconds: float = Field(30.0, gt=0)
    reverify_seconds: float = Field(30.0, gt=0)
    # Seconds between camera snapshots for the proctors' dashboard (MQTT, never recorded); 0: none.
    snapshot_seconds: float = Field(5.0, ge=0, le=60)


class KioskSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(8700, ge=1, le=65535)
    voice: bool = True


class RetentionSection(Section):
    # Hours a segment file stays on the station after the edge verified it (0: delete it at once).
    # An unverified segment is never deleted, however old. The default keeps a day, so a
    # centre can still copy a recording off the station on the day of the exam.
    keep_hours: float = Field(24.0, ge=0)


class StationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMKIOSK_", env_nested_delimiter="__", extra="forbid",
                                      frozen=True)

    station_id: str
    centre: str
    data_dir: Path = Path("/var/lib/examkiosk-station")
    upload_chunk_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    edge: EdgeSection
    mqtt: MqttSection = MqttSection()
    camera: CameraSection = CameraSection()
    # The seeds' evidence video (佐证视频): a second camera recorded beside the main one.
    second_camera: CameraSection | None = None
    audio: AudioSection = AudioSection()
    recording: RecordingSection = RecordingSection()
    face: FaceSection = FaceSection()
    monitor: MonitorSection = MonitorSection()
    kiosk: KioskSection = KioskSection()
    retention: RetentionSection = RetentionSection()

    @model_validator(mode="after")
    def _file_sources(self) -> "StationSettings":
        for key, cam in (("camera", self.camera), ("second_camera", self.second_camera)):
            if cam is not None and cam.kind == "file" and not Path(cam.source).is_file():
                raise ValueError(f"{key}.source {cam.source!r} is not a video file")
        if self.audio.kind == "file" and not Path(self.audio.source).is_file():
            raise ValueError(f"audio.source {self.audio.source!r} is not a WAV file")
        return self

    @property
    def segments_dir(self) -> Path:
        return self.data_dir / "segments"

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.db"

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


# Keys whose values never enter the configuration digest (it is shown to staff).
SECRET_KEYS = frozenset({"token", "password"})


def config_digest(settings: StationSettings) -> str:
    """A short SHA-256 of the configuration without its secrets: equal digests, equal settings."""
    import hashlib
    import json

    def scrub(value):
        if isinstance(value, dict):
            return {k: ("" if k in SECRET_KEYS else scrub(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    data = json.dumps(scrub(settings.model_dump(mode="json")), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:12]


def config_path() -> Path:
    return Path(os.environ.get("EXAMKIOSK_STATION_CONFIG", DEFAULT_CONFIG_PATH))


def load_settings(path: Path | None = None) -> StationSettings:
    path = path or config_path()
    values: dict = {}
    if path.exists():
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    try:
        return StationSettings(**values)
    except ValidationError as exc:
        lines = [f"invalid configuration in {path}:"]
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {key}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc
