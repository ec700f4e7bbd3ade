"""Tests of api/intake.py and the batch kinds of api/group_commit.py: a batch of intakes written
together answers each request as if it had been written alone, and on PostgreSQL it locks its
order keys as a webhook event does (``api.inbound``)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, create_engine

from api.db import create_db_engine
from api.errors import AppError
from api.group_commit import Batched, BatchKind, Outcome, write_batch
from api.inbound import process_event, validate_event
from api.intake import (
    ORDER_INTAKE,
    IntakeRequest,
    canonical_body,
    dump_body,
    fingerprint_fields,
    key_params,
    new_order_body_json,
    new_order_values,
    order_lock_key,
    orders_of_keys,
    prepare_intake,
    public_body,
    records_of_keys,
    take_order,
    take_orders,
)
from api.migrations import upgrade
from api.models import InboundEventAck, OrderCreate, Shop
from tests.api.conftest import BACKENDS
from tests.api.factories import (
    OUTSIDE_LAT,
    OUTSIDE_LON,
    START,
    ShopHandle,
    add_webhook_secret,
    count_rows,
    inbound_event,
    order_body,
    post_signed,
)

# The tests of two transactions racing: only PostgreSQL runs them side by side (SQLite's
# ``BEGIN IMMEDIATE`` makes the second wait for the first to end).
POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", BACKENDS[1:], indirect=True)
SQLITE_ONLY = pytest.mark.parametrize("database_url", BACKENDS[:1], indirect=True)
# The platform of the racing orders (the source of their webhooks and of their intake).
PLATFORM = "meituan"
# Bound on the wait for the other thread of a race (never reached when the test passes).
RACE_DEADLINE_S = 60.0


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
    assert near.error is None and near.body_json is not None and near.values is not None
    assert near.body_json == dump_body(public_body(near.values))
    body = json.loads(near.body_json)
    assert body["id"] == str(near.values["id"]) and body["status"] == "pending"


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
    """``new_order_body_json`` (written by hand) is the JSON text of ``public_body`` (pydantic)
    as ``dump_body`` writes it, for times with and without microseconds, each ready rule,
    non-ASCII and escaped characters, and whole-number coordinates."""
    row = _load_shop(engine, shop)
    cases: list[tuple[datetime, dict[str, Any]]] = [
        (START, {}),
        (START.astimezone(UTC), {}),  # the service's clock is UTC ("Z")
        (START.astimezone(UTC).replace(microsecond=123_456), {"picking_min": 7}),
        (START.replace(microsecond=1), {"ready_at": "2026-11-29T11:30:00.5+08:00"}),
        (START, {"address": "Building 4\u00e9", "size_bags": 3, "source": "shop.app"}),
        (START, {"address": 'Quote " back\\ \u2028 \U0001f600', "external_id": "\u00fc"}),
        (START, {"dropoff_lat": 35, "dropoff_lon": 119}),  # ints given: floats stored
        (START, {"dropoff_lat": 35.00000000000001, "dropoff_lon": 1.5e-7 + 119}),
    ]
    for now, overrides in cases:
        order_in = OrderCreate.model_validate(order_body(**overrides))
        if "dropoff_lat" in overrides:  # a shop where whole degrees are inside its circle
            row = row.model_copy(update={"lat": 35.0, "lon": 119.0})
        values = new_order_values(row, order_in, now, "hash")
        expected = public_body(values)
        assert new_order_body_json(values) == dump_body(expected)
        assert list(json.loads(new_order_body_json(values))) == list(expected)


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


def test_the_canonical_body_is_json_dumps_sorted() -> None:
    """``canonical_body`` (written field by field) is ``json.dumps`` of the fingerprint fields
    with sorted keys and compact separators (what every stored fingerprint was made from), for
    ASCII, non-ASCII and escaped strings, whole-number coordinates and each optional field."""
    cases: list[dict[str, Any]] = [
        {},
        {"pin": "123456", "picking_min": 0},
        {"picking_min": 240, "size_bags": 50},
        {"ready_at": "2026-11-29T11:30:00.5+08:00"},
        {"address": "Building 4\u00e9 \U0001f600", "source": "shop.app"},
        {"address": 'a " b \\ c \u2028', "external_id": "\u00fc" * 3},
        {"dropoff_lat": 35, "dropoff_lon": -119},
        {"dropoff_lat": 34.60000000000001, "dropoff_lon": 1e-7, "external_id": "x" * 128},
    ]
    for overrides in cases:
        order_in = OrderCreate.model_validate(order_body(**overrides))
        expected = json.dumps(fingerprint_fields(order_in), sort_keys=True, separators=(",", ":"))
        assert canonical_body(order_in) == expected


@contextlib.contextmanager
def _recorded_statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements ``engine`` runs within the block, with their parameters."""
    statements: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        statements.append((statement, parameters))

    sqlalchemy.event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", before)


