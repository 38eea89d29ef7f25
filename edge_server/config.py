"""Typed settings of the edge server, from a TOML file with ``EXAMKIOSK_*`` overrides.

Every section is a pydantic model that rejects unknown keys, so a typo in
``/etc/examkiosk/edge.toml`` stops the program with a message naming the key.
Nothing else in the edge server reads ``os.environ``.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path("/etc/examkiosk/edge.toml")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str = "edge"
    password: str = ""
    # The broker's TLS listener for stations (the edge's own certificate, pinned by them), announced
    # instead of ``port``; the edge itself keeps to ``host:port``, best a loopback listener.
    # 0: stations use ``port`` too, in clear (their MQTT logins and commands readable on the LAN).
    tls_port: int = Field(0, ge=0, le=65535)
    # The edge's login is also the admin of the broker's dynamic-security plugin: it adds and
    # removes the stations' users (enrolment, revocation); ``broker-config`` sets the broker up.

    @model_validator(mode="after")
    def _password_needed(self) -> "MqttSection":
        if self.username and not self.password:
            raise ValueError("mqtt.password is required when mqtt.username is set")
        return self


MIB = 1024 * 1024
S3_MIN_PART = 5 * MIB  # S3's smallest part but the last (Ceph's ``rgw multipart min part size``)


class StorageSection(Section):
    """Central storage: a mounted directory, or an S3 bucket (any S3-compatible endpoint).

    S3 credentials come from boto3's standard chain (environment, ``~/.aws``, instance role)
    unless ``s3_access_key`` and ``s3_secret_key_file`` (a file holding only the secret, so the
    secret is not in this TOML) are both given.
    """

    backend: Literal["directory", "s3"] = "directory"
    directory: Path = Path("/var/lib/examkiosk/central")
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    s3_secret_key_file: Path | None = None
    # Files larger than this go multipart, in parts of ``s3_part_size`` bytes, ``s3_concurrency``
    # parts in flight (each part is held in memory while it is sent: concurrency x part size).
    s3_multipart_threshold: int = Field(16 * MIB, ge=S3_MIN_PART, le=5 * 1024 * MIB)
    s3_part_size: int = Field(8 * MIB, ge=S3_MIN_PART, le=512 * MIB)
    s3_concurrency: int = Field(4, ge=1, le=64)

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> "StorageSection":
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("storage.s3_bucket is required when storage.backend is 's3'")
        return self

    @model_validator(mode="after")
    def _key_pair(self) -> "StorageSection":
        if (self.s3_access_key is None) != (self.s3_secret_key_file is None):
            raise ValueError("storage.s3_access_key and storage.s3_secret_key_file go together: give both "
                             "(or neither, for boto3's standard credential chain)")
        if self.s3_secret_key_file is not None:
            read_secret_file(self.s3_secret_key_file)
        return self

    def s3_secret_key(self) -> str | None:
        """The secret read from ``s3_secret_key_file`` (None when not configured)."""
        return read_secret_file(self.s3_secret_key_file) if self.s3_secret_key_file is not None else None


def read_secret_file(path: Path) -> str:
    """A secret key file's one line (surrounding whitespace dropped); ValueError naming what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"storage.s3_secret_key_file {str(path)!r} cannot be read: {exc}") from exc
    secret = text.strip()
    if not secret:
        raise ValueError(f"storage.s3_secret_key_file {str(path)!r} is empty")
    if any(c.isspace() for c in secret) or not secret.isprintable():
        raise ValueError(f"storage.s3_secret_key_file {str(path)!r} must hold the secret key alone, on one line")
    return secret


class DiscoverySection(Section):
    enabled: bool = True
    # Empty means every interface; tests and the demo use ["127.0.0.1"].
    interfaces: list[str] = []
    instance_name: str = ""


class RetentionSection(Section):
    # Hours a recording stays on the edge after central storage confirmed its copy (checksum read
    # back); 0: delete it at the first sweep after that. What central storage has not confirmed is
    # never deleted, however old. The default keeps a week for reviews at the centre.
    keep_hours: float = Field(168.0, ge=0)
    # Seconds between two retention sweeps of the edge daemon (each reads checksums back).
    sweep_seconds: float = Field(600.0, ge=1)


