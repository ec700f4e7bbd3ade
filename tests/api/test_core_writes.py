"""Tests of api/core_writes.py: the Core delivery and location report keep the group writer's
shared session right (rows other pieces of the batch loaded are read again after them)."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.core_writes import store_duty
from api.group_commit import write_batch
from api.models import Order, Rider, RiderDutySpan, RiderLocation, Shop, Trip
from api.routes.orders import deliver_work
from api.routes.riders import location_work
from api.routes.trips import pickup_work
from tests.api.factories import FakeClock, ShopHandle
from tests.api.test_dispatch import dispatch_until_assigned, on_duty_rider, post_order


def shop_row_of(engine: Engine, shop: ShopHandle) -> Shop:
    """``shop``'s row, detached, as the routes hand it to their pieces of work."""
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(Shop, uuid.UUID(shop.id))
        assert row is not None
        return row


def test_a_delivery_in_a_batch_is_seen_by_the_pieces_after_it(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """Pickup, the order's and the trip's ORM rows loaded and held, Core delivery, then reads
    of the same rows in one batch: the reads see the order delivered and the trip done."""
    on_duty_rider(client, shop)
    order = post_order(client, shop)
    trip_id = uuid.UUID(dispatch_until_assigned(client, shop, engine, clock, order)["trip_id"])
    order_id = uuid.UUID(order["id"])
    shop_row = shop_row_of(engine, shop)
    now = clock()

    held: list[object] = []  # rows kept alive in the session's (weak) identity map

    def hold(session: Session) -> None:
        held.extend([session.get(Order, order_id), session.get(Trip, trip_id)])

    def order_status(session: Session) -> str:
        row = session.get(Order, order_id)
        assert row is not None
        return row.status

    def trip_status(session: Session) -> str:
        row = session.get(Trip, trip_id)
        assert row is not None
        return row.status

    outcomes = write_batch(
        engine,
        [
            pickup_work(shop_row, trip_id, now),
            hold,
            order_status,
            trip_status,
            deliver_work(shop_row, order_id, order["pin"], now),
            order_status,
            trip_status,
        ],
    )
    assert [outcome.error for outcome in outcomes] == [None] * 7
    values = [outcome.value for outcome in outcomes]
    assert values[2:4] == ["picked_up", "picked_up"]
    assert values[4].status == "delivered"
    assert values[5:] == ["delivered", "done"]


def test_a_location_in_a_batch_is_seen_by_the_pieces_after_it(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A rider's ORM row loaded and held, the Core location write, then a read of the row in
    the same batch: the read sees the new position; an older report changes nothing."""
    rider_id = uuid.UUID(on_duty_rider(client, shop)["id"])
    shop_row = shop_row_of(engine, shop)
    now = clock()
    held: list[object] = []

    def hold(session: Session) -> None:
        held.append(session.get(Rider, rider_id))

    def position(session: Session) -> tuple[float | None, float | None]:
        row = session.get(Rider, rider_id)
        assert row is not None
        return row.lat, row.lon

    here = RiderLocation(lat=34.601, lon=119.202)
    earlier = RiderLocation(lat=1.0, lon=2.0, at=now - timedelta(minutes=1))
    outcomes = write_batch(
        engine,
        [
            hold,
            location_work(shop_row, rider_id, here, now),
            position,
            location_work(shop_row, rider_id, earlier, now),
            position,
        ],
    )
    assert [outcome.error for outcome in outcomes] == [None] * 5
    assert outcomes[2].value == outcomes[4].value == (34.601, 119.202)
    assert outcomes[3].value.located_at == now


def test_a_duty_change_in_a_batch_is_seen_by_the_pieces_after_it(
    client: TestClient, shop: ShopHandle, engine: Engine, clock: FakeClock
) -> None:
    """A rider's ORM row loaded and held, then off duty (its span closed, never before it
    opened) and on again by Core in one batch: the reads after each see the change, and the
    rider ends with one open span."""
    rider_id = uuid.UUID(on_duty_rider(client, shop)["id"])
    shop_row = shop_row_of(engine, shop)
    now = clock()
    held: list[object] = []

    def hold(session: Session) -> None:
        held.append(session.get(Rider, rider_id))

    def on_duty(session: Session) -> bool:
        row = session.get(Rider, rider_id)
        assert row is not None
        return row.on_duty

    def spans(session: Session) -> list[tuple[datetime, datetime | None]]:
        rows = session.exec(select(RiderDutySpan).where(RiderDutySpan.rider_id == rider_id))
        spans = [(span.start_at, span.end_at) for span in rows]
        return sorted(spans, key=lambda span: (span[0], span[1] is None))

    duty = functools.partial(store_duty, shop=shop_row, rider_id=rider_id)
    skewed = now - timedelta(seconds=5)  # another process's clock, behind the span's start
    outcomes = write_batch(
        engine,
        [
            hold,
            functools.partial(duty, on_duty=False, now=skewed),
            on_duty,
            functools.partial(duty, on_duty=True, now=now),
            on_duty,
            spans,
        ],
    )
    assert [outcome.error for outcome in outcomes] == [None] * 6
    assert (outcomes[2].value, outcomes[4].value) == (False, True)
    assert outcomes[5].value == [(now, now), (now, None)]