def _cancel_work(shop: Shop) -> Callable[[Session], InboundEventAck]:
    """The group writer's work of a platform's ``order.cancelled`` of ``order_body``'s order,
    as ``POST /v1/webhooks/meituan`` queues it."""
    event = validate_event(inbound_event(str(shop.id), "order.cancelled", "evt_c", reason="gone"))

    def work(session: Session) -> InboundEventAck:
        return process_event(session, shop, PLATFORM, event, START)

    return work


def _lock_is_awaited(engine: Engine, order_key: tuple[uuid.UUID, str, str]) -> bool:
    """Whether a transaction waits for the advisory lock of ``order_key`` (PostgreSQL shows a
    bigint key as two 32-bit halves)."""
    key = order_lock_key(order_key) & 0xFFFF_FFFF_FFFF_FFFF
    with engine.connect() as connection:
        waiting = connection.execute(
            text(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
            ),
            {"high": key >> 32, "low": key & 0xFFFF_FFFF},
        ).scalar_one()
    return bool(waiting)


def _race(
    engine: Engine, order_key: tuple[uuid.UUID, str, str], racer: Callable[[], None]
) -> tuple[threading.Thread, bool]:
    """Start ``racer`` in a thread and come back once it waits for the lock of ``order_key``
    (true) or has run through without waiting (false)."""
    thread = threading.Thread(target=racer, daemon=True)
    thread.start()
    deadline = time.monotonic() + RACE_DEADLINE_S
    while thread.is_alive() and time.monotonic() < deadline:
        if _lock_is_awaited(engine, order_key):
            return thread, True
        time.sleep(0.005)
    assert not thread.is_alive(), "the racer neither waited for the lock nor ended"
    return thread, False


def _assert_cancelled_once(engine: Engine) -> None:
    """One order, cancelled, with one ``cancelled`` event; one inbound event, applied."""
    assert count_rows(engine, "orders") == 1
    assert count_rows(engine, "orders", "status = 'cancelled'") == 1
    assert count_rows(engine, "order_events", "kind = 'placed'") == 1
    assert count_rows(engine, "order_events", "kind = 'cancelled'") == 1
    assert count_rows(engine, "inbound_events") == 1
    assert count_rows(engine, "inbound_events", "status = 'applied'") == 1


@POSTGRESQL_ONLY
@pytest.mark.parametrize("path", ["batch", "one"])
def test_an_intake_waits_for_a_cancel_of_its_order_in_flight(
    shop: ShopHandle, engine: Engine, path: str
) -> None:
    """A platform's cancel of an order not known yet, not committed, and the shop's POST of
    that order in another transaction (through the batch, ``take_orders``, or alone,
    ``take_order``): the intake waits for the cancel's end, then finds the cancel waiting for
    it; the order is created cancelled, the cancel applied once."""
    row = _load_shop(engine, shop)
    intake = _intake(row, "till-1", source=PLATFORM)
    work: Callable[[Session], Any] = intake
    if path == "one":

        def work(session: Session) -> Any:
            return take_order(session, intake.item)

    outcomes: list[Outcome] = []
    with Session(engine) as cancelling:
        ack = _cancel_work(row)(cancelling)
        assert ack.status == "deferred"
        racer, waited = _race(
            engine, intake.item.order_key, lambda: outcomes.extend(write_batch(engine, [work]))
        )
        cancelling.commit()
    racer.join(RACE_DEADLINE_S)
    assert [outcome.error for outcome in outcomes] == [None]
    status_code, body_json, _replayed, _pin = outcomes[0].value
    assert status_code == 201 and json.loads(body_json)["status"] == "cancelled"
    _assert_cancelled_once(engine)
    assert waited


