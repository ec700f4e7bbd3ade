"""Tests of api/routes/quotes.py: the circle rule as at intake, and the promise of the moment."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests import naive
from tests.api.conftest import Factory
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


def walking_s(lat: float, lon: float) -> int:
    """The walking time from the test shop, by the slow, obviously correct twin of the rule."""
    return naive.travel_s(naive.distance_m((SHOP_LAT, SHOP_LON), (lat, lon)), naive.SPEEDS_MPS[0])


def quote(client: TestClient, shop: ShopHandle, lat: float, lon: float, **extra: int) -> dict:
    response = client.post(
        "/v1/quotes", json={"dropoff_lat": lat, "dropoff_lon": lon, **extra}, headers=shop.headers
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def test_inside_the_circle_gets_a_promise(
    client: TestClient, shop: ShopHandle, clock: FakeClock
) -> None:
    """Inside: the walking time by DESIGN's rule and a promise of now + promise_min."""
    clock.advance(90)
    body = quote(client, shop, INSIDE_LAT, INSIDE_LON, size_bags=3)
    assert body["inside_circle"] is True
    assert body["walk_s"] == walking_s(INSIDE_LAT, INSIDE_LON)
    assert (body["circle_walk_min"], body["promise_min"], body["size_bags"]) == (15, 30, 3)
    quoted_at = datetime.fromisoformat(body["quoted_at"])
    assert quoted_at == START + timedelta(seconds=90)
    assert datetime.fromisoformat(body["promised_at"]) == quoted_at + timedelta(minutes=30)


def test_the_quote_says_load_is_not_counted(client: TestClient, shop: ShopHandle) -> None:
    """The reply states that the promise does not account for current load."""
    body = quote(client, shop, INSIDE_LAT, INSIDE_LON)
    assert body["accounts_for_load"] is False
    assert "load" in body["note"] or "does not" in body["note"]


def test_outside_the_circle_gets_no_promise(client: TestClient, shop: ShopHandle) -> None:
    """Outside: inside_circle false, the walking time, and no promised time."""
    body = quote(client, shop, OUTSIDE_LAT, OUTSIDE_LON)
    assert body["inside_circle"] is False
    assert body["walk_s"] == walking_s(OUTSIDE_LAT, OUTSIDE_LON) > 15 * 60
    assert body["promised_at"] is None


def test_quote_agrees_with_intake(client: TestClient, shop: ShopHandle) -> None:
    """What the quote calls inside is accepted at intake, and outside is refused, same promise."""
    body = quote(client, shop, INSIDE_LAT, INSIDE_LON)
    order = client.post("/v1/orders", json=order_body(), headers=shop.headers).json()
    assert order["promised_at"] == body["promised_at"]
    refused = client.post(
        "/v1/orders",
        json=order_body(external_id="A-2", dropoff_lat=OUTSIDE_LAT, dropoff_lon=OUTSIDE_LON),
        headers=shop.headers,
    )
    assert_error(refused, 422, "outside_service_area")


def test_circle_follows_the_shop(client: TestClient, make_shop: Factory) -> None:
    """A shop with a wider circle serves the drop-off another shop does not."""
    wide = make_shop(circle_walk_min=60, promise_min=45)
    body = quote(client, wide, OUTSIDE_LAT, OUTSIDE_LON)
    assert body["inside_circle"] is True
    assert body["promise_min"] == 45


def test_quote_stores_nothing_and_needs_a_key(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """A quote writes no row; without a key it is 401."""
    quote(client, shop, INSIDE_LAT, INSIDE_LON)
    assert count_rows(engine, "orders") == 0
    body = {"dropoff_lat": INSIDE_LAT, "dropoff_lon": INSIDE_LON}
    assert_error(client.post("/v1/quotes", json=body), 401, "unauthorized")
