"""Shops: created by the admin with a first API key; read by the shop itself."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import AdminDep, CurrentShopDep, NowDep, SessionDep
from api.errors import not_found
from api.models import ApiKey, ApiKeyCreated, Shop, ShopCreate, ShopCreated, ShopPublic
from api.security import generate_api_key, hash_api_key, key_prefix

router = APIRouter(prefix="/shops", tags=["shops"])


@router.post("", status_code=201, dependencies=[AdminDep])
def create_shop(shop_in: ShopCreate, session: SessionDep, now: NowDep) -> ShopCreated:
    """Create a shop and its first API key (admin token). The key is shown only in this reply."""
    shop = Shop.model_validate(shop_in, update={"created_at": now})
    key = generate_api_key()
    api_key = ApiKey(
        shop_id=shop.id, key_sha256=hash_api_key(key), prefix=key_prefix(key), created_at=now
    )
    session.add(shop)
    session.flush()  # the shop row first: the key refers to it
    session.add(api_key)
    session.commit()
    return ShopCreated(
        shop=ShopPublic.model_validate(shop),
        api_key=ApiKeyCreated(
            id=api_key.id, prefix=api_key.prefix, key=key, created_at=api_key.created_at
        ),
    )


@router.get("/{shop_id}")
def read_shop(shop_id: uuid.UUID, shop: CurrentShopDep) -> ShopPublic:
    """The shop of the calling key; any other shop is 404, as if it did not exist."""
    if shop.id != shop_id:
        raise not_found("shop")
    return ShopPublic.model_validate(shop)
