"""Tests of api/driver_select.py: the driver's read gives the row Core's read gives."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, Select, bindparam, select

from api.driver_select import DriverSelect
from api.intake import ORDER_BY_ID, ORDERS
from tests.api.factories import ShopHandle, order_body


def _core_row(
    engine: Engine, statement: Select[Any], params: dict[str, Any]
) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = connection.execute(statement, params).mappings().first()
    return dict(row) if row is not None else None


def test_an_order_read_by_the_driver_is_the_order_core_reads(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """Every column of two orders, one with a ready time and a PIN of its own, typed the same
    (UUIDs, aware times, floats, nulls); an unknown id reads nothing."""
    ids = []
    for number, extra in enumerate(({}, {"ready_at": "2026-11-29T09:20:00+08:00", "pin": "4321"})):
        body = order_body(external_id=f"driver-{number}", address="Zh\u00e8ng \u4e2d", **extra)
        placed = client.post("/v1/orders", json=body, headers=shop.headers)
        assert placed.status_code == 201, placed.text
        ids.append(uuid.UUID(placed.json()["id"]))
    read = DriverSelect(ORDER_BY_ID)
    for order_id in ids:
        ours = read.first(engine, {"order_id": order_id})
        assert ours is not None and ours == _core_row(engine, ORDER_BY_ID, {"order_id": order_id})
        assert ours["id"] == order_id and ours["placed_at"].tzinfo is not None
        assert [type(value) for value in ours.values()] == [
            type(value) for value in _core_row_values(engine, order_id)
        ]
    assert read.first(engine, {"order_id": uuid.uuid4()}) is None


def _core_row_values(engine: Engine, order_id: uuid.UUID) -> list[Any]:
    row = _core_row(engine, ORDER_BY_ID, {"order_id": order_id})
    assert row is not None
    return list(row.values())


def test_labels_and_several_parameters_are_read_by_name(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    placed = client.post("/v1/orders", json=order_body(), headers=shop.headers)
    assert placed.status_code == 201, placed.text
    statement = select(
        ORDERS.c.placed_at.label("when"), ORDERS.c.dropoff_lat, ORDERS.c.trip_id
    ).where(
        ORDERS.c.shop_id == bindparam("shop_id"),
        ORDERS.c.external_id == bindparam("external_id"),
    )
    params = {"shop_id": uuid.UUID(shop.id), "external_id": order_body()["external_id"]}
    ours = DriverSelect(statement).first(engine, params)
    assert ours == _core_row(engine, statement, params)
    assert ours is not None and list(ours) == ["when", "dropoff_lat", "trip_id"]
    assert ours["trip_id"] is None
