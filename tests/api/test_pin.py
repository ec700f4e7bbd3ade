"""Tests of the delivery PIN (api/security.py, order intake and delivery): made or taken at
intake, shown once, stored only hashed, checked at delivery, required if the shop says so."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.security import generate_pin, hash_pin, verify_pin
from tests.api.conftest import Factory
from tests.api.factories import (
    ADMIN,
    FakeClock,
    ShopHandle,
    assert_error,
    count_rows,
    order_body,
    shop_body,
)
from tests.api.test_dispatch import (
    dispatch_until_assigned,
    event_kinds,
    get_order,
    on_duty_rider,
    post_order,
)


def picked_up_order(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock, **overrides: Any
) -> dict[str, Any]:
    """A new order of ``shop``, committed to a rider and picked up; its intake reply."""
    on_duty_rider(client, shop)
    order = post_order(client, shop, **overrides)
    trip_id = dispatch_until_assigned(client, shop, engine, clock, order)["trip_id"]
    picked = client.post(f"/v1/trips/{trip_id}/pickup", headers=shop.headers)
    assert picked.status_code == 200, picked.text
    return order


def deliver(client: TestClient, shop: ShopHandle, order: dict[str, Any], pin: Any = None) -> Any:
    body = None if pin is None else {"pin": pin}
    return client.post(f"/v1/orders/{order['id']}/deliver", json=body, headers=shop.headers)


def stored_text(engine: Engine) -> str:
    """Every stored order, event and idempotency record as one text, to look for a PIN in."""
    with engine.connect() as connection:
        rows = [
            *connection.execute(text("SELECT * FROM orders")).all(),
            *connection.execute(text("SELECT * FROM order_events")).all(),
            *connection.execute(text("SELECT * FROM idempotency_records")).all(),
        ]
    return " ".join(str(value) for row in rows for value in row)


def test_pin_is_made_shown_once_and_stored_hashed(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Intake makes a 4-digit PIN, returns it in the 201 reply only, and stores no clear copy."""
    headers = {**shop.headers, "Idempotency-Key": "pin-1"}
    body = {"source": "pos", "external_id": "P-1", "dropoff_lat": 34.6001, "dropoff_lon": 119.225}
    created = client.post("/v1/orders", json=body, headers=headers)
    pin = created.json()["pin"]
    assert created.status_code == 201 and len(pin) == 4 and pin.isdigit()
    assert client.post("/v1/orders", json=body, headers=headers).json()["pin"] is None
    read = client.get(f"/v1/orders/{created.json()['id']}", headers=shop.headers).json()
    assert "pin" not in read and "pin_hash" not in read
    assert count_rows(engine, "orders", "pin_hash LIKE 'sha256$%'") == 1
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT pin_hash FROM orders")).scalar_one()
    assert verify_pin(pin, stored)


def test_wrong_pin_is_422_and_the_order_stays(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A wrong PIN: 422 wrong_pin, still picked up, no delivered event; the right one delivers."""
    order = picked_up_order(client, shop, engine, clock)
    wrong = "0000" if order["pin"] != "0000" else "1111"
    assert_error(deliver(client, shop, order, wrong), 422, "wrong_pin")
    assert_error(deliver(client, shop, order, order["pin"] + "0"), 422, "wrong_pin")
    assert get_order(client, shop, order)["status"] == "picked_up"
    assert "delivered" not in event_kinds(client, shop, order)
    delivered = deliver(client, shop, order, order["pin"])
    assert (delivered.status_code, delivered.json()["status"]) == (200, "delivered")
    assert_error(deliver(client, shop, order, wrong), 422, "wrong_pin")
    assert deliver(client, shop, order, order["pin"]).json() == delivered.json()


def test_shop_given_pin_is_kept(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A PIN given at intake (4 to 8 digits) is the one echoed and checked, and is nowhere in
    the stored orders, events or idempotency records."""
    headers = {**shop.headers, "Idempotency-Key": "given-pin"}
    on_duty_rider(client, shop)
    created = client.post("/v1/orders", json=order_body(pin="07391562"), headers=headers)
    order = created.json()
    assert (created.status_code, order["pin"]) == (201, "07391562")
    trip_id = dispatch_until_assigned(client, shop, engine, clock, order)["trip_id"]
    client.post(f"/v1/trips/{trip_id}/pickup", headers=shop.headers)
    assert_error(deliver(client, shop, order, "7391562"), 422, "wrong_pin")
    assert deliver(client, shop, order, "07391562").json()["status"] == "delivered"
    assert "7391562" not in stored_text(engine)


def test_no_pin_delivers_unless_the_shop_requires_one(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """Without a PIN: delivered at a shop that does not require one; 422 pin_required (order
    unchanged) at one that does, which then accepts the right PIN."""
    relaxed = make_shop()
    order = picked_up_order(client, relaxed, engine, clock)
    assert deliver(client, relaxed, order).json()["status"] == "delivered"

    strict = make_shop(name="Pharmacy", require_pin=True)
    assert strict.body["shop"]["require_pin"] is True
    assert client.get(f"/v1/shops/{strict.id}", headers=strict.headers).json()["require_pin"]
    order = picked_up_order(client, strict, engine, clock)
    assert_error(deliver(client, strict, order), 422, "pin_required")
    assert_error(
        client.post(f"/v1/orders/{order['id']}/deliver", json={}, headers=strict.headers),
        422,
        "pin_required",
    )
    assert get_order(client, strict, order)["status"] == "picked_up"
    assert deliver(client, strict, order, order["pin"]).json()["status"] == "delivered"


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4", " 1234", "١٢٣٤", 1234, None, True])
def test_bad_pin_at_intake_is_422(client: TestClient, shop: ShopHandle, pin: Any) -> None:
    """A PIN that is not 4 to 8 ASCII digits in a string is refused at intake, nothing stored."""
    body = {"source": "pos", "external_id": "P-1", "dropoff_lat": 34.6001, "dropoff_lon": 119.225}
    response = client.post("/v1/orders", json={**body, "pin": pin}, headers=shop.headers)
    if pin is None:  # null is "no PIN given": the service makes one
        assert response.status_code == 201
        return
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("value", ["yes", 1, "true", None])
def test_require_pin_must_be_a_boolean(client: TestClient, value: Any) -> None:
    """require_pin at shop creation takes true or false only."""
    response = client.post("/v1/shops", json=shop_body(require_pin=value), headers=ADMIN)
    assert_error(response, 422, "validation_error")


def test_hash_pin_is_salted_and_verifies() -> None:
    """Two hashes of one PIN differ; each verifies that PIN and no other; no hash: no match."""
    pin = generate_pin()
    first, second = hash_pin(pin), hash_pin(pin)
    assert first != second
    assert verify_pin(pin, first) and verify_pin(pin, second)
    assert not verify_pin(f"{(int(pin) + 1) % 10_000:04d}", first)
    assert not verify_pin(pin, None)
    assert not verify_pin("١٢٣٤", hash_pin("1234"))
