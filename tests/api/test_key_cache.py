"""Tests of api/key_cache.py: the shop of a key, read on a miss and kept while fresh."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import Engine, text

import api.key_cache
from api.key_cache import cached_shop, forget_all, read_shop
from tests.api.factories import ShopHandle


def test_a_shop_read_again_unchanged_is_the_same_object_and_a_changed_one_is_new(
    shop: ShopHandle, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A miss reads the shop's row: unchanged, the shop built before is kept; changed by
    another process (a write the cache cannot see), a new shop with the new values; revoked,
    none."""
    forget_all()
    key_sha256 = hashlib.sha256(shop.key.encode()).hexdigest()
    first = read_shop(engine, key_sha256)
    assert first is not None and cached_shop(key_sha256) is first
    monkeypatch.setattr(api.key_cache, "TTL_S", 0.0)  # every read is a miss from now on
    assert cached_shop(key_sha256) is None
    again = read_shop(engine, key_sha256)
    assert again is first
    with engine.begin() as connection:
        connection.execute(text("UPDATE shops SET promise_min = 45"))
    changed = read_shop(engine, key_sha256)
    assert changed is not None and changed is not first
    assert (changed.promise_min, first.promise_min, changed.id) == (45, 30, first.id)
    with engine.begin() as connection:
        connection.execute(text("UPDATE api_keys SET revoked_at = created_at"))
    assert read_shop(engine, key_sha256) is None
    forget_all()
