"""Typed settings of the regional server, from a TOML file with ``EXAMKIOSK_REGION_*`` overrides.

Every section is a pydantic model that rejects unknown keys, so a typo in
``/etc/examkiosk/region.toml`` stops the program with a message naming the key.
Nothing else in the regional server reads ``os.environ``.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path("/etc/examkiosk/region.toml")
CONFIG_ENV = "EXAMKIOSK_REGION_CONFIG"
SETTINGS_EXTENSION = "examkiosk.region.settings"  # where create_app keeps the settings (app.extensions)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSection(Section):
    """Central storage, read only: the directory the edges write to, or an S3 bucket."""

    backend: Literal["directory", "s3"] = "directory"
    directory: Path = Path("/var/lib/examkiosk/central")
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = None
    # A file holding the secret key (mode 0600), never the key itself in the settings.
    s3_secret_key_file: Path | None = None
    # TLS: True (the system's CAs), False (no check: a test gateway on loopback), or a CA bundle path.
    s3_verify: bool | str = True

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> "StorageSection":
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("storage.s3_bucket is required when storage.backend is 's3'")
        if self.s3_access_key and self.s3_secret_key_file is None:
            raise ValueError("storage.s3_secret_key_file is required when storage.s3_access_key is set")
        return self

    def secret_key(self) -> str | None:
        """The S3 secret key, read from ``s3_secret_key_file``."""
        if self.s3_secret_key_file is None:
            return None
        try:
            return self.s3_secret_key_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"storage.s3_secret_key_file: cannot read {self.s3_secret_key_file}: {exc}") from exc


class VerificationSection(Section):
    # Bytes per second the full re-hash reads from central storage (a token bucket per worker);
    # 0: as fast as the store gives them.
    rate_bytes_per_s: int = Field(50 * 1024 * 1024, ge=0)
    # Queue a full re-hash of every attempt whose objects all answered HEAD correctly.
    rehash: bool = True
    # Check every attempt again when its last check is this many hours old (0: only new or changed
    # manifests are checked): an object changed, deleted or added later is named by the next check.
    reverify_hours: float = Field(24.0, ge=0)
    # At most this many such attempts queued per index pass (the store's read load stays even).
    reverify_batch: int = Field(100, ge=1, le=100_000)


class IndexSection(Section):
    # Seconds between two index passes of the region daemon.
    interval_seconds: float = Field(60.0, ge=0.1)
    # The cursor (and everything indexed before it) is committed every this many listed keys.
    commit_every: int = Field(500, ge=1, le=100_000)
    # A centre's index pass holds a lease this long (renewed at each commit); another indexer
    # takes the centre over only once it has expired.
    lease_seconds: float = Field(300.0, ge=1)
    # Documents (manifests) read from central storage at once; a GET's round trip dominates on S3.
    fetch_concurrency: int = Field(16, ge=1, le=128)


class RegionSettings(BaseSettings):
    """Settings of every regional program (web, daemon, worker)."""

    model_config = SettingsConfigDict(
        env_prefix="EXAMKIOSK_REGION_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    region_name: str = "Region"
    database_url: str = Field(
        "sqlite:////var/lib/examkiosk/region.db",
        validation_alias=AliasChoices("EXAMKIOSK_REGION_DATABASE_URL", "database_url"),
    )
    data_dir: Path = Path("/var/lib/examkiosk/region")
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "examkiosk-region"
    secret_key: str = ""
    testing: bool = False
    # Session cookies only over HTTPS (set behind a TLS proxy).
    secure_cookies: bool = False
    storage: StorageSection = StorageSection()
    verification: VerificationSection = VerificationSection()
    index: IndexSection = IndexSection()

    @model_validator(mode="after")
    def _secret_needed(self) -> "RegionSettings":
        if not self.secret_key:
            raise ValueError("secret_key must be set (generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return self

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
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_PATH))


def load_settings(path: Path | None = None, **overrides: object) -> RegionSettings:
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
        return RegionSettings(**values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc)) from exc


def describe_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"invalid configuration in {path}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)
