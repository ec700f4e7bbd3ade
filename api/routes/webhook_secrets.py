"""The shop's inbound webhook secrets: created (or registered), rotated, listed and retired by
the shop's own key or the admin token."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from fastapi import APIRouter
from sqlmodel import Session, col, select

from api.deps import ManagedShopDep, NowDep, SessionDep, SettingsDep
from api.errors import not_found
from api.models import (
    Shop,
    WebhookSecret,
    WebhookSecretCreate,
    WebhookSecretCreated,
    WebhookSecretPublic,
    WebhookSecretsPublic,
)
from api.retry import RetryLostRaceRoute
from api.signing import generate_webhook_secret, secret_prefix

router = APIRouter(
    prefix="/shops/{shop_id}/webhook-secrets", tags=["webhooks"], route_class=RetryLostRaceRoute
)


def newest_first(rows: Sequence[WebhookSecret]) -> list[WebhookSecret]:
    """``rows`` newest first; of two made at the same instant, the current one (never given an
    expiry: each rotation gives one to the secret it replaces) is the newer."""
    return sorted(rows, key=lambda row: (row.created_at, row.expires_at is None), reverse=True)


def _live(session: Session, shop: Shop) -> list[WebhookSecret]:
    """The shop's unretired secrets, newest first (some may have expired)."""
    return newest_first(
        session.exec(
            select(WebhookSecret).where(
                WebhookSecret.shop_id == shop.id, col(WebhookSecret.retired_at).is_(None)
            )
        ).all()
    )


@router.post("", status_code=201)
def create_webhook_secret(
    shop: ManagedShopDep,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    secret_in: WebhookSecretCreate | None = None,
) -> WebhookSecretCreated:
    """Add a secret that inbound webhooks of the shop are signed with, shown only here.

    The secret is made by the service (``whsec_`` and 64 hex characters) unless the body gives
    one (a platform's own, e.g. Shopify's webhook signing secret). It is stored in clear, unlike
    API keys: checking an HMAC signature needs the secret itself.

    Rotation: the newest secret before this one (``previous``) stays valid for
    ``QUARTERHOUR_WEBHOOK_ROTATION_WINDOW_S`` (default a day) or until it is retired, so that
    senders can switch over; any older one is retired now. A shop never has more than two
    valid secrets.
    """
    session.get(Shop, shop.id, with_for_update=True)  # one rotation at a time (PostgreSQL)
    live = _live(session, shop)
    window_end = now + timedelta(seconds=settings.webhook_rotation_window_s)
    previous = None
    for index, row in enumerate(live):
        valid = row.expires_at is None or row.expires_at > now
        if index == 0 and valid:
            row.expires_at = min(row.expires_at or window_end, window_end)
            previous = row
        else:
            row.retired_at = now
        session.add(row)
    secret = secret_in.secret if secret_in and secret_in.secret else generate_webhook_secret()
    row = WebhookSecret(
        shop_id=shop.id, secret=secret, prefix=secret_prefix(secret), created_at=now
    )
    session.add(row)
    session.commit()
    return WebhookSecretCreated.model_validate(
        row,
        update={
            "secret": secret,
            "previous": WebhookSecretPublic.model_validate(previous) if previous else None,
        },
    )


@router.get("")
def list_webhook_secrets(shop: ManagedShopDep, session: SessionDep) -> WebhookSecretsPublic:
    """The shop's secrets, newest first, without the secrets themselves."""
    rows = newest_first(
        session.exec(select(WebhookSecret).where(WebhookSecret.shop_id == shop.id)).all()
    )
    return WebhookSecretsPublic(
        data=[WebhookSecretPublic.model_validate(row) for row in rows], count=len(rows)
    )


@router.delete("/{secret_id}")
def retire_webhook_secret(
    secret_id: uuid.UUID, shop: ManagedShopDep, session: SessionDep, now: NowDep
) -> WebhookSecretPublic:
    """Retire a secret now (end a rotation early, or revoke a leaked one); retiring a retired
    secret changes nothing. Events signed only with it get 401 from now on."""
    row = session.get(WebhookSecret, secret_id, with_for_update=True)
    if row is None or row.shop_id != shop.id:
        raise not_found("webhook secret")
    if row.retired_at is None:
        row.retired_at = now
        session.add(row)
        session.commit()
    return WebhookSecretPublic.model_validate(row)
