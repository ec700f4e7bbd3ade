"""The service's one ``Settings`` class, read from ``QUARTERHOUR_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
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
    # The dispatch loop's engine runs in a worker process (``api.planner``), not in the
    # service's; false: in the service's process.
    planner_process: bool = True
    # Request bodies larger than this get 413 ``payload_too_large``.
    max_body_bytes: int = Field(default=65_536, ge=1_024, le=16_777_216)
    # How long a SQLite connection waits for the write lock before failing.
    sqlite_busy_timeout_ms: int = Field(default=5_000, ge=0, le=600_000)
    # ``quarterhour serve --demo`` (``make run``) plays orders and riders unless this is false.
    demo_feed: bool = True

    # Webhooks (``api.inbound``, ``api.outbox``). Inbound: how far a signature's timestamp may
    # be from our clock, how long a replaced secret stays valid, how long event ids are kept.
    webhook_tolerance_s: int = Field(default=300, ge=1, le=3_600)
    webhook_rotation_window_s: int = Field(default=86_400, ge=0, le=30 * 86_400)
    webhook_dedupe_days: int = Field(default=7, ge=7, le=365)
    # Outbound: run the delivery worker in the process (tests switch it off and call
    # ``api.outbox.deliver_due``); seconds between polls; the HTTP timeout of one attempt; the
    # lease of a claimed delivery (it is sent again after it, should the worker die); how long a
    # failing delivery is retried (at least a day) before it is dead.
    webhook_delivery_enabled: bool = True
    webhook_poll_s: float = Field(default=1.0, ge=0.05, le=60)
    webhook_timeout_s: float = Field(default=10.0, ge=0.1, le=60)
    webhook_lease_s: int = Field(default=60, ge=5, le=3_600)
    webhook_retry_window_s: int = Field(default=86_400, ge=86_400, le=30 * 86_400)
    # Let endpoints be on loopback, private or link-local addresses (``api.netguard``): for a
    # receiver on this machine or network (development, tests); off, such URLs get 422.
    webhook_allow_private_urls: bool = False

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> Settings:
        if self.webhook_lease_s <= self.webhook_timeout_s:
            raise ValueError(
                f"webhook_lease_s ({self.webhook_lease_s}) must exceed webhook_timeout_s "
                f"({self.webhook_timeout_s}): a delivery still being sent would be sent twice"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
