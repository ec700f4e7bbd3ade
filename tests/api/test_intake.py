"""Tests of api/intake.py and the batch kinds of api/group_commit.py: a batch of intakes written
together answers each request as if it had been written alone."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, create_engine

from api.db import create_db_engine
from api.errors import AppError
from api.group_commit import Batched, BatchKind, Outcome, write_batch
from api.intake import (
    ORDER_INTAKE,
    IntakeRequest,
    fingerprint_fields,
    key_params,
    new_order_body,
    new_order_values,
    orders_of_keys,
    prepare_intake,
    public_body,
    records_of_keys,
)
from api.migrations import upgrade
from api.models import OrderCreate, Shop
from tests.api.factories import (
    OUTSIDE_LAT,
    OUTSIDE_LON,
    START,
    ShopHandle,
    count_rows,
    order_body,
)


def _load_shop(engine: Engine, shop: ShopHandle) -> Shop:
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(Shop, uuid.UUID(shop.id))
        assert row is not None
        return row


def _intake(shop: Shop, key: str | None, **overrides: Any) -> Batched[IntakeRequest, Any]:
    order_in = OrderCreate.model_validate(order_body(**overrides))
    return Batched(ORDER_INTAKE, prepare_intake(shop, order_in, key, START))


def test_one_batch_answers_each_intake_as_alone(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """New orders, a replay of a stored key, a key reused with another body, a known external
    id, a key and an external id repeated within the batch, and a drop-off outside the circle,
    all in one batch: each gets its own answer and only the new orders are stored, once each."""
    first = client.post(
        "/v1/orders",
        json=order_body(external_id="OLD-1"),
        headers={**shop.headers, "Idempotency-Key": "old-key"},
    )
    assert first.status_code == 201, first.text
    row = _load_shop(engine, shop)

    outcomes = write_batch(
        engine,
        [
            _intake(row, "k-1", external_id="N-1"),
            _intake(row, "old-key", external_id="OLD-1"),  # replay: same body
            _intake(row, "old-key", external_id="OTHER"),  # same key, another body
            _intake(row, None, external_id="OLD-1"),  # known (source, external_id)
            _intake(row, "k-2", external_id="N-2"),
            _intake(row, "k-2", external_id="N-2"),  # the same request twice in one batch
            _intake(row, None, external_id="N-2"),  # its external id again, without a key
            _intake(
                row, "k-3", external_id="FAR", dropoff_lat=OUTSIDE_LAT, dropoff_lon=OUTSIDE_LON
            ),
        ],
    )

    values = [outcome.value for outcome in outcomes]
    bodies = [json.loads(value[1]) if value is not None else None for value in values]
    assert values[0][0] == 201 and values[0][2] is False and values[0][3] is not None
    assert values[1][0] == 201 and values[1][2] is True and values[1][3] is None
    assert bodies[1]["id"] == first.json()["id"]
    assert isinstance(outcomes[2].error, AppError)
    assert outcomes[2].error.code == "idempotency_key_reused"
    assert values[3][0] == 200 and bodies[3]["id"] == first.json()["id"]
    assert values[4][0] == 201
    assert values[5][2] is True and bodies[5]["id"] == bodies[4]["id"]
    assert values[6][0] == 200 and bodies[6]["id"] == bodies[4]["id"]
    assert isinstance(outcomes[7].error, AppError)
    assert outcomes[7].error.code == "outside_service_area"

    assert count_rows(engine, "orders") == 3  # OLD-1, N-1, N-2
    assert count_rows(engine, "order_events", "kind = 'placed'") == 3
    # old-key, k-1, k-2; none for the reused key nor for the drop-off outside.
    assert count_rows(engine, "idempotency_records") == 3


def test_a_replay_after_a_batch_returns_the_first_answer(
    client: TestClient, shop: ShopHandle
) -> None:
    """An order written in a batch and replayed over HTTP with its key: the same order, no PIN,
    ``Idempotent-Replayed: true``; its event history holds one ``placed``."""
    headers = {**shop.headers, "Idempotency-Key": "batch-replay"}
    created = client.post("/v1/orders", json=order_body(external_id="R-1"), headers=headers)
    assert created.status_code == 201, created.text
    replayed = client.post("/v1/orders", json=order_body(external_id="R-1"), headers=headers)
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert {**replayed.json(), "pin": created.json()["pin"]} == created.json()
    events = client.get(f"/v1/orders/{created.json()['id']}/events", headers=shop.headers)
    assert [event["kind"] for event in events.json()["data"]] == ["placed"]


def test_a_subscribed_shop_gets_its_accepted_event_from_a_batch(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """A shop with an endpoint subscribed to ``order.accepted``: each order of a batch gets its
    outbox event, in the same transaction as the order."""
    endpoint = client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://example.com/hook", "event_types": ["order.accepted"]},
        headers=shop.headers,
    )
    assert endpoint.status_code == 201, endpoint.text
    row = _load_shop(engine, shop)
    outcomes = write_batch(engine, [_intake(row, f"s-{n}", external_id=f"S-{n}") for n in range(3)])
    assert [outcome.value[0] for outcome in outcomes] == [201, 201, 201]
    assert count_rows(engine, "outbox_events") == 3
    assert count_rows(engine, "orders") == 3


def test_a_group_that_raises_is_written_one_by_one() -> None:
    """When ``many`` raises after writing, its savepoint is rolled back and each item goes
    through ``one`` in a savepoint of its own: a bad item fails alone, the rest are written."""
    written: list[str] = []

    def many(_session: Session, items: Sequence[str]) -> list[Outcome | None]:
        written.extend(items)
        raise RuntimeError("a unique key taken meanwhile")

    def one(_session: Session, item: str) -> str:
        if item == "bad":
            raise ValueError("bad item")
        return item.upper()

    kind: BatchKind[str, str] = BatchKind("test", many=many, one=one)
    calls: list[str] = []

    def plain(_session: Session) -> str:
        calls.append("plain")
        return "plain"

    engine = create_engine("sqlite://")
    outcomes = write_batch(
        engine, [Batched(kind, "a"), plain, Batched(kind, "bad"), Batched(kind, "b")]
    )
    # the first pass (no savepoints) stops at the raise; the second gives many one call for
    # the whole group again, in a savepoint
    assert written == ["a", "bad", "b"] * 2
    assert [outcome.value for outcome in outcomes] == ["A", "plain", None, "B"]
    assert isinstance(outcomes[2].error, ValueError)
    assert calls == ["plain"]


def test_prepared_intake_keeps_the_circle_error_for_new_orders_only(
    shop: ShopHandle, engine: Engine
) -> None:
    """``prepare_intake`` does not raise for a drop-off outside the circle: it keeps the error,
    and the body it prepared for a valid order is the order's public JSON."""
    row = _load_shop(engine, shop)
    far = _intake(row, None, dropoff_lat=OUTSIDE_LAT, dropoff_lon=OUTSIDE_LON).item
    assert far.error is not None and far.error.code == "outside_service_area"
    assert far.values is None
    near = _intake(row, "key", external_id="NEAR").item
    assert near.error is None and near.body is not None and near.values is not None
    assert json.loads(near.body_json or "") == near.body
    assert near.body["id"] == str(near.values["id"]) and near.body["status"] == "pending"


