"""Tests of api/fast.py: each hot route's fast path answers exactly what FastAPI's handler
answers (status, headers, body bytes), and hands every request it does not serve to FastAPI."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

import api.fast
from api.errors import AppError
from api.fast import QuarterhourApp
from api.signing import signature_header
from api.trip_read import read_rider_trip, read_trip
from api.trips import active_trip, trip_public
from tests.api.conftest import Factory
from tests.api.factories import (
    START,
    FakeClock,
    ShopHandle,
    add_webhook_secret,
    inbound_event,
    post_signed,
)
from tests.api.test_dispatch import dispatch_until_assigned, on_duty_rider, post_order

SIGNED_AT = int(START.timestamp())  # the fake clock's start


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths of the requests a fast path answered (not handed to FastAPI)."""
    paths: list[str] = []
    original = api.fast.reply

    def recording_reply(route: Any, value: Any) -> Any:
        paths.append(route.path)
        return original(route, value)

    monkeypatch.setattr(api.fast, "reply", recording_reply)
    yield paths


def both(app: FastAPI, client: TestClient, method: str, url: str, **kwargs: Any) -> Any:
    """The request sent twice, on the fast path and then on FastAPI's: the two answers are
    the same bytes; the fast path's."""
    assert isinstance(app, QuarterhourApp)
    fast = client.request(method, url, **kwargs)
    app.fast_paths_enabled = False
    try:
        slow = client.request(method, url, **kwargs)
    finally:
        app.fast_paths_enabled = True
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    assert fast.headers.items() == slow.headers.items()
    assert fast.content == slow.content
    return fast


def test_reads_answer_as_fastapi(
    app: FastAPI,
    client: TestClient,
    make_shop: Factory,
    shop: ShopHandle,
    engine: Engine,
    clock: FakeClock,
    served: list[str],
) -> None:
    """GET order and GET rider trip: found, another shop's (404), unknown (404), a bad key
    (401), no trip (404 no_trip): the same answer on both paths."""
    other = make_shop(name="Other")
    rider = on_duty_rider(client, shop)
    order = post_order(client, shop)
    trip_url = f"/v1/riders/{rider['id']}/trip"
    assert both(app, client, "GET", trip_url, headers=shop.headers).status_code == 404
    dispatch_until_assigned(client, shop, engine, clock, order)
    order_url = f"/v1/orders/{order['id']}"
    assert both(app, client, "GET", order_url, headers=shop.headers).json()["status"] == "assigned"
    assert (
        both(app, client, "GET", trip_url, headers=shop.headers).json()["rider_id"] == rider["id"]
    )
    assert both(app, client, "GET", order_url, headers=other.headers).status_code == 404
    assert both(app, client, "GET", trip_url, headers=other.headers).status_code == 404
    unknown = f"/v1/orders/{uuid.uuid4()}"
    assert both(app, client, "GET", unknown, headers=shop.headers).status_code == 404
    bad_key = {"Authorization": "Bearer nope"}
    assert both(app, client, "GET", order_url, headers=bad_key).status_code == 401
    assert both(app, client, "GET", order_url).status_code == 401
    assert "/orders/{order_id}" in served
    assert "/riders/{rider_id}/trip" in served


