"""Tests of api/errors.py: every error is {code, message}; body size limit; generic 500."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.errors import describe_validation_errors
from tests.api.factories import ADMIN, ShopHandle, assert_error, order_body


def test_validation_message_names_field_and_value() -> None:
    """The message names each field and its bad value (at most three, then a count)."""
    errors = [
        {"type": "less_than_equal", "loc": ("body", "lat"), "msg": "too big", "input": 91},
        {"type": "missing", "loc": ("body", "lon"), "msg": "Field required", "input": {}},
        {"type": "x", "loc": ("query", "q"), "msg": "bad", "input": "y" * 100},
        {"type": "x", "loc": ("query", "r"), "msg": "bad", "input": 1},
    ]
    code, message = describe_validation_errors(errors)
    assert code == "validation_error"
    assert message.startswith("body.lat: too big, got 91; body.lon: Field required; query.q: bad")
    assert "yyy..." in message and message.endswith("and 1 more")


def test_unknown_route_and_method(client: TestClient, shop: ShopHandle) -> None:
    """An unknown path is 404 not_found; a wrong method is 405 method_not_allowed."""
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client.delete("/v1/orders", headers=shop.headers), 405, "method_not_allowed")


def test_unhandled_exception_is_a_generic_500(app: FastAPI) -> None:
    """Any unexpected exception becomes 500 internal_error without details of the exception."""

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        body = assert_error(client.get("/boom"), 500, "internal_error")
    assert "secret" not in body["message"]


def test_database_errors_are_503(app: FastAPI, client: TestClient) -> None:
    """A database that is locked or unreachable gives 503 database_unavailable with Retry-After."""

    @app.get("/locked")
    def locked() -> None:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    @app.get("/pool-exhausted")
    def pool_exhausted() -> None:
        raise PoolTimeoutError("QueuePool limit reached")

    response = client.get("/locked")
    assert_error(response, 503, "database_unavailable")
    assert response.headers["retry-after"] == "1"
    assert_error(client.get("/pool-exhausted"), 503, "database_unavailable")


def test_declared_too_large_body_is_413(client: TestClient, shop: ShopHandle) -> None:
    """A Content-Length over max_body_bytes is refused before reading: 413 payload_too_large."""
    big = order_body(address="x" * 70_000)
    response = client.post("/v1/orders", json=big, headers=shop.headers)
    assert_error(response, 413, "payload_too_large")
    response = client.post("/v1/shops", json={"name": "y" * 70_000}, headers=ADMIN)
    assert_error(response, 413, "payload_too_large")


def test_streamed_too_large_body_is_413(client: TestClient, shop: ShopHandle) -> None:
    """A chunked body without Content-Length is cut off at the limit: 413 payload_too_large."""

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 4096

    response = client.post(
        "/v1/orders",
        content=chunks(),
        headers={**shop.headers, "Content-Type": "application/json"},
    )
    assert "content-length" not in {key.lower() for key in response.request.headers}
    assert_error(response, 413, "payload_too_large")


def test_streamed_small_body_reaches_the_route(client: TestClient, shop: ShopHandle) -> None:
    """A chunked body under the limit is replayed whole to the route."""
    payload = (
        b'{"source": "pos", "external_id": "chunked", '
        b'"dropoff_lat": 34.6001, "dropoff_lon": 119.2250}'
    )

    def chunks() -> Iterator[bytes]:
        yield payload[:20]
        yield payload[20:]

    response = client.post(
        "/v1/orders",
        content=chunks(),
        headers={**shop.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["external_id"] == "chunked"
