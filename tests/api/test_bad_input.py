"""Bad input on every route gets a 4xx with {code, message}, never a 500.

No bad request changes a row, so the tests of this module share one app per database (and the
last test checks that nothing was written)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import create_shop
from tests.api.factories import (
    ADMIN,
    ShopHandle,
    assert_error,
    count_rows,
    order_body,
    shop_body,
)

JSON = {"Content-Type": "application/json"}
MISSING = "00000000-0000-4000-8000-000000000000"
QUOTE = {"dropoff_lat": 34.6001, "dropoff_lon": 119.2250}


def raw_order(**fields: str) -> bytes:
    """An order body as raw JSON text, with some values given as literal JSON tokens."""
    body = {key: json.dumps(value) for key, value in order_body().items()}
    body.update(fields)
    return ("{" + ", ".join(f'"{key}": {value}' for key, value in body.items()) + "}").encode()


def case(
    case_id: str,
    method: str,
    path: str,
    status: int = 422,
    code: str = "validation_error",
    **request: Any,
) -> Any:
    """One bad request: ``request`` holds the keyword arguments of ``TestClient.request``."""
    return pytest.param(method, path, request, status, code, id=case_id)


def bad_order(case_id: str, status: int = 422, code: str = "validation_error", **body: Any) -> Any:
    """A POST /v1/orders case whose JSON body is a good order with ``body`` changed."""
    return case(case_id, "POST", "/v1/orders", status, code, json=order_body(**body))


def raw(case_id: str, content: bytes, status: int = 422, code: str = "validation_error") -> Any:
    """A POST /v1/orders case with a raw body."""
    return case(case_id, "POST", "/v1/orders", status, code, content=content)


ORDER_CASES = [
    raw("nan-lat", raw_order(dropoff_lat="NaN")),
    raw("inf-lon", raw_order(dropoff_lon="Infinity")),
    raw("minus-inf-lat", raw_order(dropoff_lat="-Infinity")),
    bad_order("lat-91", dropoff_lat=91),
    bad_order("lon-minus-181", dropoff_lon=-181),
    bad_order("lat-text", dropoff_lat="north"),
    bad_order("size-0", size_bags=0),
    bad_order("size-huge", size_bags=10**30),
    bad_order("long-external-id", external_id="e" * 129),
    bad_order("long-address", address="a" * 257),
    bad_order("bad-source", source="Meituan App"),
    bad_order("unknown-field", tip=3),
    bad_order("nul-char", address="a\x00b"),
    raw("lone-surrogate", raw_order(address='"\\ud800"')),
    bad_order("year-1-ready", ready_at="0001-01-01T00:00:00+01:00"),
    raw("invalid-json", b'{"source": ', code="invalid_json"),
    raw("array-body", b"[]"),
    raw("null-body", b"null"),
    raw("empty-body", b""),
    raw("deep-nesting", b"[" * 60_000, status=400, code="bad_request"),
    case("text-plain", "POST", "/v1/orders", content=b"hi", headers={"Content-Type": "text/plain"}),
    case(
        "long-idempotency-key",
        "POST",
        "/v1/orders",
        json=order_body(),
        headers={"Idempotency-Key": "k" * 256},
    ),
    case(
        "spaced-idempotency-key",
        "POST",
        "/v1/orders",
        json=order_body(),
        headers={"Idempotency-Key": "a b"},
    ),
    case(
        "bad-content-length",
        "POST",
        "/v1/orders",
        400,
        "bad_request",
        content=b"{}",
        headers={"Content-Length": "x"},
    ),
    case("bad-order-id", "GET", "/v1/orders/not-a-uuid"),
    case("bad-status", "GET", "/v1/orders?status=lost"),
    case("limit-0", "GET", "/v1/orders?limit=0"),
    case("since-text", "GET", "/v1/orders?since=yesterday"),
    case("since-naive", "GET", "/v1/orders?since=2026-11-29T09:00:00"),
    case("since-year-1", "GET", "/v1/orders?since=0001-01-01T00:00:00%2B01:00"),
    case("cancel-unknown-field", "POST", f"/v1/orders/{MISSING}/cancel", json={"why": "x"}),
    case("cancel-long-reason", "POST", f"/v1/orders/{MISSING}/cancel", json={"reason": "r" * 201}),
    case("bad-shop-id", "GET", "/v1/shops/1"),
    case("quote-nan-lat", "POST", "/v1/quotes", content=b'{"dropoff_lat": NaN, "dropoff_lon": 1}'),
    case("quote-lat-91", "POST", "/v1/quotes", json={"dropoff_lat": 91, "dropoff_lon": 119.2}),
    case("quote-missing-lon", "POST", "/v1/quotes", json={"dropoff_lat": 34.6}),
    case("quote-size-0", "POST", "/v1/quotes", json={**QUOTE, "size_bags": 0}),
    case("quote-unknown-field", "POST", "/v1/quotes", json={**QUOTE, "tip": 1}),
    case("quote-array", "POST", "/v1/quotes", json=[QUOTE]),
    case("riders-limit-0", "GET", "/v1/riders?limit=0"),
    case("riders-on-duty-text", "GET", "/v1/riders?on_duty=maybe"),
]

SHOP_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("nan-lat", {"content": b'{"name": "n", "lat": NaN, "lon": 119.2}'}, "validation_error"),
    ("lat-91", {"json": shop_body(lat=91)}, "validation_error"),
    ("long-name", {"json": shop_body(name="n" * 101)}, "validation_error"),
    ("empty-name", {"json": shop_body(name="")}, "validation_error"),
    ("circle-0", {"json": shop_body(circle_walk_min=0)}, "validation_error"),
    ("promise-1000", {"json": shop_body(promise_min=1000)}, "validation_error"),
    ("unknown-field", {"json": shop_body(owner="me")}, "validation_error"),
    ("id-given", {"json": shop_body(id=MISSING)}, "validation_error"),
]


@pytest.fixture(scope="module")
def client(module_client: TestClient) -> TestClient:
    return module_client


@pytest.fixture(scope="module")
def shop(module_client: TestClient) -> ShopHandle:
    return create_shop(module_client)


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), ORDER_CASES)
def test_bad_order_input_is_4xx(
    client: TestClient,
    shop: ShopHandle,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    """Each malformed request to the order routes gets its 4xx and code, with a message."""
    headers = {**JSON, **shop.headers, **kwargs.get("headers", {})}
    request = {**kwargs, "headers": headers}
    assert_error(client.request(method, path, **request), status, code)


@pytest.mark.parametrize(("kwargs", "code"), [pytest.param(*c[1:], id=c[0]) for c in SHOP_CASES])
def test_bad_shop_input_is_422(client: TestClient, kwargs: dict[str, Any], code: str) -> None:
    """Each malformed shop body gets 422 with its code and a message naming the field."""
    response = client.post("/v1/shops", headers={**JSON, **ADMIN}, **kwargs)
    body = assert_error(response, 422, code)
    assert "body" in body["message"]


def test_message_names_the_field_and_value(client: TestClient, shop: ShopHandle) -> None:
    """The 422 message says which field was wrong and what it was."""
    response = client.post("/v1/orders", json=order_body(dropoff_lat=91), headers=shop.headers)
    message = assert_error(response, 422)["message"]
    assert "body.dropoff_lat" in message and "91" in message


def test_nothing_was_written(client: TestClient, shop: ShopHandle) -> None:
    """After every bad request above there is still one shop with one key, and no order nor
    event."""
    engine = cast(FastAPI, client.app).state.engine
    assert count_rows(engine, "shops") == count_rows(engine, "api_keys") == 1
    assert count_rows(engine, "orders") + count_rows(engine, "order_events") == 0