def test_batch_lookups_search_an_index_on_sqlite(tmp_path: Path) -> None:
    """The batch's lookups of idempotency records and known orders search their unique index on
    SQLite, whatever the batch size: no plan scans the table (a row-value IN list did)."""
    engine = create_db_engine(f"sqlite:///{tmp_path}/plans.db")
    upgrade(engine)
    shop_id = uuid.uuid4().hex  # as SQLite stores it: the plan does not depend on the values
    with engine.connect() as connection:
        for n_keys in (1, 2, 32):
            for statement, params in (
                (records_of_keys(n_keys), ("shop_id", "key")),
                (orders_of_keys(n_keys), ("shop_id", "source", "external_id")),
            ):
                keys = [(shop_id, *(f"{name}-{i}" for name in params[1:])) for i in range(n_keys)]
                compiled = statement.compile(dialect=engine.dialect)
                values = compiled.construct_params(key_params(params, keys))
                parameters = [values[name] for name in compiled.positiontup or ()]
                plan = connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {compiled}", tuple(parameters)
                ).all()
                details = [row[-1] for row in plan]
                assert details and all(not detail.startswith("SCAN") for detail in details)
                assert any("USING" in detail and "INDEX" in detail for detail in details)
    engine.dispose()


def test_a_new_orders_body_is_its_public_body(shop: ShopHandle, engine: Engine) -> None:
    """``new_order_body`` (built by hand) equals ``public_body`` (pydantic), key order included,
    for times with and without microseconds and each ready rule."""
    row = _load_shop(engine, shop)
    cases: list[tuple[datetime, dict[str, Any]]] = [
        (START, {}),
        (START.astimezone(UTC), {}),  # the service's clock is UTC ("Z")
        (START.astimezone(UTC).replace(microsecond=123_456), {"picking_min": 7}),
        (START.replace(microsecond=1), {"ready_at": "2026-11-29T11:30:00.5+08:00"}),
        (START, {"address": "Building 4\u00e9", "size_bags": 3, "source": "shop.app"}),
    ]
    for now, overrides in cases:
        order_in = OrderCreate.model_validate(order_body(**overrides))
        values = new_order_values(row, order_in, now, "hash")
        built = new_order_body(values)
        expected = public_body(values)
        assert built == expected and list(built) == list(expected)
        assert json.dumps(built) == json.dumps(expected)


def test_the_fingerprint_fields_are_pydantics_dump() -> None:
    """``fingerprint_fields`` (read off the model) equals pydantic's JSON-mode dump without the
    PIN, for bodies with and without each optional field."""
    cases: list[dict[str, Any]] = [
        {},
        {"pin": "123456", "picking_min": 0},
        {"ready_at": "2026-11-29T11:30:00.5+08:00"},
        {"address": "Building 4\u00e9", "size_bags": 3, "source": "shop.app"},
        {"dropoff_lat": 34.6, "dropoff_lon": 119.0, "external_id": "x" * 128},
    ]
    for overrides in cases:
        order_in = OrderCreate.model_validate(order_body(**overrides))
        expected = order_in.model_dump(mode="json", exclude={"pin"})
        assert fingerprint_fields(order_in) == expected
        assert json.dumps(fingerprint_fields(order_in)) == json.dumps(expected)
