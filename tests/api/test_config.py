"""Tests of api/config.py: one Settings class read from QUARTERHOUR_* variables, cached."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.config import Settings, get_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without variables: SQLite under ./var, no admin token, 5 s ticks, 64 KiB bodies."""
    for name in ("DATABASE_URL", "ADMIN_TOKEN", "TICK_S", "MAX_BODY_BYTES"):
        monkeypatch.delenv(f"QUARTERHOUR_{name}", raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite:///./var/quarterhour.db"
    assert settings.admin_token is None
    assert (settings.tick_s, settings.max_body_bytes) == (5, 65_536)


def test_read_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """QUARTERHOUR_* variables set the fields; the admin token stays secret in reprs."""
    monkeypatch.setenv("QUARTERHOUR_DATABASE_URL", "postgresql+psycopg://u@h:5432/db")
    monkeypatch.setenv("QUARTERHOUR_ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("QUARTERHOUR_TICK_S", "2")
    monkeypatch.setenv("QUARTERHOUR_MAX_BODY_BYTES", "4096")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@h:5432/db"
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert (settings.tick_s, settings.max_body_bytes) == (2, 4096)


def test_bad_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick of 0 s is refused at start with the field named."""
    monkeypatch.setenv("QUARTERHOUR_TICK_S", "0")
    with pytest.raises(ValidationError, match="tick_s"):
        Settings()


def test_get_settings_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """get_settings reads the environment once per process."""
    get_settings.cache_clear()
    monkeypatch.setenv("QUARTERHOUR_TICK_S", "3")
    first = get_settings()
    monkeypatch.setenv("QUARTERHOUR_TICK_S", "4")
    assert get_settings() is first
    assert first.tick_s == 3
    get_settings.cache_clear()
