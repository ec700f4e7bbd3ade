"""Tests of GET /v1/trips and GET /v1/trips/{id}: the shop's trips, newest first, filtered by
status and rider, each with its stops; another shop's are invisible."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import Factory
from tests.api.factories import (
    INSIDE_LAT,
    INSIDE_LON,
    TICK_S,
    FakeClock,
    ShopHandle,
    assert_error,
    order_body,
    rider_body,
    run_dispatch,
)


def on_duty(client: TestClient, shop: ShopHandle, name: str) -> dict[str, Any]:
    rider = client.post("/v1/riders", json=rider_body(name=name), headers=shop.headers).json()
    duty = client.post(
        f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=shop.headers
    )
    assert duty.status_code == 200, duty.text
    return rider


def dispatch_one(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock, external_id: str
) -> dict[str, Any]:
    """Place an order and dispatch until it is on a trip; the order."""
    body = order_body(external_id=external_id, dropoff_lat=INSIDE_LAT, dropoff_lon=INSIDE_LON)
    order = client.post("/v1/orders", json=body, headers=shop.headers).json()
    for _ in range(20):
        run_dispatch(engine, shop.id, clock())
        order = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
        if order["trip_id"] is not None:
            return order
        clock.advance(TICK_S)
    raise AssertionError(f"order {external_id} never dispatched")


def trips(client: TestClient, shop: ShopHandle, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/trips", params=params, headers=shop.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_trips_are_listed_newest_first_and_filtered(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    shop, other = make_shop(), make_shop(name="Fruit corner")
    first_rider, second_rider = on_duty(client, shop, "Li Wei"), on_duty(client, shop, "Zhang Min")
    first = dispatch_one(client, shop, engine, clock, "A-1")
    clock.advance(TICK_S)
    second = dispatch_one(client, shop, engine, clock, "A-2")
    assert first["trip_id"] != second["trip_id"]
    listed = trips(client, shop)
    assert listed["count"] == 2
    assert [trip["id"] for trip in listed["data"]] == [second["trip_id"], first["trip_id"]]
    newest = listed["data"][0]
    assert [stop["order_id"] for stop in newest["stops"]] == [second["id"]]
    assert {trip["rider_id"] for trip in listed["data"]} == {first_rider["id"], second_rider["id"]}
    one = client.get(f"/v1/trips/{newest['id']}", headers=shop.headers)
    assert one.status_code == 200 and one.json() == newest

    picked = client.post(f"/v1/trips/{first['trip_id']}/pickup", headers=shop.headers)
    assert picked.status_code == 200, picked.text
    assert [t["id"] for t in trips(client, shop, status="picked_up")["data"]] == [first["trip_id"]]
    assert trips(client, shop, status="committed")["count"] == 1
    assert trips(client, shop, status="done") == {"data": [], "count": 0}
    by_rider = trips(client, shop, rider_id=newest["rider_id"])
    assert [trip["id"] for trip in by_rider["data"]] == [newest["id"]]
    page = trips(client, shop, skip=1, limit=1)
    assert (page["count"], [t["id"] for t in page["data"]]) == (2, [first["trip_id"]])

    assert trips(client, other) == {"data": [], "count": 0}
    assert_error(client.get(f"/v1/trips/{newest['id']}", headers=other.headers), 404, "not_found")
    assert_error(client.get(f"/v1/trips/{newest['id']}"), 401)
    for params in ({"status": "lost"}, {"rider_id": "nope"}, {"limit": 0}, {"skip": -1}):
        assert_error(client.get("/v1/trips", params=params, headers=shop.headers), 422)
