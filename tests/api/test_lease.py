"""Tests of the dispatch leases of api/dispatch.py: one worker at a time dispatches a shop, a
stale epoch writes nothing, and an expired lease is taken over with the next epoch."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

import api.dispatch
from api.config import Settings
from api.db import writer
from api.dispatch import (
    LEASE_TICKS,
    Lease,
    LeaseLost,
    acquire_lease,
    dispatch_all,
    dispatch_shop,
    release_leases,
)
from api.engine import ShopPlan
from api.main import create_app
from api.models import Shop, ShopLease
from tests.api.conftest import Factory, create_shop
from tests.api.factories import (
    ADMIN_TOKEN,
    TICK_S,
    FakeClock,
    ShopHandle,
    count_rows,
    order_body,
    rider_body,
)

LEASE_S = LEASE_TICKS * TICK_S


def on_duty_rider(client: TestClient, shop: ShopHandle, name: str = "Li Wei") -> None:
    rider = client.post("/v1/riders", json=rider_body(name=name), headers=shop.headers).json()
    duty = client.post(
        f"/v1/riders/{rider['id']}/duty", json={"on_duty": True}, headers=shop.headers
    )
    assert duty.status_code == 200, duty.text


def post_order(client: TestClient, shop: ShopHandle, external_id: str) -> str:
    body = order_body(external_id=external_id)
    response = client.post("/v1/orders", json=body, headers=shop.headers)
    assert response.status_code == 201, response.text
    order_id: str = response.json()["id"]
    return order_id


def status(client: TestClient, shop: ShopHandle, order_id: str) -> str:
    result: str = client.get(f"/v1/orders/{order_id}", headers=shop.headers).json()["status"]
    return result


def take(engine: Engine, shop: ShopHandle, owner_id: str, now: datetime) -> Lease | None:
    with Session(writer(engine), expire_on_commit=False) as session:
        return acquire_lease(session, uuid.UUID(shop.id), owner_id, now, LEASE_S)


def lease_row(engine: Engine, shop: ShopHandle) -> ShopLease:
    with Session(engine) as session:
        row = session.get(ShopLease, uuid.UUID(shop.id))
        assert row is not None
        return row


def test_only_the_lease_holder_dispatches_a_shop(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Worker w2 ticking after w1 in the same tick dispatches nothing of w1's shop; w1 does, and
    keeps its epoch while it renews every tick."""
    on_duty_rider(client, shop)
    on_duty_rider(client, shop, name="Zhang Min")
    first = post_order(client, shop, "A-1")
    assert dispatch_all(engine, clock(), TICK_S, owner_id="w1") == 1
    assert status(client, shop, first) == "assigned"
    second = post_order(client, shop, "A-2")
    assert dispatch_all(engine, clock(), TICK_S, owner_id="w2") == 0
    assert status(client, shop, second) == "pending"
    clock.advance(TICK_S)
    assert dispatch_all(engine, clock(), TICK_S, owner_id="w2") == 0
    assert dispatch_all(engine, clock(), TICK_S, owner_id="w1") == 1
    assert status(client, shop, second) == "assigned"
    row = lease_row(engine, shop)
    assert (row.owner_id, row.epoch) == ("w1", 1)


