"""Shops: created by the admin with a first API key; read by the shop itself; keys added and
revoked by the shop or the admin."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import Session, col, func, select

from api.deps import (
    AdminDep,
    CurrentShopDep,
    ManagedShopDep,
    NowDep,
    SessionDep,
    changes_of,
)
from api.errors import AppError, not_found
from api.kpis import local_date, shop_kpis
from api.models import (
    ApiKey,
    ApiKeyCreated,
    ApiKeyPublic,
    Shop,
    ShopCreate,
    ShopCreated,
    ShopKpisPublic,
    ShopPublic,
    ShopUpdate,
)
from api.retry import RetryLostRaceRoute
from api.security import generate_api_key, hash_api_key, key_prefix

router = APIRouter(prefix="/shops", tags=["shops"], route_class=RetryLostRaceRoute)


@router.post("", status_code=201, dependencies=[AdminDep])
def create_shop(shop_in: ShopCreate, session: SessionDep, now: NowDep) -> ShopCreated:
    """Create a shop and its first API key (admin token). The key is shown only in this reply."""
    shop = Shop.model_validate(shop_in, update={"created_at": now})
    session.add(shop)
    session.flush()  # the shop row first: the key refers to it
    api_key = add_api_key(session, shop, now)
    session.commit()
    return ShopCreated(shop=ShopPublic.model_validate(shop), api_key=api_key)


def add_api_key(session: Session, shop: Shop, now: datetime) -> ApiKeyCreated:
    """Store a new key of ``shop`` (hashed) and return it in clear, this once."""
    key = generate_api_key()
    api_key = ApiKey(
        shop_id=shop.id, key_sha256=hash_api_key(key), prefix=key_prefix(key), created_at=now
    )
    session.add(api_key)
    session.flush()
    return ApiKeyCreated(
        id=api_key.id, prefix=api_key.prefix, key=key, created_at=api_key.created_at
    )


@router.get("/{shop_id}")
def read_shop(shop_id: uuid.UUID, shop: CurrentShopDep) -> ShopPublic:
    """The shop of the calling key; any other shop is 404, as if it did not exist."""
    if shop.id != shop_id:
        raise not_found("shop")
    return ShopPublic.model_validate(shop)


@router.patch("/{shop_id}")
def update_shop(shop_update: ShopUpdate, shop: ManagedShopDep, session: SessionDep) -> ShopPublic:
    """Change the shop's ``name`` or ``timezone`` (its own key or the admin token); the fields
    left out stay as they are. A new time zone changes which orders each KPI day counts."""
    for name, value in changes_of(shop_update).items():
        setattr(shop, name, value)
    session.add(shop)
    session.commit()
    session.refresh(shop)
    return ShopPublic.model_validate(shop)


@router.post("/{shop_id}/keys", status_code=201)
def create_api_key(shop: ManagedShopDep, session: SessionDep, now: NowDep) -> ApiKeyCreated:
    """Add an API key to the shop (its own key or the admin token); the key is shown only here."""
    api_key = add_api_key(session, shop, now)
    session.commit()
    return api_key


@router.delete("/{shop_id}/keys/{key_id}")
def revoke_api_key(
    key_id: uuid.UUID, shop: ManagedShopDep, session: SessionDep, now: NowDep
) -> ApiKeyPublic:
    """Revoke a key: from now on it gets 401. Revoking a revoked key changes nothing.

    The shop's last live key cannot be revoked (409 ``last_key``): create another one first.
    """
    # Lock the shop so that two requests cannot revoke its last two keys at once (PostgreSQL;
    # SQLite serialises write transactions already).
    session.get(Shop, shop.id, with_for_update=True)
    api_key = session.get(ApiKey, key_id, with_for_update=True)
    if api_key is None or api_key.shop_id != shop.id:
        raise not_found("API key")
    if api_key.revoked_at is None:
        n_live = session.exec(
            select(func.count())
            .select_from(ApiKey)
            .where(col(ApiKey.shop_id) == shop.id, col(ApiKey.revoked_at).is_(None))
        ).one()
        if n_live <= 1:
            raise AppError(
                409, "last_key", "this is the shop's last live API key; create another one first"
            )
        api_key.revoked_at = now
        session.add(api_key)
        session.commit()
    return ApiKeyPublic.model_validate(api_key)


@router.get("/{shop_id}/kpis")
def read_shop_kpis(
    shop: ManagedShopDep,
    session: SessionDep,
    now: NowDep,
    day: Annotated[
        date | None,
        Query(
            alias="date",
            description="The shop's local day, YYYY-MM-DD (default: today in its time zone).",
        ),
    ] = None,
) -> ShopKpisPublic:
    """The shop's figures for one day in its ``timezone`` (its own key or the admin token).

    - ``orders``: orders placed during the day (local midnight to midnight: 23 or 25 hours on a
      daylight-saving change), whatever their status now;
      ``delivered`` and ``cancelled``: those of them delivered, cancelled.
    - ``on_time_rate``: delivered no later than ``promised_at`` / (``orders`` - ``cancelled``),
      as DESIGN's definition (the service rejects at intake, so nothing is ``rejected``); orders
      still open count as not on time. Null when there is no such order.
    - ``click_to_door_s``: seconds from ``placed_at`` to the delivery of the delivered orders:
      ``mean`` and ``p90`` (linear interpolation between order statistics, numpy's default).
    - ``rider_hours``: the time of the riders serving the shop on shift or on duty: each
      rider's declared shifts and the spans it was on duty (``POST /v1/riders/{id}/duty``; one
      still running counts up to now) merged, so that an overlap counts once, and clipped to
      the day; a rider serving several shops counts in each, but only while it served the shop
      (from ``POST /v1/riders/{id}/shops`` to ``DELETE /v1/riders/{id}/shops/{shop_id}``; its
      home shop since ever), so that linking or unlinking it changes no day before.
    - ``orders_per_rider_hour``: ``delivered`` / ``rider_hours``; null without rider hours.
    """
    return shop_kpis(session, shop, day or local_date(now, shop.timezone), now)
