"""Tests of api/driver_insert.py: the driver's executemany stores what SQLAlchemy's would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert
from sqlalchemy.dialects import sqlite

from api.db import create_db_engine
from api.driver_insert import DriverInsert, bind_processor_of, converted
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


def _sqlite_bind(column_name: str) -> tuple[Any, Any]:
    """The bind processor of ``orders.<column_name>`` on SQLite: SQLAlchemy's and ours."""
    dialect = sqlite.dialect()
    column = ORDERS.c[column_name]
    generic = column.type.dialect_impl(dialect).bind_processor(dialect)
    return generic, bind_processor_of(column, dialect)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
    | st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.timezones(),
    )
)
def test_a_utc_time_is_bound_as_sqlalchemy_binds_it(at: datetime) -> None:
    """The shortcut for times in UTC writes SQLAlchemy's own text for every time, whole
    seconds and all; times in other zones take SQLAlchemy's own path."""
    generic, ours = _sqlite_bind("placed_at")
    assert ours(at) == generic(at)
    assert ours(at.replace(microsecond=0)) == generic(at.replace(microsecond=0))


def test_a_naive_time_is_still_refused_and_none_is_null() -> None:
    generic, ours = _sqlite_bind("eta_at")
    assert ours(None) is None and generic(None) is None
    with pytest.raises(ValueError, match="naive"):
        ours(datetime(2026, 12, 7, 9, 30))


def test_shared_value_objects_are_converted_once_and_placed_everywhere() -> None:
    calls: list[object] = []

    def process(value: object) -> object:
        calls.append(value)
        return f"<{value}>"

    shared, other = datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC)
    values: list[object] = [shared, other, shared, None, shared]
    done: dict[int, object] = {}
    assert converted(values, process, done) == [f"<{v}>" for v in values]
    assert len(calls) == 3  # shared, other, None: once each
    assert converted([other, shared], process, done) == [f"<{other}>", f"<{shared}>"]
    assert len(calls) == 3  # another column of the same processor: converted already
    assert converted(values, None, {}) is values


def test_columns_of_one_type_share_one_processor() -> None:
    """The five times of an order share one processor (a time shared by two columns is
    converted once); its two coordinates share theirs."""
    names = tuple(column.name for column in ORDERS.columns)
    with create_engine("sqlite://").connect() as connection:
        _, processors = DriverInsert(ORDERS)._prepare(connection, names)
    by_name = dict(zip(names, processors, strict=True))
    times = {id(by_name[name]) for name in ("placed_at", "ready_at", "promised_at", "eta_at")}
    assert len(times) == 1 and by_name["placed_at"] is not None
    assert by_name["dropoff_lat"] is by_name["dropoff_lon"] is not None
    assert by_name["id"] is by_name["shop_id"] is not by_name["placed_at"]
