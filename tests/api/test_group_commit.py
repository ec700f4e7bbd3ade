"""Tests of api/group_commit.py: concurrent order intakes written in shared transactions, each
with its own outcome, all durable once answered."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

import api.group_commit
from api.errors import AppError
from api.group_commit import Outcome, write_batch
from api.models import IdempotencyRecord, OrderCreate, Shop
from api.routes.orders import place_order
from tests.api.factories import (
    OUTSIDE_LAT,
    OUTSIDE_LON,
    START,
    ShopHandle,
    assert_error,
    count_rows,
    order_body,
)

N_THREADS = 24


def _load_shop(engine: Engine, shop: ShopHandle) -> Shop:
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(Shop, uuid.UUID(shop.id))
        assert row is not None
        return row


def test_concurrent_intakes_all_succeed_and_persist(
    client: TestClient,
    app: FastAPI,
    shop: ShopHandle,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many threads placing orders at once, every fourth one outside the circle: each valid one
    gets 201 and is stored with its event, each invalid one 422, whatever batch it shared."""
    batch_sizes: list[int] = []
    real_write_batch = api.group_commit.write_batch

    def counting_write_batch(engine: Engine, works: list[Any]) -> list[Outcome]:
        batch_sizes.append(len(works))
        return real_write_batch(engine, works)

    monkeypatch.setattr(api.group_commit, "write_batch", counting_write_batch)
    barrier = threading.Barrier(N_THREADS)
    responses: list[Any] = [None] * N_THREADS

    def post(index: int) -> None:
        outside = index % 4 == 3
        body = order_body(
            external_id=f"T-{index}",
            **({"dropoff_lat": OUTSIDE_LAT, "dropoff_lon": OUTSIDE_LON} if outside else {}),
        )
        headers = {**shop.headers, "Idempotency-Key": f"thread-{index}"}
        barrier.wait()
        responses[index] = client.post("/v1/orders", json=body, headers=headers)

    threads = [threading.Thread(target=post, args=(index,)) for index in range(N_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    n_valid = sum(1 for index in range(N_THREADS) if index % 4 != 3)
    for index, response in enumerate(responses):
        if index % 4 == 3:
            assert_error(response, 422, "outside_service_area")
        else:
            assert response.status_code == 201, response.text
            assert response.json()["external_id"] == f"T-{index}"
    ids = {response.json()["id"] for response in responses if response.status_code == 201}
    assert len(ids) == n_valid
    assert count_rows(engine, "orders") == n_valid
    assert count_rows(engine, "order_events", "kind = 'placed'") == n_valid
    assert count_rows(engine, "idempotency_records") == n_valid
    assert sum(batch_sizes) == N_THREADS


def test_a_failing_write_in_a_batch_leaves_the_others_stored(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """In one batch, a write raising an AppError and one hitting a unique key are rolled back
    alone and report their own errors; the writes before and after them are committed."""
    row = _load_shop(engine, shop)

    def place(external_id: str, **overrides: Any) -> Any:
        order_in = OrderCreate.model_validate(order_body(external_id=external_id, **overrides))

        def work(session: Session) -> uuid.UUID:
            return place_order(session, row, order_in, START)[0].id

        return work

    def duplicate_key(session: Session) -> None:
        for _ in range(2):
            session.add(
                IdempotencyRecord(
                    shop_id=row.id,
                    key="same",
                    request_sha256="0" * 64,
                    response_status=201,
                    response_body="{}",
                )
            )
            session.flush()

    outcomes = write_batch(
        engine,
        [
            place("B-1"),
            place("B-2", dropoff_lat=OUTSIDE_LAT, dropoff_lon=OUTSIDE_LON),
            duplicate_key,
            place("B-3"),
        ],
    )
    assert [outcome.error is None for outcome in outcomes] == [True, False, False, True]
    assert isinstance(outcomes[1].error, AppError)
    assert outcomes[1].error.code == "outside_service_area"
    assert type(outcomes[2].error).__name__ == "IntegrityError"
    assert count_rows(engine, "orders") == 2
    assert count_rows(engine, "order_events") == 2
    assert count_rows(engine, "idempotency_records") == 0
    stored = {outcomes[0].value.hex, outcomes[3].value.hex}
    with engine.connect() as connection:
        ids = {
            uuid.UUID(str(value)).hex
            for value in connection.exec_driver_sql("SELECT id FROM orders").scalars()
        }
    assert ids == stored


def test_a_batch_that_succeeds_is_written_once_without_savepoints(
    client: TestClient, shop: ShopHandle, engine: Engine
) -> None:
    """A batch whose writes all succeed runs each of them once, in the transaction itself (no
    SAVEPOINT statement); one that raises is written again, a savepoint each."""
    from sqlalchemy import event

    row = _load_shop(engine, shop)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    runs: list[str] = []

    def place(external_id: str, **overrides: Any) -> Any:
        order_in = OrderCreate.model_validate(order_body(external_id=external_id, **overrides))

        def work(session: Session) -> uuid.UUID:
            runs.append(external_id)
            return place_order(session, row, order_in, START)[0].id

        return work

    event.listen(engine, "before_cursor_execute", record)
    try:
        outcomes = write_batch(engine, [place("T-1"), place("T-2")])
        assert all(outcome.error is None for outcome in outcomes)
        assert runs == ["T-1", "T-2"] and "SAVEPOINT" not in statements
        runs.clear()
        outcomes = write_batch(
            engine,
            [place("T-3"), place("T-4", dropoff_lat=OUTSIDE_LAT, dropoff_lon=OUTSIDE_LON)],
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [outcome.error is None for outcome in outcomes] == [True, False]
    assert runs == ["T-3", "T-4", "T-3", "T-4"] and "SAVEPOINT" in statements
    assert count_rows(engine, "orders") == 3  # T-1, T-2, T-3: each once


@pytest.mark.db
def test_two_batches_that_deadlock_on_postgresql_both_commit(postgres_engine: Engine) -> None:
    """Two batches (as of two processes) taking the same two locks in opposite orders, each
    with a piece that fails (so each is written a savepoint a piece): the batch PostgreSQL
    aborts is run again, whole, once the other has committed. Every piece but the failing ones
    succeeds; retrying only the piece that lost would deadlock again on the locks its batch
    still holds, or answer it the deadlock."""
    from sqlalchemy import text

    barrier = threading.Barrier(2, timeout=30)
    runs: list[str] = []

    def lock(key: int, name: str, *, meet: bool) -> Any:
        def work(session: Session) -> str:
            runs.append(name)
            session.connection().execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            if meet and runs.count(name) == 1:  # both hold their first lock: now cross
                barrier.wait()
            return name

        return work

    def fail(_session: Session) -> None:
        raise AppError(422, "bad", "this piece always fails")

    batches = {
        "ab": [fail, lock(1, "a1", meet=True), lock(2, "a2", meet=False)],
        "ba": [fail, lock(2, "b2", meet=True), lock(1, "b1", meet=False)],
    }
    outcomes: dict[str, list[Outcome]] = {}

    def run(name: str) -> None:
        outcomes[name] = write_batch(postgres_engine, batches[name])

    threads = [threading.Thread(target=run, args=(name,)) for name in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for name, values in (("ab", ["a1", "a2"]), ("ba", ["b2", "b1"])):
        failed, *written = outcomes[name]
        assert isinstance(failed.error, AppError)
        assert [outcome.error for outcome in written] == [None, None]
        assert [outcome.value for outcome in written] == values
    assert len(runs) > 4  # one batch lost the deadlock and ran again


def test_a_batch_that_keeps_losing_races_gives_up_with_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch whose transaction loses every run is run ``BATCH_ATTEMPTS`` times, then every
    piece gets the lost race's error (a 503 to its request), none of it stored."""
    lost = RuntimeError("deadlock detected")
    lost.sqlstate = "40P01"  # type: ignore[attr-defined]  # as psycopg's DeadlockDetected
    calls: list[int] = []

    def always_lost(_engine: Engine, works: list[Any]) -> list[Outcome]:
        calls.append(len(works))
        raise api.group_commit._Lost from lost

    monkeypatch.setattr(api.group_commit, "_write_once", always_lost)
    monkeypatch.setattr(api.group_commit, "RETRY_PAUSE_S", 0.0)
    outcomes = write_batch(None, [lambda _session: 1, lambda _session: 2])  # type: ignore[arg-type]
    assert calls == [2] * api.group_commit.BATCH_ATTEMPTS
    assert [outcome.error for outcome in outcomes] == [lost, lost]
    assert api.group_commit.lost_race(lost) and not api.group_commit.lost_race(ValueError())