def test_the_core_trip_read_is_the_orm_one(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """``api.trip_read``'s Core reads of a rider's trip (by rider, by id) equal the ORM's
    ``trip_public`` of its ``active_trip``, and a shop the rider does not serve is 404."""
    rider = on_duty_rider(client, shop)
    orders = [post_order(client, shop, external_id=f"T-{n}") for n in range(2)]
    for order in orders:
        dispatch_until_assigned(client, shop, engine, clock, order)
    rider_id, shop_id = uuid.UUID(rider["id"]), uuid.UUID(shop.id)
    with Session(engine) as session:
        trip = active_trip(session, rider_id)
        assert trip is not None
        expected = trip_public(session, trip)
        assert read_rider_trip(session.connection(), shop_id, rider_id) == expected
        assert read_trip(session.connection(), trip.id) == expected
        with pytest.raises(AppError) as no_trip:
            read_rider_trip(session.connection(), uuid.uuid4(), rider_id)
        assert no_trip.value.code == "not_found"
    assert len(expected.stops) >= 1


def test_rider_writes_answer_as_fastapi(
    app: FastAPI,
    client: TestClient,
    make_shop: Factory,
    shop: ShopHandle,
    engine: Engine,
    clock: FakeClock,
    served: list[str],
) -> None:
    """Location, pickup and deliver, the first time on the fast path (its answer is then what a
    read shows) and again on both paths (nothing changes the second time), and their errors."""
    other = make_shop(name="Other")
    rider = on_duty_rider(client, shop)
    order = post_order(client, shop)
    location_url = f"/v1/riders/{rider['id']}/location"
    position = {"lat": 34.5966, "lon": 119.2216, "at": "2026-11-29T09:00:00+08:00"}
    first = client.post(location_url, json=position, headers=shop.headers)
    assert first.status_code == 200, first.text
    again = both(app, client, "POST", location_url, json=position, headers=shop.headers)
    assert again.content == first.content
    ahead = {**position, "at": "2026-11-29T10:00:00+08:00"}
    assert (
        both(app, client, "POST", location_url, json=ahead, headers=shop.headers).status_code == 422
    )
    assert (
        both(app, client, "POST", location_url, json=position, headers=other.headers).status_code
        == 404
    )

    trip_id = dispatch_until_assigned(client, shop, engine, clock, order)["trip_id"]
    deliver_url = f"/v1/orders/{order['id']}/deliver"
    deliver = {"pin": order["pin"]}
    early = both(app, client, "POST", deliver_url, json=deliver, headers=shop.headers)
    assert early.status_code == 409
    clock.advance(120)
    pickup_url = f"/v1/trips/{trip_id}/pickup"
    picked = client.post(pickup_url, headers=shop.headers)
    assert picked.status_code == 200, picked.text
    assert both(app, client, "POST", pickup_url, headers=shop.headers).content == picked.content
    assert both(app, client, "POST", pickup_url, headers=other.headers).status_code == 404
    wrong_pin = {"pin": "0000" if order["pin"] != "0000" else "1111"}
    assert (
        both(app, client, "POST", deliver_url, json=wrong_pin, headers=shop.headers).status_code
        == 422
    )
    clock.advance(300)
    delivered = client.post(deliver_url, json=deliver, headers=shop.headers)
    assert delivered.status_code == 200, delivered.text
    read = both(app, client, "GET", f"/v1/orders/{order['id']}", headers=shop.headers)
    assert delivered.content == read.content
    assert (
        both(app, client, "POST", deliver_url, json=deliver, headers=shop.headers).content
        == delivered.content
    )
    assert both(app, client, "POST", pickup_url, headers=shop.headers).status_code == 409
    for path in (
        "/riders/{rider_id}/location",
        "/trips/{trip_id}/pickup",
        "/orders/{order_id}/deliver",
    ):
        assert path in served


def test_webhooks_answer_as_fastapi(
    app: FastAPI, client: TestClient, shop: ShopHandle, served: list[str]
) -> None:
    """A platform event the first time on the fast path, its duplicate on both paths (the
    first outcome again), a bad signature and an invalid event on both paths."""
    secret = add_webhook_secret(client, shop)
    event = inbound_event(shop.id, event_id="evt_fast")
    first = post_signed(client, event, secret)
    assert first.status_code == 200, first.text
    body = json.dumps(event).encode()
    signed = {
        "Content-Type": "application/json",
        "Quarterhour-Signature": signature_header([secret], SIGNED_AT, body),
    }
    duplicate = both(app, client, "POST", "/v1/webhooks/meituan", content=body, headers=signed)
    assert duplicate.json()["duplicate"] is True
    assert served.count("/webhooks/{source}") == 2
    wrong = {
        **signed,
        "Quarterhour-Signature": signature_header(["nope"], SIGNED_AT, body),
    }
    assert (
        both(app, client, "POST", "/v1/webhooks/meituan", content=body, headers=wrong).status_code
        == 401
    )
    invalid = json.dumps({**event, "id": "evt_bad", "type": "order.exploded"}).encode()
    signed_invalid = {
        **signed,
        "Quarterhour-Signature": signature_header([secret], SIGNED_AT, invalid),
    }
    answer = both(
        app, client, "POST", "/v1/webhooks/meituan", content=invalid, headers=signed_invalid
    )
    assert answer.status_code == 422


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/v1/orders", {"content": b"{", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/v1/orders", {"content": b"{}", "headers": {"Content-Type": "text/plain"}}),
        ("POST", "/v1/orders", {"json": {"source": "pos"}}),
        ("POST", "/v1/orders", {"json": [1, 2]}),
        ("POST", "/v1/orders", {"json": {}, "headers": {"Idempotency-Key": "a b"}}),
        (
            "POST",
            "/v1/orders",
            {"content": b"x" * 70_000, "headers": {"Content-Type": "application/json"}},
        ),
        ("GET", "/v1/orders/NOT-A-UUID", {}),
        ("GET", f"/v1/orders/{str(uuid.uuid4()).upper()}", {}),
        ("GET", f"/v1/orders/{uuid.uuid4().hex}", {}),
        ("POST", f"/v1/riders/{uuid.uuid4()}/location", {"json": {"lat": 91, "lon": 0}}),
        ("POST", f"/v1/riders/{uuid.uuid4()}/location", {"json": {"lat": 1, "lon": 0, "x": 1}}),
        ("POST", f"/v1/orders/{uuid.uuid4()}/deliver", {"json": {"pin": "12"}}),
        ("POST", f"/v1/orders/{uuid.uuid4()}/deliver", {}),
        ("POST", f"/v1/trips/{uuid.uuid4()}/pickup", {}),
        ("POST", "/v1/webhooks/Bad-Source", {"content": b"{}"}),
        ("POST", "/v1/webhooks/meituan", {"content": b"{}"}),
    ],
)
def test_malformed_requests_answer_as_fastapi(
    app: FastAPI, client: TestClient, shop: ShopHandle, method: str, path: str, kwargs: Any
) -> None:
    """Malformed requests of the hot routes (bad JSON, content type, body, key, id, source,
    size) get FastAPI's answer, byte for byte."""
    headers = {**shop.headers, **kwargs.pop("headers", {})}
    answer = both(app, client, method, path, headers=headers, **kwargs)
    assert 400 <= answer.status_code < 500
    assert set(answer.json()) == {"code", "message"}
