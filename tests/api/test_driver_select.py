"""Tests of api/driver_select.py: the driver's read gives the row Core's read gives."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Select, bindparam, literal, select, update

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


def test_rows_with_literals_a_limit_and_the_connections_transaction(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """``rows`` reads in the connection's transaction (its own uncommitted change is seen),
    with the statement's own values (an IN list of literals, a LIMIT) bound in place."""
    for number in range(3):
        body = order_body(external_id=f"rows-{number}")
        assert client.post("/v1/orders", json=body, headers=shop.headers).status_code == 201
    statement = (
        select(ORDERS.c.external_id)
        .where(
            ORDERS.c.shop_id == bindparam("shop_id"),
            ORDERS.c.external_id.in_([literal("rows-0"), literal("rows-2"), literal("new")]),
        )
        .order_by(ORDERS.c.external_id.desc())
        .limit(2)
    )
    params = {"shop_id": uuid.UUID(shop.id)}
    with engine.connect() as connection:
        assert DriverSelect(statement).rows(connection, params) == [
            {"external_id": "rows-2"},
            {"external_id": "rows-0"},
        ]
    with engine.connect() as connection:
        connection.execute(
            update(ORDERS).where(ORDERS.c.external_id == "rows-2").values(external_id="new")
        )
        assert DriverSelect(statement).rows(connection, params) == [
            {"external_id": "rows-0"},
            {"external_id": "new"},
        ]
        connection.rollback()


def test_an_expanding_in_list_is_refused(engine: Engine) -> None:
    statement = select(ORDERS.c.id).where(ORDERS.c.status.in_(["pending", "assigned"]))
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite reads by the driver; Core runs the statement as it is")
    with pytest.raises(ValueError, match="positional"), engine.connect() as connection:
        DriverSelect(statement).rows(connection, {})
