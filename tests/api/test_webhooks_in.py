"""Tests of inbound webhooks (api/inbound.py, api/routes/webhooks.py, webhook secrets):
signatures, deduplication, out-of-order events and secret rotation."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

import api.key_cache
from api.inbound import purge_inbound_events
from api.models import InboundOrderData, OrderCreate
from api.signing import signature_header
from tests.api.conftest import Factory
from tests.api.factories import (
    ADMIN,
    INSIDE_LAT,
    INSIDE_LON,
    OUTSIDE_LAT,
    START,
    FakeClock,
    ShopHandle,
    add_webhook_secret,
    assert_error,
    count_rows,
    inbound_event,
    order_body,
    post_signed,
)

N_RACERS = 8
T0 = int(START.timestamp())


@pytest.fixture
def secret(client: TestClient, shop: ShopHandle) -> str:
    return add_webhook_secret(client, shop)


def stored(engine: Engine) -> tuple[int, int]:
    """(inbound events, orders) stored."""
    return count_rows(engine, "inbound_events"), count_rows(engine, "orders")


def order_of(client: TestClient, shop: ShopHandle, order_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/orders/{order_id}", headers=shop.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def kinds(client: TestClient, shop: ShopHandle, order_id: str) -> list[str]:
    events = client.get(f"/v1/orders/{order_id}/events", headers=shop.headers).json()
    return [event["kind"] for event in events["data"]]


def test_signed_create_makes_the_order_the_shop_would_post(
    client: TestClient, shop: ShopHandle, secret: str
) -> None:
    """A signed order.created is acknowledged applied and its order equals the one POST
    /v1/orders makes from the same fields with source = the path's source."""
    response = post_signed(client, inbound_event(shop.id), secret, source="meituan")
    assert response.status_code == 200, response.text
    ack = response.json()
    assert (ack["status"], ack["duplicate"], ack["type"]) == ("applied", False, "order.created")
    assert ack["pin"] is not None and len(ack["pin"]) == 4
    via_hook = order_of(client, shop, ack["order_id"])
    posted = client.post(
        "/v1/orders", json=order_body(source="meituan", external_id="A-2"), headers=shop.headers
    ).json()
    ignore = {"id", "external_id", "pin"}
    assert {k: v for k, v in via_hook.items() if k not in ignore} == {
        k: v for k, v in posted.items() if k not in ignore
    }
    assert via_hook["source"] == "meituan"
    assert kinds(client, shop, ack["order_id"]) == ["placed"]


@pytest.mark.parametrize(
    "case", ["tampered", "wrong_secret", "expired", "future", "missing", "malformed", "no_v1"]
)
def test_bad_signatures_are_401_and_store_nothing(
    client: TestClient, shop: ShopHandle, secret: str, engine: Engine, case: str
) -> None:
    """A tampered body, another secret, a timestamp over 300 s off, a missing or malformed
    header: 401 invalid_signature and no row written."""
    event = inbound_event(shop.id)
    body = json.dumps(event).encode()
    signed_at = T0
    key = secret
    if case == "wrong_secret":
        key = "whsec_" + "0" * 64
    elif case == "expired":
        signed_at = T0 - 301
    elif case == "future":
        signed_at = T0 + 301
    header = signature_header([key], signed_at, body)
    if case == "tampered":
        body = body.replace(b'"size_bags": 2', b'"size_bags": 9')
        assert b'"size_bags": 9' in body
    headers = {"Content-Type": "application/json", "Quarterhour-Signature": header}
    if case == "missing":
        del headers["Quarterhour-Signature"]
    elif case == "malformed":
        headers["Quarterhour-Signature"] = "sha256=" + header
    elif case == "no_v1":
        headers["Quarterhour-Signature"] = f"t={T0}"
    response = client.post("/v1/webhooks/meituan", content=body, headers=headers)
    assert_error(response, 401, "invalid_signature")
    assert stored(engine) == (0, 0)