def test_two_workers_at_once_commit_one_trip_per_shop(
    client: TestClient,
    make_shop: Factory,
    engine: Engine,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers ticking concurrently over three shops: each shop is dispatched once, by one
    of them, and each shop's one order is on exactly one trip."""
    shops = [make_shop(name=f"Shop {i}") for i in range(3)]
    dispatched: list[str] = []
    real = api.dispatch.dispatch_shop

    def spy(session: Session, shop: Shop, now: datetime, **options: Any) -> ShopPlan:
        dispatched.append(str(shop.id))
        return real(session, shop, now, **options)

    monkeypatch.setattr(api.dispatch, "dispatch_shop", spy)
    for shop in shops:
        on_duty_rider(client, shop)
        post_order(client, shop, "A-1")
    committed: dict[str, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(owner_id: str) -> None:
        try:
            barrier.wait(timeout=10)
            committed[owner_id] = dispatch_all(engine, clock(), TICK_S, owner_id=owner_id)
        except BaseException as error:  # pragma: no cover - reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(owner,)) for owner in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(dispatched) == sorted(shop.id for shop in shops)
    assert sum(committed.values()) == 3
    assert count_rows(engine, "trips") == 3
    owners = {lease_row(engine, shop).owner_id for shop in shops}
    assert owners <= {"w1", "w2"}
    assert [lease_row(engine, shop).epoch for shop in shops] == [1, 1, 1]
    assert count_rows(engine, "orders", "status = 'assigned'") == 3


def test_a_stale_epoch_writes_nothing(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """w1's lease expires and w2 takes it over; w1 dispatching with its old epoch raises
    LeaseLost and leaves every row as it was."""
    on_duty_rider(client, shop)
    order_id = post_order(client, shop, "A-1")
    stale = take(engine, shop, "w1", clock())
    assert stale is not None and stale.epoch == 1
    clock.advance(LEASE_S + 1)
    fresh = take(engine, shop, "w2", clock())
    assert fresh is not None and (fresh.owner_id, fresh.epoch) == ("w2", 2)
    with Session(writer(engine), expire_on_commit=False) as session:
        shop_row = session.get(Shop, uuid.UUID(shop.id))
        assert shop_row is not None
        with pytest.raises(LeaseLost, match="epoch 1 is lost"):
            dispatch_shop(session, shop_row, clock(), tick_s=TICK_S, lease=stale)
    assert status(client, shop, order_id) == "pending"
    assert count_rows(engine, "trips") == count_rows(engine, "trip_stops") == 0
    assert count_rows(engine, "order_events", "kind = 'assigned'") == 0
    with Session(writer(engine), expire_on_commit=False) as session:
        shop_row = session.get(Shop, uuid.UUID(shop.id))
        assert shop_row is not None
        plan = dispatch_shop(session, shop_row, clock(), tick_s=TICK_S, lease=fresh)
    assert len(plan.trips) == 1
    assert status(client, shop, order_id) == "assigned"


def test_an_expired_lease_of_ones_own_writes_nothing(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A lease past its expiry is lost even when nobody took it over yet."""
    on_duty_rider(client, shop)
    post_order(client, shop, "A-1")
    lease = take(engine, shop, "w1", clock())
    assert lease is not None
    clock.advance(LEASE_S)
    with Session(writer(engine), expire_on_commit=False) as session:
        shop_row = session.get(Shop, uuid.UUID(shop.id))
        assert shop_row is not None
        with pytest.raises(LeaseLost, match="expired"):
            dispatch_shop(session, shop_row, clock(), tick_s=TICK_S, lease=lease)
    assert count_rows(engine, "trips") == 0


def test_an_expired_lease_is_taken_over(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """While w1's lease runs w2 is refused; once it has expired w2 takes it with epoch 2 and
    dispatches the shop, and w1 is refused in turn."""
    on_duty_rider(client, shop)
    first = take(engine, shop, "w1", clock())
    assert first is not None and first.epoch == 1
    clock.advance(LEASE_S - 1)
    assert take(engine, shop, "w2", clock()) is None
    clock.advance(1)
    taken = take(engine, shop, "w2", clock())
    assert taken is not None and (taken.owner_id, taken.epoch) == ("w2", 2)
    assert take(engine, shop, "w1", clock()) is None
    order_id = post_order(client, shop, "A-1")
    assert dispatch_all(engine, clock(), TICK_S, owner_id="w1") == 0
    assert dispatch_all(engine, clock(), TICK_S, owner_id="w2") == 1
    assert status(client, shop, order_id) == "assigned"
    row = lease_row(engine, shop)
    assert (row.owner_id, row.epoch) == ("w2", 2)


def test_renewing_keeps_the_epoch_retaking_after_expiry_does_not(
    shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Renewal before expiry extends the same epoch; the same worker coming back after expiry
    starts a new one."""
    first = take(engine, shop, "w1", clock())
    clock.advance(TICK_S)
    renewed = take(engine, shop, "w1", clock())
    assert first is not None and renewed is not None
    assert renewed.epoch == first.epoch == 1
    assert renewed.expires_at > first.expires_at
    clock.advance(LEASE_S + 1)
    again = take(engine, shop, "w1", clock())
    assert again is not None and again.epoch == 2


def release(engine: Engine, owner_id: str, now: datetime) -> int:
    with Session(writer(engine)) as session:
        released = release_leases(session, owner_id, now)
        session.commit()
    return released


def test_a_released_lease_is_taken_at_once_and_its_holder_writes_nothing(
    client: TestClient, make_shop: Factory, engine: Engine, clock: FakeClock
) -> None:
    """Releasing ends only the worker's own unexpired leases; another worker takes them at
    once with the next epoch, and the released holder's late write is refused."""
    shop, other = make_shop(), make_shop(name="Fruit corner")
    on_duty_rider(client, shop)
    post_order(client, shop, "A-1")
    held = take(engine, shop, "w1", clock())
    assert held is not None and take(engine, other, "w3", clock()) is not None
    assert release(engine, "w1", clock()) == 1
    assert release(engine, "w1", clock()) == 0  # nothing unexpired left
    assert take(engine, other, "w2", clock()) is None  # w3's lease is untouched
    taken = take(engine, shop, "w2", clock())
    assert taken is not None and (taken.owner_id, taken.epoch) == ("w2", 2)
    with Session(writer(engine), expire_on_commit=False) as session:
        shop_row = session.get(Shop, uuid.UUID(shop.id))
        assert shop_row is not None
        with pytest.raises(LeaseLost):
            dispatch_shop(session, shop_row, clock(), tick_s=TICK_S, lease=held)
    assert count_rows(engine, "trips") == 0


def test_a_stopping_service_releases_its_dispatch_leases(database_url: str) -> None:
    """A service that stops ends the leases its dispatch loop holds, so that another process
    dispatches those shops at its next tick rather than after ``LEASE_TICKS`` ticks."""
    clock = FakeClock()
    settings = Settings(
        database_url=database_url,
        admin_token=SecretStr(ADMIN_TOKEN),
        tick_s=1,
        webhook_delivery_enabled=False,
    )
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        shop = create_shop(client)
        on_duty_rider(client, shop)
        post_order(client, shop, "A-1")
        engine: Engine = app.state.engine
        for _ in range(100):  # the loop's next tick takes the lease (1 s ticks)
            with Session(engine) as session:
                if session.get(ShopLease, uuid.UUID(shop.id)) is not None:
                    break
            threading.Event().wait(0.1)
    row = lease_row(engine, shop)
    assert row.expires_at <= clock()
    taken = take(engine, shop, "next-process", clock())
    assert taken is not None and taken.epoch == row.epoch + 1