class DashboardSection(Section):
    # Each open live stream (GET /staff/api/stream) holds one gunicorn thread; it ends after this
    # many seconds and the browser reconnects (EventSource), so threads are handed back regularly.
    stream_seconds: float = Field(300.0, ge=2, le=3600)
    # Open streams one web worker serves at once; more dashboards get 503 ``live_busy`` and poll
    # every 2 s instead, so other staff pages always find a free thread (stations have an instance
    # of their own, see ``serve``). With the unit's 2 workers x 8 threads: 8 live dashboards.
    max_streams: int = Field(4, ge=0, le=1000)
    # A comment line on an idle stream this often, so proxies and the browser see it is alive.
    heartbeat_seconds: float = Field(15.0, ge=1, le=120)
    # A station whose last status is older than this is shown offline even without its last will.
    stale_seconds: float = Field(10.0, ge=2, le=600)


class BridgeSection(Section):
    # The daemon's MQTT bridge writes what arrived (the latest status of each station, every
    # event) to the database and the dashboards once per this many seconds, in one transaction.
    flush_seconds: float = Field(0.5, gt=0, le=10)
    # A message still unwritten after this many seconds: the dashboards show a banner
    # ("status updates N s late") and the daemon logs a warning, until the backlog is gone.
    late_seconds: float = Field(3.0, ge=1, le=300)


class PapersSection(Section):
    # Seconds before a sitting's start that its stations get the paper key (pushed over MQTT, and
    # from the key route), so every station has the paper open in memory and shows it on its own
    # timer at the start. The key stays in the stations' memory until the start; staff pages still
    # open a paper only from the start.
    key_lead_seconds: float = Field(5.0, ge=0, le=60)


class EdgeSettings(BaseSettings):
    """Settings of every edge program (web, daemon, worker)."""

    model_config = SettingsConfigDict(
        env_prefix="EXAMKIOSK_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    centre: str = "demo"
    centre_name: str = "Demo centre"
    database_url: str = Field(
        "sqlite:////var/lib/examkiosk/edge.db",
        validation_alias=AliasChoices("DATABASE_URL", "EXAMKIOSK_DATABASE_URL", "database_url"),
    )
    data_dir: Path = Path("/var/lib/examkiosk")
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "examkiosk"
    secret_key: str = ""
    # Base URL the stations use for the API, as announced over zeroconf: the instance that serves them.
    public_url: str = "http://127.0.0.1:8000"
    # What this web instance serves. A centre runs two gunicorn instances of the same app, so that
    # stations' API calls never wait behind staff sign-ins (argon2) or dashboards:
    # "stations": the station API (/api/v1, tus uploads) and /healthz, a JSON 404 for anything else
    # (examkiosk-edge-api, port 8443, the one in public_url); "staff": the staff and regional pages,
    # static files and /healthz, a JSON 404 for /api/v1 (examkiosk-edge-web, port 8444);
    # "all": everything in one instance (tests, development). Set per unit: EXAMKIOSK_SERVE=...
    serve: Literal["all", "stations", "staff"] = "all"
    # Largest body of one tus PATCH request.
    max_chunk_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024)
    max_upload_bytes: int = Field(2 * 1024 * 1024 * 1024, ge=1024)
    testing: bool = False
    # Staff session cookies only over HTTPS; on by itself when public_url is https://.
    secure_cookies: bool = False
    mqtt: MqttSection = MqttSection(password="unset")
    storage: StorageSection = StorageSection()
    discovery: DiscoverySection = DiscoverySection()
    retention: RetentionSection = RetentionSection()
    dashboard: DashboardSection = DashboardSection()
    bridge: BridgeSection = BridgeSection()
    papers: PapersSection = PapersSection()

    @model_validator(mode="after")
    def _secret_needed(self) -> "EdgeSettings":
        if not self.secret_key:
            raise ValueError("secret_key must be set (generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return self

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def cookies_secure(self) -> bool:
        return self.secure_cookies or self.public_url.startswith("https://")

    @property
    def tls_path(self) -> Path:
        """The edge's TLS key and certificate (one PEM, see ``edge_server.tls``)."""
        return self.data_dir / "edge_tls.pem"

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment overrides the file; the file is passed in as init values.
        return (env_settings, init_settings)


def config_path() -> Path:
    return Path(os.environ.get("EXAMKIOSK_EDGE_CONFIG", DEFAULT_CONFIG_PATH))


def load_settings(path: Path | None = None, **overrides: object) -> EdgeSettings:
    """Read the TOML file (if it exists), apply env overrides, validate."""
    path = path or config_path()
    values: dict[str, object] = {}
    if path.exists():
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    values.update(overrides)
    try:
        return EdgeSettings(**values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc)) from exc


def describe_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"invalid configuration in {path}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)