@POSTGRESQL_ONLY
@pytest.mark.parametrize("path", ["batch", "one"])
def test_a_cancel_waits_for_an_intake_of_its_order_in_flight(
    shop: ShopHandle, engine: Engine, path: str
) -> None:
    """The shop's POST of an order, written but not committed (through the batch,
    ``take_orders``, or alone, ``take_order``), and a platform's cancel of that order in
    another transaction: the cancel waits for the intake's end, then finds the order and
    cancels it (it is not left deferred)."""
    row = _load_shop(engine, shop)
    request = _intake(row, "till-1", source=PLATFORM).item
    outcomes: list[Outcome] = []
    with Session(engine) as taking:
        if path == "batch":
            [outcome] = take_orders(taking, [request])
            assert outcome is not None and outcome.error is None
            status_code = outcome.value[0]
        else:
            status_code = take_order(taking, request)[0]
        assert status_code == 201
        work = _cancel_work(row)
        racer, waited = _race(
            engine, request.order_key, lambda: outcomes.extend(write_batch(engine, [work]))
        )
        taking.commit()
    racer.join(RACE_DEADLINE_S)
    assert [outcome.error for outcome in outcomes] == [None]
    assert outcomes[0].value.status == "applied"
    _assert_cancelled_once(engine)
    assert waited


@POSTGRESQL_ONLY
def test_a_batch_locks_its_order_keys_in_one_statement_before_reading(
    shop: ShopHandle, engine: Engine
) -> None:
    """A batch of intakes takes the advisory locks of its distinct order keys, in ascending
    order, in one statement and before any read."""
    row = _load_shop(engine, shop)
    intakes = [_intake(row, f"k-{n}", external_id=f"L-{n % 3}") for n in range(4)]
    with _recorded_statements(engine) as statements:
        outcomes = write_batch(engine, list(intakes))
    assert all(outcome.error is None for outcome in outcomes)
    locks = [(sql, params) for sql, params in statements if "pg_advisory" in sql]
    assert locks[0] == statements[0]
    expected = sorted({order_lock_key(intake.item.order_key) for intake in intakes})
    assert len(expected) == 3 and locks[0][1] == {"keys": expected}
    # the repeated key, left to ``take_order``, locks its (held) key again: one more
    assert len(locks) == 2


@SQLITE_ONLY
def test_sqlite_takes_no_advisory_locks(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """On SQLite (writers serialised by ``BEGIN IMMEDIATE``) neither a webhook event nor an
    intake, in a batch or alone, runs advisory-lock SQL; a cancel before its order still
    makes the order cancelled."""
    secret = add_webhook_secret(client, shop)
    with _recorded_statements(engine) as statements:
        cancel = inbound_event(shop.id, "order.cancelled", "evt_c", reason="gone")
        assert post_signed(client, cancel, secret, source=PLATFORM).json()["status"] == "deferred"
        response = client.post("/v1/orders", json=order_body(source=PLATFORM), headers=shop.headers)
        assert response.status_code == 201 and response.json()["status"] == "cancelled"
        row = _load_shop(engine, shop)
        alone = _intake(row, None, external_id="S-3").item
        outcomes = write_batch(
            engine,
            [
                _intake(row, None, external_id="S-1"),
                _intake(row, None, external_id="S-2"),
                lambda session: take_order(session, alone),
            ],
        )
        assert [outcome.value[0] for outcome in outcomes] == [201, 201, 201]
    assert statements and not [sql for sql, _ in statements if "advisory" in sql.lower()]
