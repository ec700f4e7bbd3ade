"""One shop never sees another's data: every route with an id answers 404, lists show nothing."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import Factory
from tests.api.factories import (
    ADMIN,
    FakeClock,
    assert_error,
    order_body,
    rider_body,
    run_dispatch,
)

# Every route that names an object of a shop, as (method, path template).
ROUTES_WITH_IDS = {
    ("GET", "/v1/shops/{shop_id}"),
    ("PATCH", "/v1/shops/{shop_id}"),
    ("GET", "/v1/shops/{shop_id}/kpis"),
    ("POST", "/v1/shops/{shop_id}/keys"),
    ("DELETE", "/v1/shops/{shop_id}/keys/{key_id}"),
    ("GET", "/v1/orders/{order_id}"),
    ("POST", "/v1/orders/{order_id}/cancel"),
    ("GET", "/v1/orders/{order_id}/events"),
    ("GET", "/v1/riders/{rider_id}"),
    ("PATCH", "/v1/riders/{rider_id}"),
    ("POST", "/v1/riders/{rider_id}/duty"),
    ("POST", "/v1/riders/{rider_id}/location"),
    ("GET", "/v1/riders/{rider_id}/trip"),
    ("POST", "/v1/riders/{rider_id}/shops"),
    ("DELETE", "/v1/riders/{rider_id}/shops/{shop_id}"),
    ("GET", "/v1/trips/{trip_id}"),
    ("POST", "/v1/trips/{trip_id}/pickup"),
    ("POST", "/v1/orders/{order_id}/deliver"),
    ("POST", "/v1/orders/{order_id}/fail"),
    ("GET", "/v1/shops/{shop_id}/webhook-secrets"),
    ("POST", "/v1/shops/{shop_id}/webhook-secrets"),
    ("DELETE", "/v1/shops/{shop_id}/webhook-secrets/{secret_id}"),
    ("POST", "/v1/webhooks/{source}"),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}"),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/replay"),
}
# Valid bodies, so that the answer is about whose object it is, not about the body.
BODIES = {
    ("PATCH", "/v1/riders/{rider_id}"): {"capacity_bags": 3},
    ("PATCH", "/v1/shops/{shop_id}"): {"name": "Renamed"},
    ("POST", "/v1/riders/{rider_id}/duty"): {"on_duty": True},
    ("POST", "/v1/riders/{rider_id}/location"): {"lat": 34.6, "lon": 119.2},
    ("POST", "/v1/orders/{order_id}/fail"): {"reason": "nobody home", "retry": False},
}
# Routes for the admin token only: a shop key gets 401 whatever the id.
ADMIN_ONLY = {
    ("POST", "/v1/riders/{rider_id}/shops"),
    ("DELETE", "/v1/riders/{rider_id}/shops/{shop_id}"),
}
# Routes authenticated by a webhook signature, not a key: a key alone gets 401 (a signed event
# naming another shop is 401 too, see test_webhooks_in.py).
SIGNED = {("POST", "/v1/webhooks/{source}")}


def test_every_route_with_an_id_is_covered(app: FastAPI) -> None:
    """The cases cover every operation of the OpenAPI document with a path parameter."""
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if "{" in path
        for method in operations
    }
    assert routes == ROUTES_WITH_IDS


def test_other_shops_objects_are_404(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """Shop B's key gets 404 for shop A and each of A's objects, and A's objects are untouched."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    rider = client.post("/v1/riders", json=rider_body(), headers=shop_a.headers).json()
    duty = {"on_duty": True}
    client.post(f"/v1/riders/{rider['id']}/duty", json=duty, headers=shop_a.headers)
    order = client.post("/v1/orders", json=order_body(), headers=shop_a.headers).json()
    assert len(run_dispatch(engine, shop_a.id, clock()).trips) == 1
    order = client.get(f"/v1/orders/{order['id']}", headers=shop_a.headers).json()
    rider = client.get(f"/v1/riders/{rider['id']}", headers=shop_a.headers).json()
    trip = client.get(f"/v1/riders/{rider['id']}/trip", headers=shop_a.headers).json()
    key_a = shop_a.body["api_key"]["id"]
    secret_a = client.post(f"/v1/shops/{shop_a.id}/webhook-secrets", headers=shop_a.headers)
    endpoint = client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["order.cancelled"]},
        headers=shop_a.headers,
    ).json()
    extra = client.post("/v1/orders", json=order_body(external_id="x"), headers=shop_a.headers)
    client.post(f"/v1/orders/{extra.json()['id']}/cancel", headers=shop_a.headers)
    deliveries_path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"
    delivery = client.get(deliveries_path, headers=shop_a.headers).json()["data"][0]
    hooks = "/v1/shops/{shop_id}/webhook-secrets"
    endpoint_path = f"/v1/webhook-endpoints/{endpoint['id']}"
    paths = {
        ("GET", "/v1/shops/{shop_id}"): f"/v1/shops/{shop_a.id}",
        ("PATCH", "/v1/shops/{shop_id}"): f"/v1/shops/{shop_a.id}",
        ("GET", "/v1/shops/{shop_id}/kpis"): f"/v1/shops/{shop_a.id}/kpis",
        ("POST", "/v1/shops/{shop_id}/keys"): f"/v1/shops/{shop_a.id}/keys",
        ("DELETE", "/v1/shops/{shop_id}/keys/{key_id}"): f"/v1/shops/{shop_a.id}/keys/{key_a}",
        ("GET", "/v1/orders/{order_id}"): f"/v1/orders/{order['id']}",
        ("POST", "/v1/orders/{order_id}/cancel"): f"/v1/orders/{order['id']}/cancel",
        ("GET", "/v1/orders/{order_id}/events"): f"/v1/orders/{order['id']}/events",
        ("GET", "/v1/riders/{rider_id}"): f"/v1/riders/{rider['id']}",
        ("PATCH", "/v1/riders/{rider_id}"): f"/v1/riders/{rider['id']}",
        ("POST", "/v1/riders/{rider_id}/duty"): f"/v1/riders/{rider['id']}/duty",
        ("POST", "/v1/riders/{rider_id}/location"): f"/v1/riders/{rider['id']}/location",
        ("GET", "/v1/riders/{rider_id}/trip"): f"/v1/riders/{rider['id']}/trip",
        ("POST", "/v1/riders/{rider_id}/shops"): f"/v1/riders/{rider['id']}/shops",
        ("DELETE", "/v1/riders/{rider_id}/shops/{shop_id}"): (
            f"/v1/riders/{rider['id']}/shops/{shop_a.id}"
        ),
        ("GET", "/v1/trips/{trip_id}"): f"/v1/trips/{trip['id']}",
        ("POST", "/v1/trips/{trip_id}/pickup"): f"/v1/trips/{trip['id']}/pickup",
        ("POST", "/v1/orders/{order_id}/deliver"): f"/v1/orders/{order['id']}/deliver",
        ("POST", "/v1/orders/{order_id}/fail"): f"/v1/orders/{order['id']}/fail",
        ("GET", hooks): f"/v1/shops/{shop_a.id}/webhook-secrets",
        ("POST", hooks): f"/v1/shops/{shop_a.id}/webhook-secrets",
        ("DELETE", hooks + "/{secret_id}"): (
            f"/v1/shops/{shop_a.id}/webhook-secrets/{secret_a.json()['id']}"
        ),
        ("POST", "/v1/webhooks/{source}"): "/v1/webhooks/pos",
        ("GET", "/v1/webhook-endpoints/{endpoint_id}"): endpoint_path,
        ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): endpoint_path,
        ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): deliveries_path,
        ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}"): (
            f"{deliveries_path}/{delivery['id']}"
        ),
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/replay"): (
            f"{deliveries_path}/{delivery['id']}/replay"
        ),
    }
    assert set(paths) == ROUTES_WITH_IDS
    bodies = {**BODIES, ("POST", "/v1/riders/{rider_id}/shops"): {"shop_id": shop_b.id}}
    for (method, template), path in paths.items():
        response = client.request(
            method, path, json=bodies.get((method, template)), headers=shop_b.headers
        )
        if (method, template) in ADMIN_ONLY:
            assert_error(response, 401, "unauthorized")
        elif (method, template) in SIGNED:
            assert_error(response, 401, "invalid_signature")
        else:
            assert_error(response, 404, "not_found")
    mine = client.get(f"/v1/orders/{order['id']}", headers=shop_a.headers).json()
    assert mine == order
    assert client.get(f"/v1/riders/{rider['id']}", headers=shop_a.headers).json() == rider
    assert client.get(f"/v1/riders/{rider['id']}/trip", headers=shop_a.headers).json() == trip
    assert client.get(f"/v1/shops/{shop_a.id}", headers=shop_a.headers).status_code == 200
    assert client.get(endpoint_path, headers=shop_a.headers).json()["disabled_at"] is None
    secrets = client.get(f"/v1/shops/{shop_a.id}/webhook-secrets", headers=shop_a.headers).json()
    assert [row["retired_at"] for row in secrets["data"]] == [None]
    after = client.get(f"{deliveries_path}/{delivery['id']}", headers=shop_a.headers).json()
    assert after["attempts"] == 0 and after["queued_at"] == delivery["queued_at"]


