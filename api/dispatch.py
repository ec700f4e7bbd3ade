"""Dispatch on the real clock: one shop's decision stored in one transaction, and the loop.

``dispatch_shop`` snapshots the shop's pending orders and on-duty riders, runs the engine
(``api.engine.plan_shop``) and stores the committed trips, their stops, each order's assignment
and ETA, and an ``assigned`` event per order. ``run_dispatch_loop`` calls it for every shop each
``tick_s`` seconds; a failure of one shop is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.config import Settings
from api.db import writer
from api.engine import BusyRider, ShopPlan, plan_shop
from api.models import (
    Order,
    OrderStatus,
    Rider,
    RiderShift,
    Shop,
    Trip,
    TripStatus,
    TripStop,
)
from api.trips import ACTIVE_TRIP_VALUES, add_event

logger = logging.getLogger("api.dispatch")

DEFAULT_TICK_S: int = Settings.model_fields["tick_s"].default


def _busy_riders(session: Session, shop: Shop) -> dict[uuid.UUID, BusyRider]:
    """Riders of ``shop`` with an active trip: where its last stop is and its ETA there."""
    rows = session.exec(
        select(Trip, TripStop, Order)
        .join(TripStop, col(TripStop.trip_id) == col(Trip.id))
        .join(Order, col(Order.id) == col(TripStop.order_id))
        .where(Trip.shop_id == shop.id, col(Trip.status).in_(ACTIVE_TRIP_VALUES))
        .order_by(col(Trip.assigned_at), col(Trip.id), col(TripStop.seq))
    ).all()
    busy: dict[uuid.UUID, BusyRider] = {}
    for trip, stop, order in rows:  # the last stop of each rider's trip wins
        busy[trip.rider_id] = BusyRider(
            lat=order.dropoff_lat, lon=order.dropoff_lon, free_at=order.eta_at or stop.eta_at
        )
    return busy


def dispatch_shop(
    session: Session, shop: Shop, now: datetime, *, tick_s: int = DEFAULT_TICK_S
) -> ShopPlan:
    """Decide for ``shop`` at ``now`` and store the committed trips; commits the transaction.

    ``session`` must write (``api.db.writer``: ``BEGIN IMMEDIATE`` on SQLite); on PostgreSQL
    the pending orders and on-duty riders are locked until the commit, so that a cancellation
    or a duty change waits for the decision instead of being overwritten by it.
    """
    now = now.astimezone(UTC)
    orders = session.exec(
        select(Order)
        .where(
            Order.shop_id == shop.id,
            Order.status == OrderStatus.pending.value,
            col(Order.trip_id).is_(None),
        )
        .order_by(col(Order.placed_at), col(Order.id))
        .with_for_update()
    ).all()
    if not orders:
        session.commit()
        return ShopPlan()
    riders = session.exec(
        select(Rider)
        .where(Rider.shop_id == shop.id, col(Rider.on_duty).is_(True))
        .order_by(col(Rider.created_at), col(Rider.id))
        .with_for_update()
    ).all()
    shifts: dict[uuid.UUID, list[RiderShift]] = {}
    if riders:
        for shift in session.exec(
            select(RiderShift)
            .where(col(RiderShift.rider_id).in_([rider.id for rider in riders]))
            .order_by(col(RiderShift.start_at))
        ).all():
            shifts.setdefault(shift.rider_id, []).append(shift)
    busy = _busy_riders(session, shop)
    plan = plan_shop(shop, orders, riders, shifts, busy, now, tick_s)
    by_id = {order.id: order for order in orders}
    taken = set(busy)
    for trip_plan in plan.trips:
        if trip_plan.rider_id in taken:  # the engine never does this; the rows must not either
            logger.error("shop %s: trip for busy rider %s dropped", shop.id, trip_plan.rider_id)
            continue
        trip = Trip(
            shop_id=shop.id,
            rider_id=trip_plan.rider_id,
            status=TripStatus.committed.value,
            assigned_at=now,
            leave_at=trip_plan.leave_at,
            depart_at=trip_plan.depart_at,
        )
        session.add(trip)
        session.flush()
        for seq, (order_id, eta_at) in enumerate(
            zip(trip_plan.order_ids, trip_plan.eta_ats, strict=True)
        ):
            order = by_id[order_id]
            session.add(TripStop(trip_id=trip.id, order_id=order.id, seq=seq, eta_at=eta_at))
            order.status = OrderStatus.assigned.value
            order.trip_id = trip.id
            order.eta_at = eta_at
            order.updated_at = now
            session.add(order)
            add_event(session, order, "assigned", now, f"trip {trip.id}, stop {seq + 1}")
        taken.add(trip_plan.rider_id)
    session.commit()
    return plan


def dispatch_all(engine: Engine, now: datetime, tick_s: int) -> int:
    """One tick over every shop, each in its own transaction; the number of trips committed.

    A shop whose dispatch raises is logged and skipped; the other shops go on.
    """
    with Session(engine) as session:
        shop_ids = session.exec(select(Shop.id).order_by(col(Shop.id))).all()
    committed = 0
    for shop_id in shop_ids:
        try:
            with Session(writer(engine), expire_on_commit=False) as session:
                shop = session.get(Shop, shop_id)
                if shop is not None:
                    committed += len(dispatch_shop(session, shop, now, tick_s=tick_s).trips)
        except Exception:
            logger.exception("dispatch of shop %s failed; the other shops go on", shop_id)
    return committed


async def run_dispatch_loop(
    engine: Engine, settings: Settings, clock: Callable[[], datetime]
) -> None:
    """Tick every ``settings.tick_s`` seconds until cancelled; never stops on an error."""
    while True:
        try:
            await asyncio.to_thread(dispatch_all, engine, clock(), settings.tick_s)
        except Exception:
            logger.exception("dispatch tick failed")
        await asyncio.sleep(settings.tick_s)
