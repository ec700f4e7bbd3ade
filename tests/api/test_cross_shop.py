"""One shop never sees another's data: every route with an id answers 404, lists show nothing."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import Factory
from tests.api.factories import assert_error, order_body

# Every route that names an object of a shop, as (method, path template).
ROUTES_WITH_IDS = {
    ("GET", "/v1/shops/{shop_id}"),
    ("GET", "/v1/orders/{order_id}"),
    ("POST", "/v1/orders/{order_id}/cancel"),
    ("GET", "/v1/orders/{order_id}/events"),
}


def test_every_route_with_an_id_is_covered(app: FastAPI) -> None:
    """The cases cover every operation of the OpenAPI document with a path parameter."""
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if "{" in path
        for method in operations
    }
    assert routes == ROUTES_WITH_IDS


def test_other_shops_objects_are_404(client: TestClient, make_shop: Factory) -> None:
    """Shop B's key gets 404 for shop A and each of A's orders, and A's order is untouched."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    order = client.post("/v1/orders", json=order_body(), headers=shop_a.headers).json()
    paths = {
        ("GET", "/v1/shops/{shop_id}"): f"/v1/shops/{shop_a.id}",
        ("GET", "/v1/orders/{order_id}"): f"/v1/orders/{order['id']}",
        ("POST", "/v1/orders/{order_id}/cancel"): f"/v1/orders/{order['id']}/cancel",
        ("GET", "/v1/orders/{order_id}/events"): f"/v1/orders/{order['id']}/events",
    }
    assert set(paths) == ROUTES_WITH_IDS
    for (method, _template), path in paths.items():
        assert_error(client.request(method, path, headers=shop_b.headers), 404, "not_found")
    mine = client.get(f"/v1/orders/{order['id']}", headers=shop_a.headers).json()
    assert mine == order


def test_lists_show_only_own_orders(client: TestClient, make_shop: Factory) -> None:
    """Shop B's list is empty under every filter while shop A has orders."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    client.post("/v1/orders", json=order_body(), headers=shop_a.headers)
    for params in ({}, {"status": "pending"}, {"since": "2000-01-01T00:00:00Z"}):
        listed = client.get("/v1/orders", params=params, headers=shop_b.headers).json()
        assert listed == {"data": [], "count": 0}
    assert client.get("/v1/orders", headers=shop_a.headers).json()["count"] == 1


def test_keys_and_external_ids_are_per_shop(client: TestClient, make_shop: Factory) -> None:
    """The same Idempotency-Key and (source, external_id) in shop B make B's own order."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    headers_a = {**shop_a.headers, "Idempotency-Key": "same-key"}
    headers_b = {**shop_b.headers, "Idempotency-Key": "same-key"}
    order_a = client.post("/v1/orders", json=order_body(), headers=headers_a)
    order_b = client.post("/v1/orders", json=order_body(), headers=headers_b)
    assert (order_a.status_code, order_b.status_code) == (201, 201)
    assert order_b.json()["shop_id"] == shop_b.id
    assert order_b.json()["id"] != order_a.json()["id"]