def test_other_shops_key_ids_are_404(client: TestClient, make_shop: Factory) -> None:
    """Naming A's key under B's own path, with B's key or the admin token, is 404; it stays live."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    client.post(f"/v1/shops/{shop_b.id}/keys", headers=shop_b.headers)  # B has two keys
    path = f"/v1/shops/{shop_b.id}/keys/{shop_a.body['api_key']['id']}"
    for headers in (shop_b.headers, ADMIN):
        assert_error(client.delete(path, headers=headers), 404, "not_found")
    assert client.get(f"/v1/shops/{shop_a.id}", headers=shop_a.headers).status_code == 200


def test_lists_show_only_own_riders(client: TestClient, make_shop: Factory) -> None:
    """Shop B's rider list is empty under every filter while shop A has a rider."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    client.post("/v1/riders", json=rider_body(), headers=shop_a.headers)
    for params in ({}, {"on_duty": "false"}, {"on_duty": "true"}):
        listed = client.get("/v1/riders", params=params, headers=shop_b.headers).json()
        assert listed == {"data": [], "count": 0}
    assert client.get("/v1/riders", headers=shop_a.headers).json()["count"] == 1


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


def test_a_shared_rider_is_seen_only_by_the_shops_it_serves(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """A's rider linked to B: B lists, reads and manages it, but not A's trip on it (no_trip);
    shop C, not linked, still gets 404 everywhere and an empty list."""
    shop_a, shop_b, shop_c = make_shop(), make_shop(name="Fruit corner"), make_shop(name="C")
    rider = client.post("/v1/riders", json=rider_body(), headers=shop_a.headers).json()
    linked = client.post(
        f"/v1/riders/{rider['id']}/shops", json={"shop_id": shop_b.id}, headers=ADMIN
    )
    assert linked.json()["shop_ids"] == [shop_a.id, shop_b.id]
    duty = client.post(
        f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=shop_b.headers
    )
    assert duty.json()["on_duty"] is True
    client.post("/v1/orders", json=order_body(), headers=shop_a.headers)
    assert len(run_dispatch(engine, shop_a.id, clock()).trips) == 1
    trip_url = f"/v1/riders/{rider['id']}/trip"
    assert client.get(trip_url, headers=shop_a.headers).status_code == 200
    assert_error(client.get(trip_url, headers=shop_b.headers), 404, "no_trip")
    listed = client.get("/v1/riders", headers=shop_b.headers).json()
    assert [r["id"] for r in listed["data"]] == [rider["id"]]
    assert client.get(f"/v1/riders/{rider['id']}", headers=shop_b.headers).status_code == 200
    for path in (f"/v1/riders/{rider['id']}", trip_url):
        assert_error(client.get(path, headers=shop_c.headers), 404, "not_found")
    assert client.get("/v1/riders", headers=shop_c.headers).json() == {"data": [], "count": 0}
