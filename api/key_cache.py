"""A short-lived, in-process cache of what authenticates a request: API key -> shop for the hot
routes, and shop -> its webhook secrets for inbound webhooks, so that neither reads the database
each time.

Entries live ``TTL_S`` seconds. Any flush that adds, changes or deletes a ``Shop``, an ``ApiKey``
or a ``WebhookSecret`` row in this process (a key revoked, a secret rotated or retired, a shop
changed) empties the cache, at the flush and again at the end of its transaction, so that in
this process a revoked key or a retired secret gets 401 at once. Another process of the same
database sees such a change within ``TTL_S``. A secret's expiry is checked at each use.

A cached shop is a detached row shared by concurrent requests: read it, never add it to a session.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, event, select
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from api.models import ApiKey, Shop, WebhookSecret

# Longest a cached key is trusted without reading the database again (other processes' changes).
TTL_S = 2.0
_AUTH_CHANGED = "quarterhour_auth_changed"

# key SHA-256 -> (when read, the shop's row as read, the shop built from it)
_shops_by_key_sha256: dict[str, tuple[float, tuple[Any, ...], Shop]] = {}

SHOPS = SQLModel.metadata.tables[str(Shop.__tablename__)]
API_KEYS = SQLModel.metadata.tables[str(ApiKey.__tablename__)]
WEBHOOK_SECRETS = SQLModel.metadata.tables[str(WebhookSecret.__tablename__)]
SHOP_OF_LIVE_KEY = (
    select(SHOPS)
    .join(API_KEYS, API_KEYS.c.shop_id == SHOPS.c.id)
    .where(API_KEYS.c.key_sha256 == bindparam("key_sha256"), API_KEYS.c.revoked_at.is_(None))
)


SHOP_BY_ID = select(SHOPS).where(SHOPS.c.id == bindparam("shop_id"))
UNRETIRED_SECRETS_OF_SHOP = (
    select(WEBHOOK_SECRETS.c.secret, WEBHOOK_SECRETS.c.expires_at)
    .where(
        WEBHOOK_SECRETS.c.shop_id == bindparam("shop_id"),
        WEBHOOK_SECRETS.c.retired_at.is_(None),
    )
    .order_by(WEBHOOK_SECRETS.c.created_at.desc(), WEBHOOK_SECRETS.c.id)
)


@dataclass(frozen=True)
class WebhookAuth:
    """A shop and its unretired webhook secrets, newest first, each with its expiry."""

    shop: Shop
    secrets: tuple[tuple[str, datetime | None], ...]

    def valid_secrets(self, now: datetime) -> list[str]:
        """The secrets that verify signatures at ``now``, newest first."""
        return [
            secret for secret, expires_at in self.secrets if expires_at is None or expires_at > now
        ]


_webhook_auth_by_shop: dict[uuid.UUID, tuple[float, WebhookAuth]] = {}


def read_shop(engine: Engine, key_sha256: str) -> Shop | None:
    """The shop of a live key, read in a short transaction of its own, or ``None``: what a miss
    of the cache reads, and remembers. One Core statement, about a quarter of the CPU of an ORM
    session's two reads (a miss per shop every ``TTL_S`` under load); the shop is built from
    the row, never attached to a session. A row read again unchanged keeps the shop built from
    it before (the model's validation is most of a miss's CPU)."""
    with engine.connect() as connection:
        row = connection.execute(SHOP_OF_LIVE_KEY, {"key_sha256": key_sha256}).mappings().first()
    if row is None:
        return None
    values = tuple(row.values())
    entry = _shops_by_key_sha256.get(key_sha256)
    shop = entry[2] if entry is not None and entry[1] == values else Shop.model_validate(row)
    _shops_by_key_sha256[key_sha256] = (time.monotonic(), values, shop)
    return shop


def read_webhook_auth(engine: Engine, shop_id: uuid.UUID) -> WebhookAuth | None:
    """Shop ``shop_id`` and its unretired secrets, read in a short transaction of its own (two
    Core statements), or ``None`` for no such shop."""
    with engine.connect() as connection:
        row = connection.execute(SHOP_BY_ID, {"shop_id": shop_id}).mappings().first()
        if row is None:
            return None
        secrets = connection.execute(UNRETIRED_SECRETS_OF_SHOP, {"shop_id": shop_id}).all()
    return WebhookAuth(
        Shop.model_validate(dict(row)), tuple((secret, expires) for secret, expires in secrets)
    )


def cached_webhook_auth(shop_id: uuid.UUID) -> WebhookAuth | None:
    """``read_webhook_auth`` of ``shop_id`` less than ``TTL_S`` ago, or ``None``."""
    entry = _webhook_auth_by_shop.get(shop_id)
    if entry is None or time.monotonic() - entry[0] > TTL_S:
        return None
    return entry[1]


def remember_webhook_auth(auth: WebhookAuth) -> None:
    _webhook_auth_by_shop[auth.shop.id] = (time.monotonic(), auth)


def cached_shop(key_sha256: str) -> Shop | None:
    """The shop of a live key read less than ``TTL_S`` ago (``read_shop``), or ``None``."""
    entry = _shops_by_key_sha256.get(key_sha256)
    if entry is None or time.monotonic() - entry[0] > TTL_S:
        return None
    return entry[2]


def forget_all() -> None:
    _shops_by_key_sha256.clear()
    _webhook_auth_by_shop.clear()


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    changed = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(row, ApiKey | Shop | WebhookSecret) for row in changed):
        session.info[_AUTH_CHANGED] = True
        forget_all()


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _after_transaction(session: Session, *_args: Any) -> None:
    if session.info.pop(_AUTH_CHANGED, False):
        forget_all()