def test_timestamps_within_tolerance_are_accepted(
    client: TestClient, shop: ShopHandle, secret: str
) -> None:
    """A signature made 300 s before or after the service's clock still verifies."""
    for n, offset in enumerate((-300, 300)):
        event = inbound_event(shop.id, event_id=f"evt_{n}", external_id=f"T-{n}")
        response = post_signed(client, event, secret, at=START + timedelta(seconds=offset))
        assert response.status_code == 200, response.text


def test_unknown_shop_and_other_shops_secret_look_alike(
    client: TestClient, make_shop: Factory, engine: Engine
) -> None:
    """An event naming an unknown shop, a malformed shop id, no shop id, or shop B while
    signed with shop A's secret: the same 401 as a bad signature, nothing stored."""
    shop_a, shop_b = make_shop(), make_shop(name="Fruit corner")
    secret_a = add_webhook_secret(client, shop_a)
    messages = set()
    for shop_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid", shop_b.id):
        response = post_signed(client, inbound_event(shop_id), secret_a)
        messages.add(assert_error(response, 401, "invalid_signature")["message"])
    no_shop = inbound_event(shop_a.id)
    del no_shop["shop_id"]
    messages.add(assert_error(post_signed(client, no_shop, secret_a), 401)["message"])
    assert len(messages) == 1
    assert stored(engine) == (0, 0)


