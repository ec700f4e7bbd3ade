"""Tests of the Shopify orders/create adapter (api/routes/webhooks.py): base64 HMAC check,
deduplication on X-Shopify-Webhook-Id and the mapping of a Shopify order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.signing import shopify_hmac
from tests.api.factories import (
    INSIDE_LAT,
    INSIDE_LON,
    OUTSIDE_LAT,
    ShopHandle,
    add_webhook_secret,
    assert_error,
    count_rows,
)

# Shopify's own webhook signing secret, registered with the shop.
SHOPIFY_SECRET = "shpss_0123456789abcdef0123456789abcdef"


def shopify_order(**overrides: Any) -> dict[str, Any]:
    """A trimmed Shopify order payload (the real one has dozens more fields)."""
    return {
        "id": 820982911946154508,
        "name": "#1001",
        "email": "jon@example.com",
        "line_items": [{"id": 1, "quantity": 4, "title": "Milk"}, {"quantity": 3}],
        "shipping_address": {
            "address1": "3-2-501 Haitang Road",
            "address2": None,
            "city": "Lianyungang",
            "zip": "222000",
            "latitude": INSIDE_LAT,
            "longitude": INSIDE_LON,
            "country_code": "CN",
        },
        **overrides,
    }


def post_shopify(
    client: TestClient,
    shop: ShopHandle,
    payload: Any,
    *,
    secret: str | None = SHOPIFY_SECRET,
    webhook_id: str | None = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    topic: str = "orders/create",
    tamper: bool = False,
    shop_id: str | None = None,
) -> Any:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic}
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = shopify_hmac(secret, body)
    if webhook_id is not None:
        headers["X-Shopify-Webhook-Id"] = webhook_id
    if tamper:
        body = body.replace(b'"quantity": 4', b'"quantity": 9')
    return client.post(
        "/v1/webhooks/shopify",
        params={"shop_id": shop_id or shop.id},
        content=body,
        headers=headers,
    )


@pytest.fixture
def shopify_shop(client: TestClient, shop: ShopHandle) -> ShopHandle:
    add_webhook_secret(client, shop, SHOPIFY_SECRET)
    return shop


def test_an_orders_create_webhook_makes_a_shopify_order(
    client: TestClient, shopify_shop: ShopHandle
) -> None:
    """The order is source shopify, external id the Shopify id, drop-off the shipping
    coordinates, the address joined, 7 items in 2 bags."""
    response = post_shopify(client, shopify_shop, shopify_order())
    assert response.status_code == 200, response.text
    ack = response.json()
    assert ack["status"] == "applied" and ack["event_id"] == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    order = client.get(f"/v1/orders/{ack['order_id']}", headers=shopify_shop.headers).json()
    assert (order["source"], order["external_id"]) == ("shopify", "820982911946154508")
    assert (order["dropoff_lat"], order["dropoff_lon"]) == (INSIDE_LAT, INSIDE_LON)
    assert order["address"] == "3-2-501 Haitang Road, Lianyungang, 222000"
    assert order["size_bags"] == 2


@pytest.mark.parametrize("case", ["tampered", "wrong_secret", "no_hmac", "no_id", "other_shop"])
def test_bad_shopify_requests_are_401_and_store_nothing(
    client: TestClient, shopify_shop: ShopHandle, engine: Engine, case: str
) -> None:
    """A tampered body, another secret, a missing HMAC or webhook id header, an unknown shop:
    401 and no row."""
    response = post_shopify(
        client,
        shopify_shop,
        shopify_order(),
        tamper=case == "tampered",
        secret={"wrong_secret": "shpss_other-secret-000000000", "no_hmac": None}.get(
            case, SHOPIFY_SECRET
        ),
        webhook_id=None if case == "no_id" else "w-1",
        shop_id="00000000-0000-4000-8000-000000000000" if case == "other_shop" else None,
    )
    assert_error(response, 401, "invalid_signature")
    assert (count_rows(engine, "inbound_events"), count_rows(engine, "orders")) == (0, 0)


def test_a_redelivered_webhook_has_one_effect(
    client: TestClient, shopify_shop: ShopHandle, engine: Engine
) -> None:
    """The same X-Shopify-Webhook-Id twice: one order, the second answer a duplicate; the
    same order under a new webhook id: still one order."""
    first = post_shopify(client, shopify_shop, shopify_order()).json()
    second = post_shopify(client, shopify_shop, shopify_order()).json()
    third = post_shopify(client, shopify_shop, shopify_order(), webhook_id="w-2").json()
    assert (second["duplicate"], third["status"]) == (True, "ignored")
    assert first["order_id"] == second["order_id"] == third["order_id"]
    assert count_rows(engine, "orders") == 1


def test_unroutable_shopify_orders_are_422_and_store_nothing(
    client: TestClient, shopify_shop: ShopHandle, engine: Engine
) -> None:
    """No shipping coordinates, a drop-off outside the circle, another topic, a body that is
    not an order: 422 with a code, nothing stored."""
    no_coordinates = shopify_order(shipping_address={"address1": "somewhere"})
    outside = shopify_order()
    outside["shipping_address"]["latitude"] = OUTSIDE_LAT
    for payload, topic, code in (
        (no_coordinates, "orders/create", "missing_coordinates"),
        (shopify_order(shipping_address=None), "orders/create", "missing_coordinates"),
        (outside, "orders/create", "outside_service_area"),
        (shopify_order(), "orders/updated", "unsupported_topic"),
        ([1, 2], "orders/create", "validation_error"),
    ):
        assert_error(post_shopify(client, shopify_shop, payload, topic=topic), 422, code)
    assert (count_rows(engine, "inbound_events"), count_rows(engine, "orders")) == (0, 0)
