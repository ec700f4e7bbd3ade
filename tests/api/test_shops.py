"""Tests of api/routes/shops.py: admin-created shops, their keys (added, revoked), reads."""

from __future__ import annotations

import hashlib
import threading

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.api.conftest import Factory
from tests.api.factories import (
    ADMIN,
    SHOP_LAT,
    SHOP_LON,
    ShopHandle,
    assert_error,
    count_rows,
    order_body,
    shop_body,
)


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


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


def test_shop_key_creates_another_key(client: TestClient, shop: ShopHandle, engine: Engine) -> None:
    """POST .../keys with the shop key: 201, a new live key shown once, stored hashed."""
    response = client.post(f"/v1/shops/{shop.id}/keys", headers=shop.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "prefix", "key", "created_at"}
    assert created["key"] != shop.key and created["key"].startswith(created["prefix"])
    new_headers = {"Authorization": f"Bearer {created['key']}"}
    assert client.get(f"/v1/shops/{shop.id}", headers=new_headers).status_code == 200
    assert client.get(f"/v1/shops/{shop.id}", headers=shop.headers).status_code == 200
    assert count_rows(engine, "api_keys", "key_sha256 = :h", h=sha256(created["key"])) == 1
    assert count_rows(engine, "api_keys", "prefix = :p", p=created["key"]) == 0


def test_admin_creates_a_key(client: TestClient, shop: ShopHandle) -> None:
    """The admin token may add a key to any shop; an unknown shop is 404."""
    response = client.post(f"/v1/shops/{shop.id}/keys", headers=ADMIN)
    assert response.status_code == 201, response.text
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(client.post(f"/v1/shops/{missing}/keys", headers=ADMIN), 404, "not_found")
    assert_error(client.post(f"/v1/shops/{shop.id}/keys"), 401, "unauthorized")


def test_revoked_key_gets_401(client: TestClient, shop: ShopHandle) -> None:
    """After DELETE /v1/shops/{id}/keys/{key_id} the revoked key gets 401; the other still works."""
    second = client.post(f"/v1/shops/{shop.id}/keys", headers=shop.headers).json()
    second_headers = {"Authorization": f"Bearer {second['key']}"}
    first_id = shop.body["api_key"]["id"]
    response = client.delete(f"/v1/shops/{shop.id}/keys/{first_id}", headers=second_headers)
    assert response.status_code == 200, response.text
    revoked = response.json()
    assert revoked["id"] == first_id and revoked["revoked_at"] is not None
    assert "key" not in revoked
    assert_error(client.get(f"/v1/shops/{shop.id}", headers=shop.headers), 401, "unauthorized")
    assert_error(client.post(f"/v1/shops/{shop.id}/keys", headers=shop.headers), 401)
    assert client.get(f"/v1/shops/{shop.id}", headers=second_headers).status_code == 200
    again = client.delete(f"/v1/shops/{shop.id}/keys/{first_id}", headers=second_headers)
    assert (again.status_code, again.json()) == (200, revoked)


def test_a_revoked_key_gets_401_at_once_on_the_cached_routes(
    client: TestClient, shop: ShopHandle
) -> None:
    """The routes that authenticate from the key cache (``POST /v1/orders``) answer a key that
    was just used with 401 right after its revocation, and an unknown key with 401."""
    second = client.post(f"/v1/shops/{shop.id}/keys", headers=shop.headers).json()
    first = client.post("/v1/orders", json=order_body(external_id="K-1"), headers=shop.headers)
    assert first.status_code == 201, first.text
    assert first.json()["shop_id"] == shop.id
    path = f"/v1/shops/{shop.id}/keys/{shop.body['api_key']['id']}"
    revoked = client.delete(path, headers={"Authorization": f"Bearer {second['key']}"})
    assert revoked.status_code == 200, revoked.text
    again = client.post("/v1/orders", json=order_body(external_id="K-2"), headers=shop.headers)
    assert_error(again, 401, "unauthorized")
    unknown = {"Authorization": "Bearer qh_not-a-key"}
    assert_error(client.post("/v1/orders", json=order_body(), headers=unknown), 401)


def test_last_live_key_cannot_be_revoked(client: TestClient, shop: ShopHandle) -> None:
    """Revoking the shop's only live key gets 409 last_key, by the shop and by the admin alike."""
    path = f"/v1/shops/{shop.id}/keys/{shop.body['api_key']['id']}"
    for headers in (shop.headers, ADMIN):
        assert_error(client.delete(path, headers=headers), 409, "last_key")
    assert client.get(f"/v1/shops/{shop.id}", headers=shop.headers).status_code == 200


def test_a_key_can_revoke_itself(client: TestClient, shop: ShopHandle) -> None:
    """A key may revoke itself while another key is live; it gets 401 right after."""
    client.post(f"/v1/shops/{shop.id}/keys", headers=ADMIN)
    path = f"/v1/shops/{shop.id}/keys/{shop.body['api_key']['id']}"
    assert client.delete(path, headers=shop.headers).status_code == 200
    assert_error(client.delete(path, headers=shop.headers), 401, "unauthorized")


def test_unknown_key_id_is_404(client: TestClient, shop: ShopHandle) -> None:
    """Revoking a key id that does not exist is 404."""
    missing = "00000000-0000-4000-8000-000000000000"
    response = client.delete(f"/v1/shops/{shop.id}/keys/{missing}", headers=shop.headers)
    assert_error(response, 404, "not_found")


def test_malformed_key_id_is_422(client: TestClient, shop: ShopHandle) -> None:
    """A key id that is not a UUID gets 422, and the key stays live."""
    response = client.delete(f"/v1/shops/{shop.id}/keys/1", headers=shop.headers)
    assert_error(response, 422, "validation_error")
    assert client.get(f"/v1/shops/{shop.id}", headers=shop.headers).status_code == 200


def test_concurrent_revocations_leave_a_live_key(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """Keys racing to revoke each other (and themselves): all but one revoked, never all."""
    n_keys = 6
    keys = [shop.body["api_key"]] + [
        client.post(f"/v1/shops/{shop.id}/keys", headers=ADMIN).json() for _ in range(n_keys - 1)
    ]
    barrier = threading.Barrier(n_keys)
    statuses: list[int] = [0] * n_keys

    def revoke(index: int) -> None:
        barrier.wait()
        path = f"/v1/shops/{shop.id}/keys/{keys[index]['id']}"
        statuses[index] = client.delete(path, headers=ADMIN).status_code

    threads = [threading.Thread(target=revoke, args=(index,)) for index in range(n_keys)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * (n_keys - 1) + [409]
    assert count_rows(engine, "api_keys", "revoked_at IS NULL") == 1
