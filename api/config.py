"""The service's one ``Settings`` class, read from ``QUARTERHOUR_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service configuration; e.g. ``QUARTERHOUR_DATABASE_URL`` sets ``database_url``."""

    model_config = SettingsConfigDict(env_prefix="QUARTERHOUR_", extra="ignore", frozen=True)

    # SQLite file (embedded default) or ``postgresql+psycopg://user@host:5432/db``.
    database_url: str = "sqlite:///./var/quarterhour.db"
    # Bearer token for admin operations (creating shops); unset means admin calls are refused.
    admin_token: SecretStr | None = None
    # Seconds between two dispatch ticks on the real clock.
    tick_s: int = Field(default=5, ge=1, le=3600)
    # Run the dispatch loop in the process (tests switch it off and call ``dispatch_shop``).
    dispatch_enabled: bool = True
    # Request bodies larger than this get 413 ``payload_too_large``.
    max_body_bytes: int = Field(default=65_536, ge=1_024, le=16_777_216)
    # How long a SQLite connection waits for the write lock before failing.
    sqlite_busy_timeout_ms: int = Field(default=5_000, ge=0, le=600_000)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