def test_a_shop_without_secrets_takes_no_events(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """Until the shop has a webhook secret every event is 401."""
    response = post_signed(client, inbound_event(shop.id), "whsec_guess-guess-guess")
    assert_error(response, 401, "invalid_signature")
    assert stored(engine) == (0, 0)


def test_authentic_but_invalid_events_are_422_and_store_nothing(
    client: TestClient, shop: ShopHandle, secret: str, engine: Engine
) -> None:
    """Signed events with an unknown type, a missing field, extra fields, NaN or a drop-off
    outside the circle: 422 naming the problem, nothing stored."""
    bad_type = {**inbound_event(shop.id), "type": "order.exploded"}
    missing = inbound_event(shop.id)
    del missing["data"]["dropoff_lat"]
    extra = inbound_event(shop.id)
    extra["data"]["source"] = "pos"
    outside = inbound_event(shop.id, dropoff_lat=OUTSIDE_LAT)
    for event, code in (
        (bad_type, "validation_error"),
        (missing, "validation_error"),
        (extra, "validation_error"),
        (outside, "outside_service_area"),
    ):
        assert_error(post_signed(client, event, secret), 422, code)
    nan = json.dumps(inbound_event(shop.id)).replace(
        f'"dropoff_lat": {INSIDE_LAT}', '"dropoff_lat": NaN'
    )
    assert "NaN" in nan
    assert_error(post_signed(client, None, secret, raw=nan.encode()), 422)
    assert stored(engine) == (0, 0)


def test_oversized_body_is_413(client: TestClient, shop: ShopHandle, secret: str) -> None:
    """A body over the size limit is refused before it is read (413), even when signed."""
    event = inbound_event(shop.id, address="x" * 70_000)
    assert_error(post_signed(client, event, secret), 413, "payload_too_large")


def test_duplicate_deliveries_have_one_effect(
    client: TestClient, shop: ShopHandle, secret: str, engine: Engine
) -> None:
    """The same event id delivered three times: one order, one stored event, the later
    answers marked duplicate with the first outcome and no PIN."""
    event = inbound_event(shop.id)
    acks = [post_signed(client, event, secret).json() for _ in range(3)]
    assert [ack["duplicate"] for ack in acks] == [False, True, True]
    assert {ack["order_id"] for ack in acks} == {acks[0]["order_id"]}
    assert [ack["pin"] is None for ack in acks] == [False, True, True]
    assert stored(engine) == (1, 1)


def test_the_same_order_under_two_event_ids_is_one_order(
    client: TestClient, shop: ShopHandle, secret: str, engine: Engine
) -> None:
    """Two order.created events for one (source, external_id): one order, the second ignored."""
    first = post_signed(client, inbound_event(shop.id, event_id="evt_a"), secret).json()
    second = post_signed(client, inbound_event(shop.id, event_id="evt_b", size_bags=5), secret)
    assert second.json()["status"] == "ignored"
    assert second.json()["order_id"] == first["order_id"]
    assert order_of(client, shop, first["order_id"])["size_bags"] == 2
    assert stored(engine) == (2, 1)


def test_a_cancel_before_its_create_makes_a_cancelled_order(
    client: TestClient, shop: ShopHandle, secret: str, engine: Engine
) -> None:
    """order.cancelled first is deferred; its order.created then creates the order cancelled,
    and redeliveries of either change nothing."""
    cancel = inbound_event(shop.id, "order.cancelled", "evt_c", T0 + 60, reason="changed mind")
    create = inbound_event(shop.id, "order.created", "evt_o", T0)
    deferred = post_signed(client, cancel, secret).json()
    assert (deferred["status"], deferred["order_id"]) == ("deferred", None)
    assert stored(engine) == (1, 0)
    created = post_signed(client, create, secret).json()
    assert created["status"] == "applied"
    order = order_of(client, shop, created["order_id"])
    assert order["status"] == "cancelled"
    assert kinds(client, shop, order["id"]) == ["placed", "cancelled"]
    for event in (cancel, create):
        again = post_signed(client, event, secret).json()
        assert again["duplicate"] is True
    assert order_of(client, shop, order["id"]) == order
    assert stored(engine) == (2, 1)
    assert count_rows(engine, "inbound_events", "status = 'applied'") == 2


def test_updates_apply_in_created_order_whatever_the_arrival(
    client: TestClient, shop: ShopHandle, secret: str
) -> None:
    """An update before its create is applied when the create comes; an older update arriving
    after a newer one is ignored as stale."""
    newer = inbound_event(shop.id, "order.updated", "evt_u2", T0 + 120, address="newer")
    older = inbound_event(shop.id, "order.updated", "evt_u1", T0 + 60, address="older")
    create = inbound_event(shop.id, "order.created", "evt_o", T0, address="first")
    assert post_signed(client, newer, secret).json()["status"] == "deferred"
    order_id = post_signed(client, create, secret).json()["order_id"]
    assert order_of(client, shop, order_id)["address"] == "newer"
    stale = post_signed(client, older, secret).json()
    assert stale["status"] == "ignored" and "stale" in stale["note"]
    assert order_of(client, shop, order_id)["address"] == "newer"
    assert kinds(client, shop, order_id) == ["placed", "updated"]


def test_an_update_changes_a_pending_order_only(
    client: TestClient, shop: ShopHandle, secret: str, engine: Engine, clock: FakeClock
) -> None:
    """An update moves a pending order's drop-off and size; outside the circle it is 422 and
    stored nowhere; once the order is cancelled further updates are ignored."""
    order_id = post_signed(client, inbound_event(shop.id), secret).json()["order_id"]
    moved = inbound_event(
        shop.id, "order.updated", "evt_u1", T0 + 1, dropoff_lat=INSIDE_LAT + 0.001, size_bags=3
    )
    assert post_signed(client, moved, secret).json()["status"] == "applied"
    order = order_of(client, shop, order_id)
    assert (order["dropoff_lat"], order["dropoff_lon"], order["size_bags"]) == (
        INSIDE_LAT + 0.001,
        INSIDE_LON,
        3,
    )
    outside = inbound_event(shop.id, "order.updated", "evt_u2", T0 + 2, dropoff_lat=OUTSIDE_LAT)
    assert_error(post_signed(client, outside, secret), 422, "outside_service_area")
    assert count_rows(engine, "inbound_events") == 2
    client.post(f"/v1/orders/{order_id}/cancel", headers=shop.headers)
    late = inbound_event(shop.id, "order.updated", "evt_u3", T0 + 3, size_bags=1)
    assert post_signed(client, late, secret).json()["status"] == "ignored"
    assert order_of(client, shop, order_id)["size_bags"] == 3


def test_an_inbound_cancel_equals_the_cancel_call(
    client: TestClient, shop: ShopHandle, secret: str
) -> None:
    """order.cancelled on a pending order cancels it once; again under a new id it is applied
    without a second cancelled event."""
    order_id = post_signed(client, inbound_event(shop.id), secret).json()["order_id"]
    for n in range(2):
        cancel = inbound_event(shop.id, "order.cancelled", f"evt_c{n}", T0 + 5)
        assert post_signed(client, cancel, secret).json()["status"] == "applied"
    assert order_of(client, shop, order_id)["status"] == "cancelled"
    assert kinds(client, shop, order_id) == ["placed", "cancelled"]


def test_secret_rotation_keeps_two_valid_then_one(
    client: TestClient, shop: ShopHandle, clock: FakeClock, engine: Engine
) -> None:
    """After a rotation the old and the new secret both verify until the window ends; a third
    secret retires the oldest at once; a retired secret verifies nothing."""
    first = add_webhook_secret(client, shop)
    created = client.post(f"/v1/shops/{shop.id}/webhook-secrets", headers=shop.headers).json()
    second = created["secret"]
    assert created["previous"]["expires_at"] is not None
    for n, key in enumerate((first, second)):
        event = inbound_event(shop.id, event_id=f"evt_{n}", external_id=f"R-{n}")
        assert post_signed(client, event, key).status_code == 200
    third = add_webhook_secret(client, shop, secret="platform-made-secret-0123456789")
    event = inbound_event(shop.id, event_id="evt_x", external_id="R-x")
    assert_error(post_signed(client, event, first), 401)
    assert post_signed(client, event, second).status_code == 200
    listed = client.get(f"/v1/shops/{shop.id}/webhook-secrets", headers=shop.headers).json()
    assert listed["count"] == 3 and all("secret" not in row for row in listed["data"])
    clock.advance(86_400 + 1)
    later = START + timedelta(seconds=86_401)
    event = inbound_event(shop.id, event_id="evt_y", external_id="R-y")
    assert_error(post_signed(client, event, second, at=later), 401)
    assert post_signed(client, event, third, at=later).status_code == 200
    third_id = listed["data"][0]["id"]
    retired = client.delete(f"/v1/shops/{shop.id}/webhook-secrets/{third_id}", headers=ADMIN)
    assert retired.json()["retired_at"] is not None
    event = inbound_event(shop.id, event_id="evt_z", external_id="R-z")
    assert_error(post_signed(client, event, third, at=later), 401)


def test_event_ids_are_kept_seven_days_and_deferred_ones_until_used(
    client: TestClient, shop: ShopHandle, secret: str, engine: Engine
) -> None:
    """Purging after 6 days forgets nothing; after 8 days applied ids go, deferred ones stay."""
    post_signed(client, inbound_event(shop.id), secret)
    cancel = inbound_event(shop.id, "order.cancelled", "evt_c", external_id="other")
    post_signed(client, cancel, secret)
    assert purge_inbound_events(engine, START + timedelta(days=6), 7) == 0
    assert purge_inbound_events(engine, START + timedelta(days=8), 7) == 1
    assert count_rows(engine, "inbound_events", "status = 'deferred'") == 1


def test_concurrent_deliveries_of_one_event_make_one_order(
    app: FastAPI, client: TestClient, shop: ShopHandle, secret: str, engine: Engine
) -> None:
    """The same event and a cancel of its order, each sent by several threads at once: one
    order, cancelled, one row per event id."""
    create = inbound_event(shop.id, event_id="evt_o")
    cancel = inbound_event(shop.id, "order.cancelled", "evt_c", T0 + 1)
    statuses: list[int] = []

    def send(event: dict[str, Any]) -> None:
        with TestClient(app) as racer:
            statuses.append(post_signed(racer, event, secret).status_code)

    threads = [
        threading.Thread(target=send, args=(create if n % 2 else cancel,)) for n in range(N_RACERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * N_RACERS
    assert stored(engine) == (2, 1)
    orders = client.get("/v1/orders", headers=shop.headers).json()
    assert [order["status"] for order in orders["data"]] == ["cancelled"]


def test_inbound_order_data_is_the_order_body_without_source() -> None:
    """data of order.created has exactly the fields of POST /v1/orders but source."""
    assert set(InboundOrderData.model_fields) == set(OrderCreate.model_fields) - {"source"}


def test_openapi_describes_the_inbound_format(app: FastAPI) -> None:
    """The OpenAPI document carries the event body, the signature header and the 401."""
    operation = app.openapi()["paths"]["/v1/webhooks/{source}"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    variants = schema.get("oneOf") or schema.get("anyOf")
    assert variants and all(
        {"id", "type", "created", "shop_id", "data"} <= set(v["properties"]) for v in variants
    )
    assert any(p["name"] == "Quarterhour-Signature" for p in operation["parameters"])
    assert "401" in operation["responses"]
    assert "HMAC-SHA256" in operation["description"]


def test_events_within_the_cache_ttl_read_no_secrets(
    client: TestClient, shop: ShopHandle, secret: str, engine: Engine
) -> None:
    """The shop and its secrets are read once, then come from ``api.key_cache`` while fresh."""
    reads: list[str] = []

    def count_secret_reads(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM webhook_secrets" in statement:
            reads.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", count_secret_reads)
    try:
        for n in range(3):
            event = inbound_event(shop.id, event_id=f"evt_c{n}", external_id=f"C-{n}")
            assert post_signed(client, event, secret).status_code == 200
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", count_secret_reads)
    assert len(reads) <= 1


def test_a_secret_retired_by_another_process_stops_verifying_within_the_ttl(
    client: TestClient,
    shop: ShopHandle,
    secret: str,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change this process did not flush (another process's) is seen once the cached entry
    is older than ``TTL_S``; here the TTL is 0, so at the next event."""
    event = inbound_event(shop.id, event_id="evt_p1", external_id="P-1")
    assert post_signed(client, event, secret).status_code == 200
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE webhook_secrets SET retired_at = created_at"))
    monkeypatch.setattr(api.key_cache, "TTL_S", 0.0)
    event = inbound_event(shop.id, event_id="evt_p2", external_id="P-2")
    assert_error(post_signed(client, event, secret), 401, "invalid_signature")
    assert count_rows(engine, "orders") == 1


@pytest.mark.parametrize("with_key", [False, True])
def test_a_platform_cancel_waiting_for_its_order_applies_when_the_shop_posts_it(
    client: TestClient, shop: ShopHandle, secret: str, engine: Engine, with_key: bool
) -> None:
    """A platform's order.cancelled (and an update) that came before the order wait for it
    however it arrives: the shop posting it to ``POST /v1/orders`` with the platform as its
    ``source`` gets it cancelled at once, as a webhook order.created would, and the answer says
    so; the events are applied. Another order in the same request batch is untouched."""
    moved = {"dropoff_lat": INSIDE_LAT + 0.001}
    update = inbound_event(shop.id, "order.updated", "evt_u", T0 + 30, **moved)
    cancel = inbound_event(shop.id, "order.cancelled", "evt_c", T0 + 60, reason="changed mind")
    for event in (update, cancel):
        assert post_signed(client, event, secret).json()["status"] == "deferred"
    headers = {**shop.headers, **({"Idempotency-Key": "till-1"} if with_key else {})}
    body = order_body(source="meituan")
    response = client.post("/v1/orders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "cancelled"
    assert order["dropoff_lat"] == pytest.approx(INSIDE_LAT + 0.001)
    assert order.pop("pin")  # shown once, as with any new order
    assert order_of(client, shop, order["id"]) == order
    assert kinds(client, shop, order["id"]) == ["placed", "updated", "cancelled"]
    assert count_rows(engine, "inbound_events", "status = 'applied'") == 2
    if with_key:  # the replay answers what the first answer said
        replay = client.post("/v1/orders", json=body, headers=headers).json()
        assert replay.pop("pin") is None and replay == order
    other = client.post("/v1/orders", json=order_body(external_id="A-2"), headers=shop.headers)
    assert other.json()["status"] == "pending"
