"""Tests of api/routes/orders.py: intake (circle rule, idempotency, duplicates), reads, lists,
cancellation and the event history."""

from __future__ import annotations

import json
import math
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests import naive
from tests.api.factories import (
    INSIDE_LAT,
    INSIDE_LON,
    OUTSIDE_LAT,
    OUTSIDE_LON,
    SHOP_LAT,
    SHOP_LON,
    START,
    FakeClock,
    ShopHandle,
    assert_error,
    count_rows,
    order_body,
)

N_RACERS = 8


def at(text_time: str) -> datetime:
    return datetime.fromisoformat(text_time)


def post_order(
    client: TestClient, shop: ShopHandle, key: str | None = None, **overrides: Any
) -> Any:
    headers = dict(shop.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/v1/orders", json=order_body(**overrides), headers=headers)


def test_intake_returns_201_with_promised_time(client: TestClient, shop: ShopHandle) -> None:
    """A new order inside the circle: 201, pending, ready when placed, promised 30 min later."""
    response = post_order(client, shop)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "pending"
    assert order["shop_id"] == shop.id
    assert (order["source"], order["external_id"], order["size_bags"]) == ("pos", "A-1001", 2)
    assert at(order["placed_at"]) == START
    assert at(order["ready_at"]) == START
    assert at(order["promised_at"]) - at(order["placed_at"]) == timedelta(minutes=30)


def test_intake_is_durable_and_readable(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """The acknowledged order is one row and reads back the same through GET /v1/orders/{id}
    (all but its delivery PIN, shown only at intake)."""
    order = post_order(client, shop).json()
    assert count_rows(engine, "orders") == 1
    response = client.get(f"/v1/orders/{order['id']}", headers=shop.headers)
    assert response.status_code == 200
    pin = order.pop("pin")
    assert response.json() == order
    assert len(pin) == 4 and pin.isdigit()


def test_ready_time_from_picking_minutes_or_ready_at(client: TestClient, shop: ShopHandle) -> None:
    """picking_min adds to the placing time; a ready_at in the past means ready now."""
    picked = post_order(client, shop, external_id="p", picking_min=4).json()
    assert at(picked["ready_at"]) - at(picked["placed_at"]) == timedelta(minutes=4)
    later = (START + timedelta(minutes=7)).isoformat()
    ready = post_order(client, shop, external_id="r", ready_at=later).json()
    assert at(ready["ready_at"]) == START + timedelta(minutes=7)
    past = (START - timedelta(hours=1)).isoformat()
    already = post_order(client, shop, external_id="q", ready_at=past).json()
    assert at(already["ready_at"]) == START


def test_ready_rules_rejected(client: TestClient, shop: ShopHandle) -> None:
    """Both ready_at and picking_min, a naive ready_at, or one more than a day ahead: 422."""
    soon = (START + timedelta(minutes=5)).isoformat()
    assert_error(post_order(client, shop, ready_at=soon, picking_min=3), 422, "validation_error")
    assert_error(post_order(client, shop, ready_at="2026-11-29T09:05:00"), 422)
    far = (START + timedelta(days=2)).isoformat()
    assert_error(post_order(client, shop, ready_at=far), 422, "ready_at_out_of_range")


def test_promise_follows_the_shop(client: TestClient, make_shop: Any) -> None:
    """promised_at = placed_at + the shop's promise_min."""
    shop = make_shop(promise_min=45)
    order = post_order(client, shop).json()
    assert at(order["promised_at"]) - at(order["placed_at"]) == timedelta(minutes=45)


def test_outside_circle_is_422_with_walking_minutes(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """A drop-off beyond a 15-minute walk: 422 outside_service_area naming the minutes; no row."""
    walking_s = naive.travel_s(
        naive.distance_m((SHOP_LAT, SHOP_LON), (OUTSIDE_LAT, OUTSIDE_LON)), naive.SPEEDS_MPS[0]
    )
    response = post_order(client, shop, dropoff_lat=OUTSIDE_LAT, dropoff_lon=OUTSIDE_LON)
    body = assert_error(response, 422, "outside_service_area")
    assert f"{walking_s / 60:.1f}-minute walk" in body["message"]
    assert "15-minute" in body["message"]
    assert count_rows(engine, "orders") == 0


def test_circle_edge_follows_design_rule(client: TestClient, make_shop: Any) -> None:
    """Inside iff walking seconds <= circle_walk_min * 60, with the naive twin's seconds."""
    walking_s = naive.travel_s(
        naive.distance_m((SHOP_LAT, SHOP_LON), (INSIDE_LAT, INSIDE_LON)), naive.SPEEDS_MPS[0]
    )
    tight = make_shop(circle_walk_min=math.floor(walking_s / 60))
    loose = make_shop(circle_walk_min=math.ceil(walking_s / 60))
    assert_error(post_order(client, tight), 422, "outside_service_area")
    assert post_order(client, loose).status_code == 201


def test_same_idempotency_key_same_body_replays(
    client: TestClient, shop: ShopHandle, clock: FakeClock, engine: Engine
) -> None:
    """A retry with the same key and body gets the same status and body (but for the PIN,
    shown only once), and no new row."""
    first = post_order(client, shop, key="retry-1")
    clock.advance(60)
    again = post_order(client, shop, key="retry-1")
    assert (again.status_code, again.json()) == (first.status_code, {**first.json(), "pin": None})
    assert again.headers["idempotent-replayed"] == "true"
    assert count_rows(engine, "orders") == 1


def test_intake_replies_are_the_bytes_json_response_sends(
    client: TestClient, shop: ShopHandle
) -> None:
    """Every intake reply (201 new, 201 replay, 200 known) is byte for byte what
    ``JSONResponse`` makes of its parsed body, ``pin`` last, also with non-ASCII text and
    with the fast path's neighbour, FastAPI's own handler (``application/json; charset``)."""
    new = post_order(client, shop, key="bytes-1", address="Lou 3, \u5ba4 2")
    replay = post_order(client, shop, key="bytes-1", address="Lou 3, \u5ba4 2")
    known = post_order(client, shop, address="other")
    slow = client.post(
        "/v1/orders",
        content=json.dumps(order_body(external_id="A-2002")).encode(),
        headers={**shop.headers, "Content-Type": "application/json; charset=utf-8"},
    )
    for response, status in ((new, 201), (replay, 201), (known, 200), (slow, 201)):
        assert response.status_code == status, response.text
        assert response.content == JSONResponse(response.json()).body
        assert list(response.json())[-1] == "pin"
        assert response.headers["content-type"] == "application/json"
    assert new.json()["address"] == "Lou 3, \u5ba4 2"
    assert replay.headers["idempotent-replayed"] == "true"


def test_same_idempotency_key_other_body_is_422(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """The same key with a different body: 422 idempotency_key_reused; the first order stands."""
    post_order(client, shop, key="k-1")
    response = post_order(client, shop, key="k-1", external_id="A-1002")
    assert_error(response, 422, "idempotency_key_reused")
    assert count_rows(engine, "orders") == 1


def test_duplicate_external_id_returns_the_same_order(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """The same (source, external_id) again: 200 with the first order, unchanged (its PIN not
    shown again); one row."""
    first = post_order(client, shop)
    again = post_order(client, shop, address="another text")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "pin": None}
    other_source = post_order(client, shop, source="meituan")
    assert other_source.status_code == 201
    assert count_rows(engine, "orders") == 2


def _race(client: TestClient, shop: ShopHandle, key: str | None) -> list[Any]:
    barrier = threading.Barrier(N_RACERS)
    responses: list[Any] = [None] * N_RACERS

    def post(index: int) -> None:
        barrier.wait()
        responses[index] = post_order(client, shop, key=key)

    threads = [threading.Thread(target=post, args=(index,)) for index in range(N_RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_concurrent_same_idempotency_key_makes_one_order(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """Requests racing with one Idempotency-Key all get 201 and the same order; one row."""
    responses = _race(client, shop, key="race-1")
    assert [response.status_code for response in responses] == [201] * N_RACERS
    assert len({response.json()["id"] for response in responses}) == 1
    assert count_rows(engine, "orders") == 1
    assert count_rows(engine, "order_events") == 1


def test_concurrent_same_external_id_makes_one_order(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """Requests racing with one (source, external_id): one 201, the rest 200; one row."""
    responses = _race(client, shop, key=None)
    assert sorted(response.status_code for response in responses) == [200] * (N_RACERS - 1) + [201]
    assert len({response.json()["id"] for response in responses}) == 1
    assert count_rows(engine, "orders") == 1


def test_list_orders_filters_by_status_and_since(
    client: TestClient, shop: ShopHandle, clock: FakeClock
) -> None:
    """GET /v1/orders returns {data, count}, oldest first, filtered by status and change time."""
    ids = []
    for index in range(3):
        ids.append(post_order(client, shop, external_id=f"L-{index}").json()["id"])
        clock.advance(60)
    client.post(f"/v1/orders/{ids[0]}/cancel", headers=shop.headers)

    every = client.get("/v1/orders", headers=shop.headers).json()
    assert every["count"] == 3
    assert [order["id"] for order in every["data"]] == ids
    pending = client.get("/v1/orders", params={"status": "pending"}, headers=shop.headers).json()
    assert [order["id"] for order in pending["data"]] == ids[1:]
    since = (START + timedelta(seconds=120)).isoformat()
    changed = client.get("/v1/orders", params={"since": since}, headers=shop.headers).json()
    assert {order["id"] for order in changed["data"]} == {ids[0], ids[2]}
    page = client.get("/v1/orders", params={"skip": 1, "limit": 1}, headers=shop.headers).json()
    assert (page["count"], [order["id"] for order in page["data"]]) == (3, [ids[1]])


def test_cancel_records_an_event(client: TestClient, shop: ShopHandle, clock: FakeClock) -> None:
    """Cancelling a pending order: status cancelled, history placed then cancelled with reason."""
    order = post_order(client, shop).json()
    clock.advance(90)
    response = client.post(
        f"/v1/orders/{order['id']}/cancel", json={"reason": "customer called"}, headers=shop.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    again = client.post(f"/v1/orders/{order['id']}/cancel", headers=shop.headers)
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")

    events = client.get(f"/v1/orders/{order['id']}/events", headers=shop.headers).json()
    assert events["count"] == 2
    assert [(e["kind"], e["status"], e["note"]) for e in events["data"]] == [
        ("placed", "pending", None),
        ("cancelled", "cancelled", "customer called"),
    ]
    assert at(events["data"][1]["at"]) - at(events["data"][0]["at"]) == timedelta(seconds=90)


@pytest.mark.parametrize("status", ["delivered", "failed"])
def test_cancel_closed_order_is_409(
    client: TestClient, shop: ShopHandle, engine: Engine, status: str
) -> None:
    """A delivered or failed order cannot be cancelled: 409 order_not_cancellable."""
    order = post_order(client, shop).json()
    with engine.begin() as connection:
        connection.execute(text("UPDATE orders SET status = :status"), {"status": status})
    response = client.post(f"/v1/orders/{order['id']}/cancel", headers=shop.headers)
    assert_error(response, 409, "order_not_cancellable")


def test_missing_order_is_404(client: TestClient, shop: ShopHandle) -> None:
    """Unknown order ids get 404 not_found on every order route."""
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(client.get(f"/v1/orders/{missing}", headers=shop.headers), 404, "not_found")
    assert_error(client.post(f"/v1/orders/{missing}/cancel", headers=shop.headers), 404)
    assert_error(client.get(f"/v1/orders/{missing}/events", headers=shop.headers), 404)


def test_ids_are_time_ordered_uuid7(client: TestClient, shop: ShopHandle) -> None:
    """Shops and orders get UUIDv7 ids (``api.ids``): an order made later has no earlier
    millisecond in its id."""
    first, second = (post_order(client, shop).json() for _ in range(2))
    ids = [uuid.UUID(shop.id), uuid.UUID(first["id"]), uuid.UUID(second["id"])]
    assert [one.version for one in ids] == [7, 7, 7]
    assert ids[1].int >> 80 <= ids[2].int >> 80
