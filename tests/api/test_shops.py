"""Tests of api/routes/shops.py: admin-created shops, their first key, reads by the shop's key."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.api.conftest import Factory
from tests.api.factories import ADMIN, SHOP_LAT, SHOP_LON, ShopHandle, assert_error, shop_body


def test_create_shop_returns_shop_and_first_key(client: TestClient) -> None:
    """POST /v1/shops with the admin token returns 201, the shop with defaults and a new key."""
    response = client.post("/v1/shops", json=shop_body(), headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["shop"]["name"] == "Wanrun 24h"
    assert (body["shop"]["lat"], body["shop"]["lon"]) == (SHOP_LAT, SHOP_LON)
    assert (body["shop"]["circle_walk_min"], body["shop"]["promise_min"]) == (15, 30)
    key = body["api_key"]["key"]
    assert key.startswith("qh_") and len(key) > 40
    assert key.startswith(body["api_key"]["prefix"])


def test_key_is_stored_hashed(shop: ShopHandle, engine: Engine) -> None:
    """The database holds the key's SHA-256 and prefix, never the key itself."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT key_sha256, prefix FROM api_keys")).all()
    assert rows == [(hashlib.sha256(shop.key.encode()).hexdigest(), shop.key[:11])]


def test_create_shop_needs_the_admin_token(client: TestClient, shop: ShopHandle) -> None:
    """No token, a wrong token or a shop key get 401; nothing is created."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, shop.headers):
        response = client.post("/v1/shops", json=shop_body(), headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_admin_calls_refused_without_configured_token(app: FastAPI, client: TestClient) -> None:
    """With QUARTERHOUR_ADMIN_TOKEN unset, no bearer token creates a shop."""
    app.state.settings = app.state.settings.model_copy(update={"admin_token": None})
    body = assert_error(client.post("/v1/shops", json=shop_body(), headers=ADMIN), 401)
    assert "QUARTERHOUR_ADMIN_TOKEN" in body["message"]


def test_read_own_shop(client: TestClient, shop: ShopHandle) -> None:
    """GET /v1/shops/{id} with the shop's key returns the shop as created."""
    response = client.get(f"/v1/shops/{shop.id}", headers=shop.headers)
    assert response.status_code == 200
    assert response.json() == shop.body["shop"]


def test_read_shop_needs_a_live_key(client: TestClient, shop: ShopHandle, engine: Engine) -> None:
    """No key, an unknown key and a revoked key all get 401."""
    url = f"/v1/shops/{shop.id}"
    assert_error(client.get(url), 401, "unauthorized")
    assert_error(client.get(url, headers={"Authorization": "Bearer qh_nope"}), 401)
    with engine.begin() as connection:
        connection.execute(text("UPDATE api_keys SET revoked_at = created_at"))
    assert_error(client.get(url, headers=shop.headers), 401, "unauthorized")


def test_another_shops_key_gets_404(client: TestClient, make_shop: Factory) -> None:
    """Shop B's key reading shop A gets 404, the same as a shop that does not exist."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    assert_error(client.get(f"/v1/shops/{shop_a.id}", headers=shop_b.headers), 404, "not_found")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(client.get(f"/v1/shops/{missing}", headers=shop_b.headers), 404, "not_found")
