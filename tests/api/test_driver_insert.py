"""Tests of api/driver_insert.py: the driver's executemany stores what SQLAlchemy's would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from api.db import create_db_engine
from api.driver_insert import DriverInsert
from api.intake import ORDER_EVENTS, ORDERS
from api.migrations import upgrade
from api.models import OrderStatus
from tests.api.factories import ShopHandle, order_body


def _events(order_id: uuid.UUID, shop_id: uuid.UUID, kind: str) -> list[dict[str, object]]:
    """Event rows with every kind of value: UUIDs, aware times in two zones with and without
    microseconds, non-ASCII text and a NULL."""
    at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    return [
        {
            "order_id": order_id,
            "shop_id": shop_id,
            "kind": kind,
            "status": OrderStatus.pending.value,
            "at": at,
            "note": None,
        },
        {
            "order_id": order_id,
            "shop_id": shop_id,
            "kind": kind,
            "status": OrderStatus.assigned.value,
            "at": (at + timedelta(microseconds=123_456)).astimezone(timezone(timedelta(hours=8))),
            "note": "Zh\u00e8ng \u4e2d 'quoted' \U0001f600",
        },
    ]


def test_rows_stored_by_the_driver_are_the_rows_core_stores(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """The same rows inserted by Core and by ``DriverInsert`` read back the same, raw (the
    driver's own values, no type conversion on the way out), on both databases."""
    placed = client.post("/v1/orders", json=order_body(), headers=shop.headers)
    assert placed.status_code == 201, placed.text
    order_id, shop_id = uuid.UUID(placed.json()["id"]), uuid.UUID(shop.id)
    with engine.begin() as connection:
        connection.execute(insert(ORDER_EVENTS), _events(order_id, shop_id, "core"))
        DriverInsert(ORDER_EVENTS).execute(connection, _events(order_id, shop_id, "driver"))
        DriverInsert(ORDER_EVENTS).execute(connection, [])  # nothing to insert: no statement
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT kind, order_id, shop_id, status, at, note FROM order_events ORDER BY id"
        ).all()
    by_kind = {kind: [row[1:] for row in rows if row[0] == kind] for kind in ("core", "driver")}
    assert len(by_kind["core"]) == 2 and by_kind["driver"] == by_kind["core"]


def test_rows_missing_a_column_with_a_default_are_refused(tmp_path: Path) -> None:
    """Rows that leave out a column SQLAlchemy would fill with its Python default are an
    error, not a row stored without it (SQLite: elsewhere Core runs and fills it in)."""
    engine = create_db_engine(f"sqlite:///{tmp_path}/quarterhour.db")
    upgrade(engine)
    with engine.begin() as connection, pytest.raises(ValueError, match="rows without"):
        DriverInsert(ORDERS).execute(connection, [{"source": "pos", "external_id": "x"}])
    engine.dispose()
